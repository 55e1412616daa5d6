//! One file per job kind: its payload (ids only), its declaration ([`JobPayload`]: name, queue,
//! attempts, timeout, backoff) and its handler ([`crate::job::Job`]), listed once in
//! [`crate::registry`]. Handlers are idempotent: a job delivered twice leaves the same result.
//!
//! This module also holds what the two session stages share.
//!
//! [`JobPayload`]: tend_shared::jobs::JobPayload

pub mod account_mail;
pub mod backup;
pub mod cleanup;
pub mod daily_stats;
pub mod data_export;
pub mod draft_mission;
pub mod email;
pub mod erase_account;
pub mod extract;
pub mod invitation;
pub mod render_export;
pub mod retry_dead;
pub mod rotate_signing_key;
pub mod transcribe;
pub mod weekly_snapshots;

use tend_shared::{
    db::{self, jobs::JobRow, sessions::SessionRow, usage::UsageRow},
    jobs::{JobError, JobTx},
    sessions::Stage,
};

use crate::env::JobEnv;

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
    let subject = tend_shared::events::Subject::Session(session_id.to_owned());
    env.events.publish_state(&env.db, &subject).await;
    db::sessions::find(&env.db, session_id)
        .await
        .map_err(db_err)?
        .ok_or_else(|| JobError::Permanent("the session was deleted".into()))
        .map(Some)
}

/// Tells the session that an attempt of its `stage` failed and will be retried: it shows the
/// error. Best effort: the ledger keeps the truth.
async fn session_attempt_failed(env: &JobEnv, job: &JobRow, session_id: &uuid::Uuid, error: &str) {
    let id = session_id.to_string();
    if let Err(err) = db::sessions::note_attempt_error(&env.db, &id, &job.id, error).await {
        tracing::warn!(error = %err, "could not record the failure on the session");
    }
}

/// Fails the session at `stage` (with the error) in the transaction that records its job dead.
async fn session_stage_dead(
    tx: &mut JobTx,
    job: &JobRow,
    session_id: &uuid::Uuid,
    stage: Stage,
    error: &str,
) -> sqlx::Result<()> {
    db::sessions::fail(&mut **tx, &session_id.to_string(), &job.id, stage, error).await
}

/// Records one paid provider call, on its session if it has one (best effort: a lost row must
/// not fail or repeat a call that was already paid for).
async fn record_usage(env: &JobEnv, job: &JobRow, session_id: Option<&str>, usage: UsageRow) {
    let model = usage.model.clone();
    metrics::counter!("tend_provider_tokens_total", "model" => model.clone(), "kind" => "prompt")
        .increment(usage.prompt_tokens.max(0) as u64);
    metrics::counter!("tend_provider_tokens_total", "model" => model.clone(), "kind" => "completion")
        .increment(usage.completion_tokens.max(0) as u64);
    metrics::counter!("tend_provider_audio_seconds_total", "model" => model.clone())
        .increment((usage.audio_ms.max(0) / 1000) as u64);
    metrics::counter!("tend_provider_cost_micro_usd_total", "model" => model)
        .increment(usage.cost_micro_usd.max(0) as u64);
    if let Err(err) =
        db::usage::insert(&env.db, &job.id, job.tenant.as_deref(), session_id, &usage).await
    {
        tracing::warn!(error = %err, "could not record provider usage");
    }
}
