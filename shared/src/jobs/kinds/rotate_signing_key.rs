//! What a `rotate_signing_key` job is: its payload, queue and retry policy. `tend-worker` runs it
//! (`worker/src/jobs/rotate_signing_key.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::jobs::{JobPayload, Periodic, Priority, Queue, RetryPolicy};

/// Rotate for one schedule tick.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotateSigningKey {
    /// The schedule tick (ms since the epoch): one key per tick.
    pub scheduled_for: i64,
}

impl JobPayload for RotateSigningKey {
    const KIND: &'static str = "rotate_signing_key";
    const QUEUE: Queue = Queue::Maintenance;
    /// Housekeeping: nobody waits for it.
    const PRIORITY: Priority = Priority::BATCH;
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        timeout: Duration::from_secs(60),
        backoff_base: Duration::from_secs(30),
        backoff_max: Duration::from_secs(30 * 60),
    };
}

impl Periodic for RotateSigningKey {
    const DEFAULT_CRON: &'static str = "0 0 4 1 * *";
    const DESCRIPTION: &'static str = "Rotates the key that signs access tokens (monthly): the new key signs, the old \
         one verifies its tokens until they expire, and keys that verify nothing any more \
         are deleted.";

    fn for_tick(scheduled_for: i64, _dry_run: bool) -> Self {
        Self { scheduled_for }
    }
}
