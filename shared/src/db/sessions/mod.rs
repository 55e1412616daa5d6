//! The `sessions` table: recorded sessions and their stages.
//!
//! Reads are scoped: a practitioner sees the sessions they own, a patient account the sessions
//! of the patient records linked to it. Stage changes are guarded updates (`WHERE status IN
//! ...`), so a job delivered twice, or a session deleted mid-job, changes nothing.

mod objects;
mod stages;

pub use objects::*;
pub use stages::*;

use sqlx::{AnyConnection, FromRow};

use super::{Db, now_ms};
use crate::sessions::{SessionStatus, Stage};

/// A session row, without the large text columns (transcript, segments, notes).
#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: String,
    pub practitioner_id: String,
    pub patient_id: String,
    #[sqlx(try_from = "String")]
    pub status: SessionStatus,
    pub failed_stage: Option<String>,
    pub error: Option<String>,
    pub source: String,
    pub media_type: String,
    pub object_key: Option<String>,
    pub size_bytes: i64,
    pub recorded_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub job_id: Option<String>,
    pub transcription_started_at: Option<i64>,
    pub transcription_finished_at: Option<i64>,
    pub extraction_started_at: Option<i64>,
    pub extraction_finished_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// A chunked transcription's progress: chunks transcribed, of how many.
    pub chunks_done: Option<i64>,
    pub chunks_total: Option<i64>,
}

impl SessionRow {
    /// Where the session is.
    pub fn status(&self) -> SessionStatus {
        self.status
    }

    /// The failed stage, when failed.
    pub fn failed_stage(&self) -> Option<Stage> {
        self.failed_stage.as_deref().and_then(Stage::parse)
    }
}

macro_rules! session_columns {
    () => {
        "s.id, s.practitioner_id, s.patient_id, s.status, s.failed_stage, s.error, s.source, \
         s.media_type, s.object_key, s.size_bytes, s.recorded_at, s.duration_ms, s.job_id, \
         s.transcription_started_at, s.transcription_finished_at, s.extraction_started_at, \
         s.extraction_finished_at, s.created_at, s.updated_at, s.chunks_done, s.chunks_total"
    };
}

/// The large text columns of a session.
#[derive(Debug, Clone, FromRow)]
pub struct SessionTexts {
    pub transcript: Option<String>,
    /// JSON array of segments.
    pub segments: Option<String>,
    /// JSON object of notes.
    pub notes: Option<String>,
}

/// A new session.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub practitioner_id: &'a str,
    pub patient_id: &'a str,
    pub status: SessionStatus,
    pub source: &'a str,
    pub media_type: &'a str,
    pub object_key: Option<&'a str>,
    pub size_bytes: i64,
    pub recorded_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub transcript: Option<&'a str>,
    pub segments: Option<&'a str>,
    pub job_id: &'a str,
    pub idempotency_key: Option<&'a str>,
    /// What the request with that key asked for ([`super::idempotency`]).
    pub idempotency_fingerprint: Option<&'a str>,
}

/// Inserts a session (in the transaction that enqueues its first job).
pub async fn insert(conn: &mut AnyConnection, new: &NewSession<'_>) -> sqlx::Result<()> {
    let now = now_ms();
    // A transcript upload starts transcribed: its transcription started and finished at
    // upload (a stage with an end has a start).
    let transcribed_at = new.transcript.map(|_| now);
    sqlx::query(
        "INSERT INTO sessions (id, practitioner_id, patient_id, status, source, media_type, \
         object_key, size_bytes, recorded_at, duration_ms, transcript, segments, job_id, \
         transcription_started_at, transcription_finished_at, idempotency_key, \
         idempotency_fingerprint, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, \
         $8, $9, $10, $11, $12, $13, $14, $14, $15, $16, $17, $17)",
    )
    .bind(new.id)
    .bind(new.practitioner_id)
    .bind(new.patient_id)
    .bind(new.status.as_str())
    .bind(new.source)
    .bind(new.media_type)
    .bind(new.object_key)
    .bind(new.size_bytes)
    .bind(new.recorded_at)
    .bind(new.duration_ms)
    .bind(new.transcript)
    .bind(new.segments)
    .bind(new.job_id)
    .bind(transcribed_at)
    .bind(new.idempotency_key)
    .bind(new.idempotency_fingerprint)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Who is reading.
#[derive(Debug, Clone, Copy)]
pub enum Reader<'a> {
    /// The owning practitioner.
    Practitioner(&'a str),
    /// A patient account: sessions of the patient records linked to it.
    Patient(&'a str),
}

/// The session `id` if `reader` may see it.
pub async fn find_for(db: &Db, id: &str, reader: Reader<'_>) -> sqlx::Result<Option<SessionRow>> {
    match reader {
        Reader::Practitioner(user) => {
            sqlx::query_as::<_, SessionRow>(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions s WHERE s.id = $1 AND s.practitioner_id = $2"
            ))
            .bind(id)
            .bind(user)
            .fetch_optional(db)
            .await
        }
        Reader::Patient(user) => {
            sqlx::query_as::<_, SessionRow>(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions s JOIN patients p ON p.id = s.patient_id \
                 WHERE s.id = $1 AND p.user_id = $2"
            ))
            .bind(id)
            .bind(user)
            .fetch_optional(db)
            .await
        }
    }
}

/// The practitioner's session uploaded with `Idempotency-Key: key`, if any.
pub async fn find_by_idempotency_key(
    db: &Db,
    practitioner_id: &str,
    key: &str,
) -> sqlx::Result<Option<SessionRow>> {
    sqlx::query_as::<_, SessionRow>(concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions s WHERE s.practitioner_id = $1 AND s.idempotency_key = $2"
    ))
    .bind(practitioner_id)
    .bind(key)
    .fetch_optional(db)
    .await
}

/// The session `id`, unscoped (workers).
pub async fn find<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: &str,
) -> sqlx::Result<Option<SessionRow>> {
    sqlx::query_as::<_, SessionRow>(concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions s WHERE s.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// The transcript, segments and notes of session `id`.
pub async fn texts(db: &Db, id: &str) -> sqlx::Result<Option<SessionTexts>> {
    sqlx::query_as::<_, SessionTexts>(
        "SELECT transcript, segments, notes FROM sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Filters of a session list.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter<'a> {
    pub patient_id: Option<&'a str>,
    pub status: Option<SessionStatus>,
    /// Only ids before this one (the previous page's last id).
    pub cursor: Option<&'a str>,
}

/// One page of sessions `reader` may see, newest first.
pub async fn list(
    db: &Db,
    reader: Reader<'_>,
    filter: &SessionFilter<'_>,
    limit: i64,
) -> sqlx::Result<Vec<SessionRow>> {
    let status = filter.status.map(SessionStatus::as_str);
    let query = match reader {
        Reader::Practitioner(_) => sqlx::query_as::<_, SessionRow>(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions s WHERE s.practitioner_id = $1 \
             AND (CAST($2 AS TEXT) IS NULL OR s.patient_id = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR s.status = $3) \
             AND (CAST($4 AS TEXT) IS NULL OR s.id < $4) \
             ORDER BY s.id DESC LIMIT $5"
        )),
        Reader::Patient(_) => sqlx::query_as::<_, SessionRow>(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions s JOIN patients p ON p.id = s.patient_id WHERE p.user_id = $1 \
             AND (CAST($2 AS TEXT) IS NULL OR s.patient_id = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR s.status = $3) \
             AND (CAST($4 AS TEXT) IS NULL OR s.id < $4) \
             ORDER BY s.id DESC LIMIT $5"
        )),
    };
    let user = match reader {
        Reader::Practitioner(user) | Reader::Patient(user) => user,
    };
    query
        .bind(user)
        .bind(filter.patient_id)
        .bind(status)
        .bind(filter.cursor)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// Deletes the practitioner's session; false if it is not theirs (or already gone).
pub async fn delete(db: &Db, id: &str, practitioner_id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM sessions WHERE id = $1 AND practitioner_id = $2")
        .bind(id)
        .bind(practitioner_id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}
