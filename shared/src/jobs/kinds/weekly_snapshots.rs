//! What a `weekly_snapshots` job is: its payload, queue and retry policy. `tend-worker` runs it
//! (`worker/src/jobs/weekly_snapshots.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::jobs::{JobPayload, Queue, RetryPolicy};

/// The weekly snapshot for one scheduled run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WeeklySnapshots {
    /// The schedule tick (ms since the epoch): the complete weeks before it are snapshotted.
    pub scheduled_for: i64,
}

impl JobPayload for WeeklySnapshots {
    const KIND: &'static str = "weekly_snapshots";
    const QUEUE: Queue = Queue::Maintenance;
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        timeout: Duration::from_secs(30 * 60),
        backoff_base: Duration::from_secs(60),
        backoff_max: Duration::from_secs(30 * 60),
    };
}
