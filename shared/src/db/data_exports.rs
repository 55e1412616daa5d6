//! The `data_exports` table: personal data exports (the right of access), one ZIP each,
//! built by the `data_export` job: `queued`, `building`, then `ready` (7 days, then the
//! cleanup removes the file and the row says `expired`) or `failed`. Scoped to their owner.

use sqlx::{AnyConnection, FromRow};

use super::{Db, exports::KEEP_FOR_MS, jobs::Attempt, now_ms};
use crate::lifecycle::{DataExportStatus, update_to};

/// A data export row.
#[derive(Debug, Clone, FromRow)]
pub struct DataExportRow {
    pub id: String,
    pub user_id: String,
    #[sqlx(try_from = "String")]
    pub status: DataExportStatus,
    pub error: Option<String>,
    pub job_id: Option<String>,
    pub object_key: Option<String>,
    pub size_bytes: Option<i64>,
    pub created_at: i64,
    pub ready_at: Option<i64>,
    pub expires_at: Option<i64>,
}

const COLUMNS: &str = "id, user_id, status, error, job_id, object_key, size_bytes, created_at, \
    ready_at, expires_at";

/// Stores a new data export, `queued`, in the transaction that enqueues its job.
pub async fn insert(
    conn: &mut AnyConnection,
    id: &str,
    user_id: &str,
    job_id: &str,
    idempotency_key: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO data_exports (id, user_id, status, job_id, idempotency_key, created_at, \
         updated_at) VALUES ($1, $2, 'queued', $3, $4, $5, $5)",
    )
    .bind(id)
    .bind(user_id)
    .bind(job_id)
    .bind(idempotency_key)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// The export `id`, unscoped (workers).
pub async fn find<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: &str,
) -> sqlx::Result<Option<DataExportRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM data_exports WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// The export `id` of `user_id`.
pub async fn find_own(db: &Db, user_id: &str, id: &str) -> sqlx::Result<Option<DataExportRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM data_exports WHERE id = $1 AND user_id = $2"
    )))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await
}

/// The export an earlier request with the same `Idempotency-Key` made.
pub async fn find_by_key(db: &Db, user_id: &str, key: &str) -> sqlx::Result<Option<DataExportRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM data_exports WHERE user_id = $1 AND idempotency_key = $2"
    )))
    .bind(user_id)
    .bind(key)
    .fetch_optional(db)
    .await
}

/// The user's exports, newest first (a handful: three a day at most).
pub async fn list_own(db: &Db, user_id: &str, limit: i64) -> sqlx::Result<Vec<DataExportRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM data_exports WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
    )))
    .bind(user_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// When the user's exports asked for since `since` were asked for, oldest first.
pub async fn requested_since(
    db: impl sqlx::AnyExecutor<'_>,
    user_id: &str,
    since: i64,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT created_at FROM data_exports WHERE user_id = $1 AND created_at >= $2 \
         ORDER BY created_at",
    )
    .bind(user_id)
    .bind(since)
    .fetch_all(db)
    .await
}

/// `queued` (or a `building` left by a crashed attempt) → `building`; false when gone or done.
pub async fn begin_building(db: &Db, id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(update_to(
        "data_exports",
        DataExportStatus::Building,
        "updated_at = $2",
        "id = $1",
    )))
    .bind(id)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `building` → `ready` with the stored ZIP; false when it changed meanwhile.
pub async fn finish(
    conn: &mut AnyConnection,
    id: &str,
    attempt: &Attempt,
    object_key: &str,
    size_bytes: i64,
) -> sqlx::Result<bool> {
    let now = now_ms();
    let sql = update_to(
        "data_exports",
        DataExportStatus::Ready,
        "error = NULL, object_key = $2, size_bytes = $3, ready_at = $4, expires_at = $5, \
         updated_at = $4",
        &format!("id = $1 AND {}", super::jobs::holds(6, 7)),
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(object_key)
        .bind(size_bytes)
        .bind(now)
        .bind(now + KEEP_FOR_MS)
        .bind(&attempt.job_id)
        .bind(attempt.claim)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Records why an attempt failed; `dead` makes the export `failed`.
pub async fn fail(
    db: impl sqlx::AnyExecutor<'_>,
    id: &str,
    error: &str,
    dead: bool,
) -> sqlx::Result<()> {
    // Alive, the export stays `building` (or becomes it) while the job is retried.
    let status = if dead {
        DataExportStatus::Failed
    } else {
        DataExportStatus::Building
    };
    sqlx::query(sqlx::AssertSqlSafe(update_to(
        "data_exports",
        status,
        "error = $2, updated_at = $3",
        "id = $1",
    )))
    .bind(id)
    .bind(error)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(())
}

/// Stops a queued or building archive: `cancelled`, with `why`. False when it was neither.
pub async fn cancel(conn: &mut AnyConnection, id: &str, why: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(update_to(
        "data_exports",
        DataExportStatus::Cancelled,
        "error = $2, updated_at = $3",
        "id = $1",
    )))
    .bind(id)
    .bind(why)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A failed export waits for its job again (an admin's retry); false if it moved on.
pub async fn requeue(conn: &mut AnyConnection, id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(update_to(
        "data_exports",
        DataExportStatus::Queued,
        "error = NULL, updated_at = $2",
        "id = $1",
    )))
    .bind(id)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The stored ZIPs of `user_id` (erasure).
pub async fn objects_of_user(db: &Db, user_id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT object_key FROM data_exports WHERE user_id = $1 AND object_key IS NOT NULL",
    )
    .bind(user_id)
    .fetch_all(db)
    .await
}
