//! The email job: renders a template for a user and sends it.
//!
//! The payload names the user and the template only. Links that need a secret token (verify,
//! reset) get a fresh token minted by the job itself, so no secret ever sits in a job payload
//! or in the queue.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{JobPayload, Queue, RetryPolicy};

/// Which mail to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTemplate {
    /// "Confirm your address", with a 24 h single-use link.
    VerifyEmail,
    /// "Reset your password", with a 1 h single-use link.
    PasswordReset,
    /// "Your password was changed": tells the owner when it was not them.
    PasswordChanged,
}

/// Send `template` to the user `user_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendEmail {
    /// The recipient's account (its address is read at send time, never stored here).
    pub user_id: Uuid,
    /// What to send.
    pub template: EmailTemplate,
}

impl JobPayload for SendEmail {
    const KIND: &'static str = "send_email";
    const QUEUE: Queue = Queue::Email;
    /// An SMTP outage of a few hours is survivable: 10 attempts span about 1.5 hours.
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 10,
        timeout: Duration::from_secs(60),
        backoff_base: Duration::from_secs(10),
        backoff_max: Duration::from_secs(30 * 60),
    };
}
