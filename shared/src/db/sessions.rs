//! The `sessions` table: recorded sessions and their stages.
//!
//! Reads are scoped: a practitioner sees the sessions they own, a patient account the sessions
//! of the patient records linked to it. Stage changes are guarded updates (`WHERE status IN
//! ...`), so a job delivered twice, or a session deleted mid-job, changes nothing.

use sqlx::{AnyConnection, FromRow};

use super::{Db, now_ms};
use crate::sessions::{SessionStatus, Stage};

/// A session row, without the large text columns (transcript, segments, notes).
#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: String,
    pub practitioner_id: String,
    pub patient_id: String,
    pub status: String,
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
}

impl SessionRow {
    /// The parsed status (an unknown stored value reads as failed).
    pub fn status(&self) -> SessionStatus {
        SessionStatus::parse(&self.status).unwrap_or(SessionStatus::Failed)
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
         s.extraction_finished_at, s.created_at, s.updated_at"
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

/// The stored objects of a patient's sessions (to remove them with the patient).
pub async fn object_keys_of_patient(db: &Db, patient_id: &str) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT object_key FROM sessions WHERE patient_id = $1 AND object_key IS NOT NULL",
    )
    .bind(patient_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(k,)| k).collect())
}

/// One page of a practitioner's sessions that still have an object: `(id, object_key)`
/// after session `after`, in id order.
pub async fn objects_of_practitioner_page(
    db: &Db,
    practitioner_id: &str,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT id, object_key FROM sessions WHERE practitioner_id = $1 \
         AND object_key IS NOT NULL AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(practitioner_id)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// One page of failed sessions, failed before `before`, that still have an object:
/// `(id, object_key, size_bytes)` after session `after`, in id order.
pub async fn failed_objects_page(
    db: &Db,
    before: i64,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<(String, String, i64)>> {
    sqlx::query_as(
        "SELECT id, object_key, size_bytes FROM sessions WHERE status = 'failed' \
         AND updated_at < $1 AND object_key IS NOT NULL AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(before)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Forgets a session's object once it is deleted from the store.
pub async fn clear_object_key(db: &Db, id: &str, key: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE sessions SET object_key = NULL WHERE id = $1 AND object_key = $2")
        .bind(id)
        .bind(key)
        .execute(db)
        .await?;
    Ok(())
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

/// Moves a session into a running stage if it is waiting for it (or already in it, for a
/// retried attempt). False means the job has nothing to do.
pub async fn begin_stage(db: &Db, id: &str, stage: Stage, job_id: &str) -> sqlx::Result<bool> {
    let query = match stage {
        Stage::Transcription => sqlx::query(
            "UPDATE sessions SET status = 'transcribing', job_id = $2, updated_at = $3, \
             transcription_started_at = COALESCE(transcription_started_at, $3) \
             WHERE id = $1 AND status IN ('uploaded', 'transcribing')",
        ),
        Stage::Extraction => sqlx::query(
            "UPDATE sessions SET status = 'extracting', job_id = $2, updated_at = $3, \
             extraction_started_at = COALESCE(extraction_started_at, $3) \
             WHERE id = $1 AND status IN ('transcribed', 'extracting')",
        ),
    };
    let done = query
        .bind(id)
        .bind(job_id)
        .bind(now_ms())
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores the transcript and moves the session to `transcribed` (with the extraction job
/// enqueued in the same transaction).
pub async fn finish_transcription(
    conn: &mut AnyConnection,
    id: &str,
    transcript: &str,
    segments_json: &str,
    duration_ms: Option<i64>,
    next_job_id: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE sessions SET status = 'transcribed', transcript = $2, segments = $3, \
         duration_ms = COALESCE($4, duration_ms), job_id = $5, error = NULL, \
         transcription_finished_at = $6, updated_at = $6 \
         WHERE id = $1 AND status = 'transcribing'",
    )
    .bind(id)
    .bind(transcript)
    .bind(segments_json)
    .bind(duration_ms)
    .bind(next_job_id)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores the notes and marks the session processed.
pub async fn finish_extraction(
    conn: &mut AnyConnection,
    id: &str,
    notes_json: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE sessions SET status = 'processed', notes = $2, error = NULL, \
         extraction_finished_at = $3, updated_at = $3 \
         WHERE id = $1 AND status = 'extracting'",
    )
    .bind(id)
    .bind(notes_json)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records why the stage's last attempt failed while it waits for a retry.
pub async fn note_attempt_error(db: &Db, id: &str, job_id: &str, error: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE sessions SET error = $3, updated_at = $4 WHERE id = $1 AND job_id = $2")
        .bind(id)
        .bind(job_id)
        .bind(error)
        .bind(now_ms())
        .execute(db)
        .await?;
    Ok(())
}

/// Marks the session failed at `stage` (when that stage's job is dead).
pub async fn fail(
    db: impl sqlx::AnyExecutor<'_>,
    id: &str,
    job_id: &str,
    stage: Stage,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sessions SET status = 'failed', failed_stage = $3, error = $4, updated_at = $5 \
         WHERE id = $1 AND job_id = $2 AND status <> 'processed'",
    )
    .bind(id)
    .bind(job_id)
    .bind(stage.as_str())
    .bind(error)
    .bind(now_ms())
    .execute(db)
    .await?;
    Ok(())
}

/// Queues `stage` again, clearing the failure and the stage's timings: transcription from
/// `failed` (a retry), extraction from `failed` or `processed` (a retry or a re-extraction)
/// when a transcript exists. False if the session is in neither state.
pub async fn requeue_stage(
    conn: &mut AnyConnection,
    id: &str,
    stage: Stage,
    job_id: &str,
) -> sqlx::Result<bool> {
    let query = match stage {
        Stage::Transcription => sqlx::query(
            "UPDATE sessions SET status = 'uploaded', failed_stage = NULL, error = NULL, \
             job_id = $2, transcription_started_at = NULL, transcription_finished_at = NULL, \
             updated_at = $3 WHERE id = $1 AND status = 'failed'",
        ),
        Stage::Extraction => sqlx::query(
            "UPDATE sessions SET status = 'transcribed', failed_stage = NULL, error = NULL, \
             job_id = $2, extraction_started_at = NULL, extraction_finished_at = NULL, \
             updated_at = $3 WHERE id = $1 AND status IN ('failed', 'processed') \
             AND transcript IS NOT NULL",
        ),
    };
    let done = query
        .bind(id)
        .bind(job_id)
        .bind(now_ms())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}
