//! The job's state in the ledger, parsed in this one place.

use std::{fmt, str::FromStr};

/// Where a job is in its life. Stored as text in `jobs.state` (the table's CHECK lists the same
/// seven words); its moves are listed in [`crate::lifecycle`] with the other state machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::VariantArray, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum JobState {
    /// Waiting to run at `run_at` (new, or handed back after its worker was lost).
    Pending,
    /// A worker holds its lease and runs it.
    Running,
    /// Finished successfully.
    Done,
    /// An attempt failed; a retry is due at `run_at`.
    Failed,
    /// Will not run again: a permanent error, attempts used up, or killed.
    Dead,
    /// Waits for something outside it before it may run (`jobs.held_reason`: a practice past
    /// its monthly budget); never handed to the transport until released.
    Held,
    /// Stopped at the request of its owner or an admin; will not run again.
    Cancelled,
}

impl JobState {
    /// Every state, in the order of a job's life.
    pub const ALL: [JobState; 7] = [
        JobState::Pending,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Dead,
        JobState::Held,
        JobState::Cancelled,
    ];

    /// The word stored in the ledger and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::Held => "held",
            JobState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state word the ledger does not know: a bug or a newer schema, never silently mapped.
#[derive(Debug, thiserror::Error)]
#[error("unknown job state {0:?}")]
pub struct UnknownJobState(pub String);

impl FromStr for JobState {
    type Err = UnknownJobState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownJobState(s.to_owned()))
    }
}

impl TryFrom<String> for JobState {
    type Error = UnknownJobState;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_and_unknown_words_are_refused() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
        }
        assert!("queued".parse::<JobState>().is_err());
    }
}
