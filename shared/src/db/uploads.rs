//! The `pending_uploads` table: uploads recorded before they stream, so the cleanup job can
//! remove what an upload that never became a session left in the store.

use sqlx::AnyExecutor;

use super::{Db, now_ms};

/// Notes that an upload is about to stream into `object_key` (before its session exists).
pub async fn begin_upload(db: &Db, object_key: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO pending_uploads (object_key, created_at) VALUES ($1, $2)")
        .bind(object_key)
        .bind(now_ms())
        .execute(db)
        .await?;
    Ok(())
}

/// Forgets a pending upload: its session now owns the object (inside that transaction), or
/// the object was removed.
pub async fn end_upload(db: impl AnyExecutor<'_>, object_key: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM pending_uploads WHERE object_key = $1")
        .bind(object_key)
        .execute(db)
        .await?;
    Ok(())
}

/// Pending uploads started before `before`: abandoned, their objects to remove. One page of
/// at most `limit`, in key order after `after` (`""` for the first).
pub async fn abandoned_uploads(
    db: &Db,
    before: i64,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT object_key FROM pending_uploads WHERE created_at < $1 AND object_key > $2 \
         ORDER BY object_key LIMIT $3",
    )
    .bind(before)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(k,)| k).collect())
}
