//! The `exports` table: PDF and DOCX documents rendered by the `render_export` job. A row is
//! `queued`, then `rendering`, then `ready` (with its object) or `failed` (with the reason);
//! the cleanup job removes the file of a ready export 7 days on and the row says `expired`.
//! Reads are scoped to the practitioner who asked.

use sqlx::{AnyConnection, FromRow};

use super::{Db, jobs::Attempt, now_ms};
use crate::lifecycle::{DataExportStatus, ExportStatus, update_to};

/// How long a rendered file is kept.
pub const KEEP_FOR_MS: i64 = 7 * 86_400_000;

/// An export row.
#[derive(Debug, Clone, FromRow)]
pub struct ExportRow {
    pub id: String,
    pub practitioner_id: String,
    pub kind: String,
    pub format: String,
    pub session_id: Option<String>,
    pub patient_id: String,
    pub weeks: Option<i64>,
    #[sqlx(try_from = "String")]
    pub status: ExportStatus,
    pub error: Option<String>,
    pub job_id: Option<String>,
    pub object_key: Option<String>,
    pub size_bytes: Option<i64>,
    pub file_name: Option<String>,
    pub created_at: i64,
    pub ready_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, practitioner_id, kind, format, session_id, patient_id, weeks, \
    status, error, job_id, object_key, size_bytes, file_name, created_at, ready_at, \
    expires_at, updated_at";

/// What a new export asks for.
#[derive(Debug, Clone)]
pub struct NewExport<'a> {
    pub id: &'a str,
    pub practitioner_id: &'a str,
    pub kind: &'a str,
    pub format: &'a str,
    pub session_id: Option<&'a str>,
    pub patient_id: &'a str,
    pub weeks: Option<i64>,
    pub job_id: &'a str,
    pub idempotency_key: Option<&'a str>,
    /// What the request with that key asked for ([`super::idempotency`]).
    pub idempotency_fingerprint: Option<&'a str>,
}

/// Stores a new export, `queued`, in the transaction that enqueues its job.
pub async fn insert(conn: &mut AnyConnection, new: &NewExport<'_>) -> sqlx::Result<()> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO exports (id, practitioner_id, kind, format, session_id, patient_id, \
         weeks, status, job_id, idempotency_key, idempotency_fingerprint, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9, $10, $11, $11)",
    )
    .bind(new.id)
    .bind(new.practitioner_id)
    .bind(new.kind)
    .bind(new.format)
    .bind(new.session_id)
    .bind(new.patient_id)
    .bind(new.weeks)
    .bind(new.job_id)
    .bind(new.idempotency_key)
    .bind(new.idempotency_fingerprint)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The export `id`, unscoped (workers).
pub async fn find<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: &str,
) -> sqlx::Result<Option<ExportRow>> {
    sqlx::query_as::<_, ExportRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM exports WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// The export `id` if `practitioner_id` asked for it.
pub async fn find_own(db: &Db, practitioner_id: &str, id: &str) -> sqlx::Result<Option<ExportRow>> {
    sqlx::query_as::<_, ExportRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM exports WHERE id = $1 AND practitioner_id = $2"
    )))
    .bind(id)
    .bind(practitioner_id)
    .fetch_optional(db)
    .await
}

/// The export an earlier request with the same `Idempotency-Key` made.
pub async fn find_by_idempotency_key(
    db: &Db,
    practitioner_id: &str,
    key: &str,
) -> sqlx::Result<Option<ExportRow>> {
    sqlx::query_as::<_, ExportRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM exports WHERE practitioner_id = $1 AND idempotency_key = $2"
    )))
    .bind(practitioner_id)
    .bind(key)
    .fetch_optional(db)
    .await
}

/// A page of the practitioner's exports, newest first, before `before` (an id).
pub async fn list(
    db: &Db,
    practitioner_id: &str,
    before: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<ExportRow>> {
    sqlx::query_as::<_, ExportRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM exports WHERE practitioner_id = $1 \
         AND (CAST($2 AS TEXT) IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    )))
    .bind(practitioner_id)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// `queued` (or a `rendering` left by a crashed attempt) → `rendering`; false when the export
/// is gone or past rendering (a duplicate delivery).
pub async fn begin_rendering(db: &Db, id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(update_to(
        "exports",
        ExportStatus::Rendering,
        "updated_at = $2",
        "id = $1",
    )))
    .bind(id)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `rendering` → `ready`, with the stored file; false when the export was deleted meanwhile
/// (the caller then removes the object).
pub async fn finish(
    db: &Db,
    id: &str,
    attempt: &Attempt,
    object_key: &str,
    size_bytes: i64,
    file_name: &str,
) -> sqlx::Result<bool> {
    let now = now_ms();
    let sql = update_to(
        "exports",
        ExportStatus::Ready,
        "error = NULL, object_key = $2, size_bytes = $3, file_name = $4, ready_at = $5, \
         expires_at = $6, updated_at = $5",
        &format!("id = $1 AND {}", super::jobs::holds(7, 8)),
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(object_key)
        .bind(size_bytes)
        .bind(file_name)
        .bind(now)
        .bind(now + KEEP_FOR_MS)
        .bind(&attempt.job_id)
        .bind(attempt.claim)
        .execute(db)
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
    // Alive, the export stays `rendering` (or becomes it) while the job is retried.
    let status = if dead {
        ExportStatus::Failed
    } else {
        ExportStatus::Rendering
    };
    sqlx::query(sqlx::AssertSqlSafe(update_to(
        "exports",
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

/// A failed export waits for its job again (an admin's retry); false if it moved on.
pub async fn requeue(conn: &mut AnyConnection, id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(update_to(
        "exports",
        ExportStatus::Queued,
        "error = NULL, updated_at = $2",
        "id = $1",
    )))
    .bind(id)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stops a queued or rendering export: `cancelled`, with `why`. False when it was neither.
pub async fn cancel(conn: &mut AnyConnection, id: &str, why: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(update_to(
        "exports",
        ExportStatus::Cancelled,
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

/// Deletes the export row (its object is removed first by the caller).
pub async fn delete(db: &Db, id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM exports WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// The tables whose files expire: exports and personal data exports.
#[derive(Debug, Clone, Copy)]
pub enum ExpiringTable {
    /// `exports`.
    Exports,
    /// `data_exports`.
    DataExports,
}

impl ExpiringTable {
    /// The stored name of its rows' `ready` state.
    fn ready(self) -> &'static str {
        match self {
            ExpiringTable::Exports => ExportStatus::Ready.as_str(),
            ExpiringTable::DataExports => DataExportStatus::Ready.as_str(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            ExpiringTable::Exports => "exports",
            ExpiringTable::DataExports => "data_exports",
        }
    }
}

/// Ready rows of `table` whose file expired by `now`, after id `after`: `(id, object_key,
/// size)`, a page of at most `limit`.
pub async fn expired_page(
    db: &Db,
    table: ExpiringTable,
    now: i64,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<(String, String, i64)>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, object_key, COALESCE(size_bytes, 0) FROM {} \
         WHERE status = '{}' AND expires_at <= $1 AND object_key IS NOT NULL AND id > $2 \
         ORDER BY id LIMIT $3",
        table.name(),
        table.ready(),
    )))
    .bind(now)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// `ready` → `expired` in `table`, the file gone.
pub async fn mark_expired(db: &Db, table: ExpiringTable, id: &str) -> sqlx::Result<()> {
    let sql = match table {
        ExpiringTable::Exports => update_to(
            table.name(),
            ExportStatus::Expired,
            "object_key = NULL, updated_at = $2",
            "id = $1",
        ),
        ExpiringTable::DataExports => update_to(
            table.name(),
            DataExportStatus::Expired,
            "object_key = NULL, updated_at = $2",
            "id = $1",
        ),
    };
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(now_ms())
        .execute(db)
        .await?;
    Ok(())
}

/// The stored files of the practitioner's exports (erasure, session deletion).
pub async fn objects_of(db: &Db, column: ExportOwner, id: &str) -> sqlx::Result<Vec<String>> {
    let column = match column {
        ExportOwner::Practitioner => "practitioner_id",
        ExportOwner::Patient => "patient_id",
        ExportOwner::Session => "session_id",
    };
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT object_key FROM exports WHERE {column} = $1 AND object_key IS NOT NULL"
    )))
    .bind(id)
    .fetch_all(db)
    .await
}

/// Whose exports [`objects_of`] lists.
#[derive(Debug, Clone, Copy)]
pub enum ExportOwner {
    /// Every export of a practitioner.
    Practitioner,
    /// The exports about one patient.
    Patient,
    /// The exports of one session's notes.
    Session,
}
