//! The cleanup job: deletes what can no longer be used (expired or spent tokens, old finished
//! jobs, the leftovers of abandoned uploads). Enqueued by the scheduler; safe to run twice.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{JobPayload, Queue, RetryPolicy};

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
/// Finished deliveries stay in the transport this long (for apalis' own tools), then go.
pub const KEEP_DELIVERIES: Duration = Duration::from_secs(3600);
/// An upload still pending after this long was abandoned (a 500 MiB upload takes a day only
/// below 6 KB/s); whatever it stored is removed.
pub const ABANDONED_UPLOAD_AFTER: Duration = Duration::from_secs(24 * 3600);
