//! The two stages of a recorded session, as jobs. Payloads carry the session id only: the
//! audio stays in the object store and the transcript and notes in the database.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{JobPayload, Queue, RetryPolicy};

/// Transcribe the session's audio (chunked when over the provider's upload limit).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TranscribeSession {
    /// The session.
    pub session_id: Uuid,
}

impl JobPayload for TranscribeSession {
    const KIND: &'static str = "transcribe_session";
    const QUEUE: Queue = Queue::Transcription;
    /// A provider outage of about an hour is survivable; one attempt may take long (a
    /// two-hour recording is a dozen chunk requests).
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 6,
        timeout: Duration::from_secs(60 * 60),
        backoff_base: Duration::from_secs(30),
        backoff_max: Duration::from_secs(20 * 60),
    };
}

/// Extract structured notes from the session's transcript.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtractNotes {
    /// The session.
    pub session_id: Uuid,
}

impl JobPayload for ExtractNotes {
    const KIND: &'static str = "extract_notes";
    const QUEUE: Queue = Queue::Extraction;
    /// As transcription; long transcripts are several requests.
    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 6,
        timeout: Duration::from_secs(30 * 60),
        backoff_base: Duration::from_secs(30),
        backoff_max: Duration::from_secs(20 * 60),
    };
}
