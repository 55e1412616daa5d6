//! Housekeeping: deletes spent or expired tokens, old finished jobs, the transport's copies of
//! finished deliveries, and what abandoned uploads left in the object store (patient audio
//! must not outlive its session). Idempotent: a second run finds nothing left to delete.

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
    let uploads = discard_abandoned_uploads(
        env,
        now - maintenance::ABANDONED_UPLOAD_AFTER.as_millis() as i64,
    )
    .await?;
    tracing::info!(tokens, jobs, deliveries, uploads, "cleanup finished");
    Ok(())
}

/// Removes the objects of uploads that never became a session, then forgets them.
async fn discard_abandoned_uploads(env: &JobEnv, before: i64) -> Result<u64, JobError> {
    let mut removed = 0;
    loop {
        let keys = db::sessions::abandoned_uploads(&env.db, before, 100)
            .await
            .map_err(|e| JobError::transient("listing abandoned uploads", e))?;
        if keys.is_empty() {
            return Ok(removed);
        }
        for key in keys {
            env.store
                .discard(&key)
                .await
                .map_err(|e| JobError::Transient(format!("removing an abandoned upload: {e:#}")))?;
            db::sessions::end_upload(&env.db, &key)
                .await
                .map_err(|e| JobError::transient("forgetting an abandoned upload", e))?;
            removed += 1;
        }
    }
}
