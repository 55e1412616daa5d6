//! What a `invitation` job is: its payload, queue and retry policy. `tend-worker` runs it
//! (`worker/src/jobs/invitation.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::email::SendEmail;
use crate::jobs::{JobPayload, Priority, Queue, RetryPolicy};

/// How long an invitation stays open.
pub const INVITATION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Mail the invitation open on patient record `patient_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendInvitation {
    /// The invited record (its address is read at send time).
    pub patient_id: Uuid,
}

impl JobPayload for SendInvitation {
    const KIND: &'static str = "send_invitation";
    const QUEUE: Queue = Queue::Email;
    /// The practitioner who invites waits for it to arrive.
    const PRIORITY: Priority = Priority::INTERACTIVE;
    /// Mail: the same patience with SMTP as every other mail.
    const POLICY: RetryPolicy = SendEmail::POLICY;
}
