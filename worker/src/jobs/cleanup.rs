//! Housekeeping: deletes spent or expired tokens, old finished jobs, and the transport's
//! copies of finished deliveries. Idempotent: a second run finds nothing left to delete.

use tend_shared::{
    db,
    jobs::{Cleanup, JobError, maintenance},
};

use crate::runner::JobEnv;

/// Runs one cleanup.
pub async fn run(env: &JobEnv, _job: Cleanup) -> Result<(), JobError> {
    let now = db::now_ms();
    let tokens = db::tokens::delete_expired(
        &env.db,
        now - maintenance::KEEP_DEAD_TOKENS.as_millis() as i64,
    )
    .await
    .map_err(|e| JobError::transient("deleting expired tokens", e))?;
    let jobs = db::jobs::prune_done(
        &env.db,
        now - maintenance::KEEP_DONE_JOBS.as_millis() as i64,
    )
    .await
    .map_err(|e| JobError::transient("pruning finished jobs", e))?;
    let deliveries = env
        .transport
        .vacuum(maintenance::KEEP_DELIVERIES)
        .await
        .map_err(|e| JobError::transient("vacuuming the queue", e))?;
    tracing::info!(tokens, jobs, deliveries, "cleanup finished");
    Ok(())
}
