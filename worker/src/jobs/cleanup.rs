//! Housekeeping: deletes spent or expired tokens, old finished jobs, the transport's copies of
//! finished deliveries, and what abandoned uploads left in the object store (patient audio
//! must not outlive its session). Idempotent: a second run finds nothing left to delete.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tend_shared::{
    db,
    jobs::{JobError, JobPayload, Queue, RetryPolicy},
};

use crate::{
    env::JobEnv,
    job::{Job, JobCtx},
};

/// Housekeeping for one scheduled run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cleanup {
    /// The schedule tick (ms since the epoch) this run belongs to.
    pub scheduled_for: i64,
}

impl JobPayload for Cleanup {
    const KIND: &'static str = "cleanup";
    const QUEUE: Queue = Queue::Maintenance;
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        timeout: Duration::from_secs(10 * 60),
        backoff_base: Duration::from_secs(60),
        backoff_max: Duration::from_secs(15 * 60),
    };
}

/// Done jobs are kept this long for `GET /jobs/{id}` and admins, then deleted.
pub const KEEP_DONE_JOBS: Duration = Duration::from_secs(14 * 24 * 3600);
/// Spent and expired tokens are kept this long (for the reuse check), then deleted.
pub const KEEP_DEAD_TOKENS: Duration = Duration::from_secs(7 * 24 * 3600);
/// Worker processes silent this long are no longer listed for admins.
pub const KEEP_SILENT_WORKERS: Duration = Duration::from_secs(24 * 3600);
/// Finished deliveries stay in the transport this long (for apalis' own tools), then go.
pub const KEEP_DELIVERIES: Duration = Duration::from_secs(3600);
/// An upload still pending after this long was abandoned (a 500 MiB upload takes a day only
/// below 6 KB/s); whatever it stored is removed.
pub const ABANDONED_UPLOAD_AFTER: Duration = Duration::from_secs(24 * 3600);

impl Job for Cleanup {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        run(ctx.env).await
    }
}

/// Runs one cleanup.
async fn run(env: &JobEnv) -> Result<(), JobError> {
    let now = db::now_ms();
    let tokens = db::tokens::delete_expired(&env.db, now - KEEP_DEAD_TOKENS.as_millis() as i64)
        .await
        .map_err(|e| JobError::transient("deleting expired tokens", e))?;
    let jobs = db::jobs::prune_done(&env.db, now - KEEP_DONE_JOBS.as_millis() as i64)
        .await
        .map_err(|e| JobError::transient("pruning finished jobs", e))?;
    let deliveries = env
        .transport()
        .vacuum(KEEP_DELIVERIES)
        .await
        .map_err(|e| JobError::transient("vacuuming the queue", e))?;
    let uploads =
        discard_abandoned_uploads(env, now - ABANDONED_UPLOAD_AFTER.as_millis() as i64).await?;
    // A request whose job died holds an address nobody will use: kept as long as spent tokens.
    let mail_requests =
        db::mail_requests::delete_older_than(&env.db, now - KEEP_DEAD_TOKENS.as_millis() as i64)
            .await
            .map_err(|e| JobError::transient("deleting stale mail requests", e))?;
    let workers =
        db::workers::delete_silent_since(&env.db, now - KEEP_SILENT_WORKERS.as_millis() as i64)
            .await
            .map_err(|e| JobError::transient("forgetting silent workers", e))?;
    tracing::info!(
        workers,
        tokens,
        jobs,
        deliveries,
        uploads,
        mail_requests,
        "cleanup finished"
    );
    Ok(())
}

/// Removes the objects of uploads that never became a session, then forgets them.
async fn discard_abandoned_uploads(env: &JobEnv, before: i64) -> Result<u64, JobError> {
    let mut removed = 0;
    loop {
        let keys = db::uploads::abandoned_uploads(&env.db, before, 100)
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
            db::uploads::end_upload(&env.db, &key)
                .await
                .map_err(|e| JobError::transient("forgetting an abandoned upload", e))?;
            removed += 1;
        }
    }
}
