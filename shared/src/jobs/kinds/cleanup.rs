//! What a `cleanup` job is: its payload, queue and retry policy. `tend-worker` runs it
//! (`worker/src/jobs/cleanup.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::jobs::{JobPayload, Periodic, Priority, Queue, RetryPolicy};

/// Housekeeping for one scheduled (or admin-started) run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cleanup {
    /// The schedule tick (ms since the epoch) this run belongs to.
    pub scheduled_for: i64,
    /// Count what would go, delete nothing.
    #[serde(default)]
    pub dry_run: bool,
}

impl JobPayload for Cleanup {
    const KIND: &'static str = "cleanup";
    const QUEUE: Queue = Queue::Maintenance;
    /// Housekeeping: nobody waits for it.
    const PRIORITY: Priority = Priority::BATCH;
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        timeout: Duration::from_secs(30 * 60),
        backoff_base: Duration::from_secs(60),
        backoff_max: Duration::from_secs(15 * 60),
    };
}

impl Periodic for Cleanup {
    const DEFAULT_CRON: &'static str = "0 0 3 * * *";
    const DESCRIPTION: &'static str = "Deletes spent tokens, old finished jobs and attempts, stale mail requests, \
         silent workers, what abandoned uploads left in the store, the audio of recordings \
         failed long ago, objects no row owns and backups past retention.";
    const DRY_RUN: bool = true;

    fn for_tick(scheduled_for: i64, dry_run: bool) -> Self {
        Self {
            scheduled_for,
            dry_run,
        }
    }
}
