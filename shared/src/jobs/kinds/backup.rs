//! What a `backup` job is: its payload, queue and retry policy. `tend-worker` runs it
//! (`worker/src/jobs/backup.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::jobs::{JobPayload, Periodic, Priority, Queue, RetryPolicy};

/// One backup run (scheduled, asked for by an admin, or from the shell).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Backup {
    /// The schedule tick or the moment it was asked for (ms since the epoch).
    pub scheduled_for: i64,
}

impl JobPayload for Backup {
    const KIND: &'static str = "backup";
    const QUEUE: Queue = Queue::Maintenance;
    /// Housekeeping: nobody waits for it.
    const PRIORITY: Priority = Priority::BATCH;
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        timeout: Duration::from_secs(2 * 3600),
        backoff_base: Duration::from_secs(5 * 60),
        backoff_max: Duration::from_secs(30 * 60),
    };
}

impl Periodic for Backup {
    const DEFAULT_CRON: &'static str = "0 0 2 * * *";
    const DESCRIPTION: &'static str = "Writes a verified-restorable backup of the whole database to the object store \
         under backups/, then deletes those past retention (BACKUP_KEEP_DAILY, \
         BACKUP_KEEP_WEEKLY).";

    fn for_tick(scheduled_for: i64, _dry_run: bool) -> Self {
        Self { scheduled_for }
    }
}
