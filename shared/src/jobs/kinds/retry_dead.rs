//! What a `retry_dead` job is: its payload, queue and retry policy. `tend-worker` runs it
//! (`worker/src/jobs/retry_dead.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::jobs::{JobPayload, Priority, Queue, RetryPolicy};

/// Retry the dead jobs of one queue that died up to the moment the admin asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetryDeadJobs {
    /// The queue's name.
    pub queue: String,
    /// Jobs that died at or before this instant (ms since the epoch) come back: one that dies
    /// again during the run is not retried twice.
    pub died_by: i64,
}

impl JobPayload for RetryDeadJobs {
    const KIND: &'static str = "retry_dead_jobs";
    const QUEUE: Queue = Queue::Maintenance;
    /// Bulk work: it only puts other jobs back in line.
    const PRIORITY: Priority = Priority::BATCH;
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        timeout: Duration::from_secs(30 * 60),
        backoff_base: Duration::from_secs(10),
        backoff_max: Duration::from_secs(5 * 60),
    };
}
