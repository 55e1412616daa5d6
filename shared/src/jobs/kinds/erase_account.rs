//! What a `erase_account` job is: its payload, queue and retry policy. `tend-worker` runs it
//! (`worker/src/jobs/erase_account.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::jobs::{JobPayload, Queue, RetryPolicy};

/// Erase one account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EraseAccount {
    /// The account.
    pub user_id: Uuid,
}

impl JobPayload for EraseAccount {
    const KIND: &'static str = "erase_account";
    const QUEUE: Queue = Queue::Maintenance;
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 10,
        timeout: Duration::from_secs(60 * 60),
        backoff_base: Duration::from_secs(30),
        backoff_max: Duration::from_secs(30 * 60),
    };
}
