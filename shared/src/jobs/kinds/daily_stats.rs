//! What a `daily_stats` job is: its payload, queue and retry policy. `tend-worker` runs it
//! (`worker/src/jobs/daily_stats.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::jobs::{JobPayload, Periodic, Priority, Queue, RetryPolicy};

/// The daily rollup for one scheduled run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DailyStats {
    /// The schedule tick (ms since the epoch): the day before it is computed.
    pub scheduled_for: i64,
}

impl JobPayload for DailyStats {
    const KIND: &'static str = "daily_stats";
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

impl Periodic for DailyStats {
    const DEFAULT_CRON: &'static str = "0 5 0 * * *";
    const DESCRIPTION: &'static str = "Computes yesterday's per-practitioner and platform-wide statistics, and \
         every day missed since the last run (at most 31).";

    fn for_tick(scheduled_for: i64, _dry_run: bool) -> Self {
        Self { scheduled_for }
    }
}
