//! What a `email` job is: its payload, queue and retry policy. `tend-worker` runs it
//! (`worker/src/jobs/email.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::jobs::{JobPayload, Priority, Queue, RetryPolicy};

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
    /// "An invitation to link your account", with a 7-day single-use link; sent to an
    /// invited address by [`super::invitation`], never to an account by [`SendEmail`].
    PatientInvitation,
    /// "Your training mission draft is ready", linking the draft (`subject_id`).
    MissionDraftReady,
    /// "Your training mission could not be drafted", linking the draft, which says why.
    MissionDraftFailed,
    /// "Your data export is ready", linking its download (`subject_id`), for 7 days.
    DataExportReady,
}

/// Send `template` to the user `user_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendEmail {
    /// The recipient's account (its address is read at send time, never stored here).
    pub user_id: Uuid,
    /// What to send.
    pub template: EmailTemplate,
    /// The record the mail is about (a mission draft, a data export), for its link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_id: Option<Uuid>,
}

impl JobPayload for SendEmail {
    const KIND: &'static str = "send_email";
    const QUEUE: Queue = Queue::Email;
    /// A mail somebody waits for (a verification link, a notice that their work is ready).
    const PRIORITY: Priority = Priority::INTERACTIVE;
    /// An SMTP outage of a few hours is survivable: 10 attempts span about 1.5 hours.
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 10,
        timeout: Duration::from_secs(60),
        backoff_base: Duration::from_secs(10),
        backoff_max: Duration::from_secs(30 * 60),
    };
}
