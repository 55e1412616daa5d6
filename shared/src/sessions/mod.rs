//! Recorded sessions: what an upload is, how a session moves through its stages, and what the
//! notes extracted from it must look like. Storage is in [`crate::db::sessions`], the jobs in
//! [`crate::jobs::kinds`] (`transcribe`, `extract`).

pub mod media;
pub mod notes;
pub mod transcript;

pub use media::{Sniffed, TranscriptFormat, sniff};
pub use notes::{MoodTrajectory, Notes, SessionMood};
pub use transcript::Segment;

/// The object-store key of a session's recording.
pub fn recording_key(session_id: &uuid::Uuid) -> String {
    format!("sessions/{session_id}/recording")
}

/// Where a session is in its processing. Its moves are listed in
/// [`crate::lifecycle`] with the other records' state machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::VariantArray, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum SessionStatus {
    /// Stored; transcription is queued.
    Uploaded,
    /// The transcription job is running (or retrying).
    Transcribing,
    /// The transcript is stored; extraction is queued.
    Transcribed,
    /// The extraction job is running (or retrying).
    Extracting,
    /// Notes are ready.
    Processed,
    /// A stage failed for good; `failed_stage` and `error` say which and why.
    Failed,
    /// A paid stage waits: the practice's monthly budget is spent (`error` says so). Raising
    /// the budget, or the next month, resumes it.
    #[strum(serialize = "budget_exceeded")]
    BudgetExceeded,
    /// Its practitioner (or an admin) stopped its processing.
    Cancelled,
}

impl SessionStatus {
    /// Every status, in pipeline order.
    pub const ALL: [SessionStatus; 8] = [
        SessionStatus::Uploaded,
        SessionStatus::Transcribing,
        SessionStatus::Transcribed,
        SessionStatus::Extracting,
        SessionStatus::Processed,
        SessionStatus::Failed,
        SessionStatus::BudgetExceeded,
        SessionStatus::Cancelled,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Uploaded => "uploaded",
            SessionStatus::Transcribing => "transcribing",
            SessionStatus::Transcribed => "transcribed",
            SessionStatus::Extracting => "extracting",
            SessionStatus::Processed => "processed",
            SessionStatus::Failed => "failed",
            SessionStatus::BudgetExceeded => "budget_exceeded",
            SessionStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// A stored status is read into the enum, or the row is refused as unreadable (`sqlx`'s
/// `try_from`): never guessed.
impl TryFrom<String> for SessionStatus {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw).ok_or_else(|| format!("unknown session status {raw:?}"))
    }
}

/// A processing stage, named when a session fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Audio to transcript.
    Transcription,
    /// Transcript to notes.
    Extraction,
}

impl Stage {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Transcription => "transcription",
            Stage::Extraction => "extraction",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "transcription" => Some(Stage::Transcription),
            "extraction" => Some(Stage::Extraction),
            _ => None,
        }
    }

    /// The status a session returns to when this stage is retried.
    pub fn queued_status(self) -> SessionStatus {
        match self {
            Stage::Transcription => SessionStatus::Uploaded,
            Stage::Extraction => SessionStatus::Transcribed,
        }
    }

    /// The status of a session while this stage runs.
    pub fn running_status(self) -> SessionStatus {
        match self {
            Stage::Transcription => SessionStatus::Transcribing,
            Stage::Extraction => SessionStatus::Extracting,
        }
    }
}
