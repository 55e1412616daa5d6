//! What a `rotate_signing_key` job is: its payload, queue and retry policy. `tend-worker` runs it
//! (`worker/src/jobs/rotate_signing_key.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::jobs::{JobPayload, Queue, RetryPolicy};

/// Rotate for one schedule tick.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotateSigningKey {
    /// The schedule tick (ms since the epoch): one key per tick.
    pub scheduled_for: i64,
}

impl JobPayload for RotateSigningKey {
    const KIND: &'static str = "rotate_signing_key";
    const QUEUE: Queue = Queue::Maintenance;
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        timeout: Duration::from_secs(60),
        backoff_base: Duration::from_secs(30),
        backoff_max: Duration::from_secs(30 * 60),
    };
}
