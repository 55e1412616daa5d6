//! What a `account_mail` job is: its payload, queue and retry policy. `tend-worker` runs it
//! (`worker/src/jobs/account_mail.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::jobs::{JobPayload, Priority, Queue, RetryPolicy};

/// Answer the account-mail request `request_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnswerMailRequest {
    /// The stored request (its address stays in the database).
    pub request_id: Uuid,
}

impl JobPayload for AnswerMailRequest {
    const KIND: &'static str = "answer_mail_request";
    const QUEUE: Queue = Queue::Email;
    /// Someone waits for this mail: a verification link or a password reset.
    const PRIORITY: Priority = Priority::INTERACTIVE;
    /// Database work only; the mail it starts has its own, longer patience.
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        timeout: Duration::from_secs(30),
        backoff_base: Duration::from_secs(2),
        backoff_max: Duration::from_secs(60),
    };
}
