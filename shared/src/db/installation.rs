//! The `installation` table: when this installation first started, so the scheduler catches up
//! only on runs that were due while it was down, never on runs from before it existed.

use super::{Db, now_ms};

/// When the installation first started (milliseconds), recorded now on the first call.
pub async fn first_started_at(db: &Db) -> sqlx::Result<i64> {
    sqlx::query(
        "INSERT INTO installation (id, first_started_at) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
    )
    .bind(now_ms())
    .execute(db)
    .await?;
    sqlx::query_scalar("SELECT first_started_at FROM installation WHERE id = 1")
        .fetch_one(db)
        .await
}
