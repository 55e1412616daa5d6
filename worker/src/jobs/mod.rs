//! One module per job kind. Each handler is a plain async function of its payload that returns
//! `Ok(())` or a [`JobError`] saying whether a retry can help. Handlers are idempotent: a job
//! delivered twice leaves the same result.

pub mod cleanup;
pub mod email;
pub mod extract;
pub mod transcribe;

use tend_shared::{
    db::{
        self,
        jobs::JobRow,
        sessions::{SessionRow, UsageRow},
    },
    jobs::{
        Cleanup, ExtractNotes, JobError, JobPayload, RetryPolicy, SendEmail, TranscribeSession,
    },
    sessions::Stage,
};

use crate::runner::JobEnv;

/// The retry policy of a kind, `None` for a kind this build does not know.
pub fn policy(kind: &str) -> Option<RetryPolicy> {
    match kind {
        SendEmail::KIND => Some(SendEmail::POLICY),
        Cleanup::KIND => Some(Cleanup::POLICY),
        TranscribeSession::KIND => Some(TranscribeSession::POLICY),
        ExtractNotes::KIND => Some(ExtractNotes::POLICY),
        _ => None,
    }
}

/// Decodes the payload of the job and runs its handler.
pub async fn handle(env: &JobEnv, job: &JobRow) -> Result<(), JobError> {
    let payload = job.payload.as_str();
    match job.kind.as_str() {
        SendEmail::KIND => email::send(env, decode(payload)?).await,
        Cleanup::KIND => cleanup::run(env, decode(payload)?).await,
        TranscribeSession::KIND => transcribe::run(env, job, decode(payload)?).await,
        ExtractNotes::KIND => extract::run(env, job, decode(payload)?).await,
        other => Err(JobError::Permanent(format!("unknown job kind {other:?}"))),
    }
}

/// Tells the job's subject that an attempt failed: sessions show the error, and say `failed`
/// (with the stage) once the job is dead. Best effort: the ledger keeps the truth anyway.
pub async fn on_failure(env: &JobEnv, job: &JobRow, error: &str, dead: bool) {
    let (session_id, stage) = match job.kind.as_str() {
        TranscribeSession::KIND => match decode::<TranscribeSession>(&job.payload) {
            Ok(p) => (p.session_id, Stage::Transcription),
            Err(_) => return,
        },
        ExtractNotes::KIND => match decode::<ExtractNotes>(&job.payload) {
            Ok(p) => (p.session_id, Stage::Extraction),
            Err(_) => return,
        },
        _ => return,
    };
    let id = session_id.to_string();
    let result = if dead {
        db::sessions::fail(&env.db, &id, &job.id, stage, error).await
    } else {
        db::sessions::note_attempt_error(&env.db, &id, &job.id, error).await
    };
    if let Err(err) = result {
        tracing::warn!(error = %err, "could not record the failure on the session");
    }
}

/// Moves the session into `stage` for this job and reads it; `None` when the session is gone
/// or past the stage (a duplicate or stale delivery: nothing to do).
async fn begin_session_stage(
    env: &JobEnv,
    job: &JobRow,
    session_id: &str,
    stage: Stage,
) -> Result<Option<SessionRow>, JobError> {
    let db_err = |e: sqlx::Error| JobError::transient("database", e);
    if !db::sessions::begin_stage(&env.db, session_id, stage, &job.id)
        .await
        .map_err(db_err)?
    {
        tracing::info!(
            stage = stage.as_str(),
            "session deleted or not waiting for this stage; nothing to do"
        );
        return Ok(None);
    }
    db::sessions::find(&env.db, session_id)
        .await
        .map_err(db_err)?
        .ok_or_else(|| JobError::Permanent("the session was deleted".into()))
        .map(Some)
}

/// Records one paid provider call on the session (best effort: a lost row must not fail or
/// repeat a call that was already paid for).
async fn record_usage(env: &JobEnv, job: &JobRow, session_id: &str, usage: UsageRow) {
    if let Err(err) = db::sessions::insert_usage(&env.db, session_id, &job.id, &usage).await {
        tracing::warn!(error = %err, "could not record provider usage");
    }
}

fn decode<J: JobPayload>(payload: &str) -> Result<J, JobError> {
    serde_json::from_str(payload).map_err(|e| JobError::permanent("malformed payload", e))
}
