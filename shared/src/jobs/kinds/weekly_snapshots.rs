//! What a `weekly_snapshots` job is: its payload, queue and retry policy. `tend-worker` runs it
//! (`worker/src/jobs/weekly_snapshots.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::jobs::{JobPayload, Periodic, Priority, Queue, RetryPolicy};

/// The weekly snapshot for one scheduled run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WeeklySnapshots {
    /// The schedule tick (ms since the epoch): the complete weeks before it are snapshotted.
    pub scheduled_for: i64,
}

impl JobPayload for WeeklySnapshots {
    const KIND: &'static str = "weekly_snapshots";
    const QUEUE: Queue = Queue::Maintenance;
    /// Housekeeping: nobody waits for it.
    const PRIORITY: Priority = Priority::BATCH;
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        timeout: Duration::from_secs(30 * 60),
        backoff_base: Duration::from_secs(60),
        backoff_max: Duration::from_secs(30 * 60),
    };
}

impl Periodic for WeeklySnapshots {
    const DEFAULT_CRON: &'static str = "0 0 1 * * Sun";
    const DESCRIPTION: &'static str = "Snapshots each patient's progress for the last complete ISO week, and the \
         weeks missed since the last run (at most 12).";

    fn for_tick(scheduled_for: i64, _dry_run: bool) -> Self {
        Self { scheduled_for }
    }
}
