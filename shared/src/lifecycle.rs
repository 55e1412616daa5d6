//! The state machines of the ledger's jobs and of the records a job works on: a recorded
//! session, an export, a personal data export, a mission draft. Each is an enum, stored as its
//! lower-case name, with the moves it allows listed once ([`Lifecycle::MOVES`]). The guarded updates in [`crate::db`] build their
//! `WHERE status IN (..)` from that list ([`Lifecycle::entered_from`]), so a move that is not
//! listed cannot happen, and a stored state is read into the enum or refused as unreadable,
//! never matched with a catch-all.

use std::fmt;

use crate::{jobs::JobState, sessions::SessionStatus};

/// A record's states and the moves between them.
pub trait Lifecycle:
    Copy + Eq + fmt::Debug + Into<&'static str> + strum::VariantArray + 'static
{
    /// Every allowed move, `(from, to)`.
    const MOVES: &'static [(Self, Self)];
    /// The column that stores the state.
    const COLUMN: &'static str = "status";

    /// The stored name.
    fn name(self) -> &'static str {
        self.into()
    }

    /// Whether `self` may move to `next`.
    fn may_become(self, next: Self) -> bool {
        Self::MOVES.contains(&(self, next))
    }

    /// The states `next` is entered from, as an SQL list (`'queued', 'rendering'`) for a
    /// guarded update: the names are this enum's, never input.
    fn entered_from(next: Self) -> String {
        sql_list(&Self::sources(next))
    }

    /// The states `next` is entered from.
    fn sources(next: Self) -> Vec<Self> {
        Self::MOVES
            .iter()
            .filter(|(_, to)| *to == next)
            .map(|(from, _)| *from)
            .collect()
    }
}

/// `UPDATE {table} SET status = '{next}', {set} WHERE {filter} AND status IN (..)` (`state`
/// for a job: [`Lifecycle::COLUMN`]), the states listed being those `next` is entered from:
/// the one way [`crate::db`] moves a record's state. `set` and `filter` are the caller's SQL (never input), with its binds.
pub fn update_to<S: Lifecycle>(table: &str, next: S, set: &str, filter: &str) -> String {
    update_from(table, &S::sources(next), next, set, filter)
}

/// `UPDATE {table} SET status = '{next}', {set} WHERE {filter} AND status IN ({from})`: a move
/// from some of the states `next` is entered from, for a statement that must be narrower than
/// [`update_to`] (a session finishing its transcription moves on from `transcribing` only,
/// although a retried extraction also enters `transcribed`).
///
/// # Panics
/// When a listed move is not in `S::MOVES`: a statement that would make an unlisted move is a
/// bug, caught the first time any test runs it.
pub fn update_from<S: Lifecycle>(
    table: &str,
    from: &[S],
    next: S,
    set: &str,
    filter: &str,
) -> String {
    for state in from {
        assert!(
            state.may_become(next),
            "{table}: the move {state:?} -> {next:?} is not in its lifecycle"
        );
    }
    let column = S::COLUMN;
    format!(
        "UPDATE {table} SET {column} = '{}', {set} WHERE {filter} AND {column} IN ({})",
        next.name(),
        sql_list(from)
    )
}

/// States as an SQL list (`'queued', 'rendering'`): the names are the enum's, never input.
fn sql_list<S: Lifecycle>(states: &[S]) -> String {
    states
        .iter()
        .map(|state| format!("'{}'", state.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Implements the conversions a stored state needs: from its text (for `sqlx`'s
/// `try_from = "String"`), and to it.
macro_rules! stored_as_text {
    ($state:ty) => {
        impl TryFrom<String> for $state {
            type Error = strum::ParseError;

            fn try_from(raw: String) -> Result<Self, Self::Error> {
                raw.parse()
            }
        }

        impl $state {
            /// The stored name.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    };
}

/// Where an export (a rendered document) is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    strum::VariantArray,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::Display,
)]
#[strum(serialize_all = "lowercase")]
pub enum ExportStatus {
    /// Waiting for a worker.
    Queued,
    /// Being rendered (or waiting for a retry after a failed attempt).
    Rendering,
    /// The file can be downloaded until it expires.
    Ready,
    /// Rendering failed for good.
    Failed,
    /// The file was removed.
    Expired,
    /// Its practitioner (or an admin) stopped it; no file.
    Cancelled,
}

impl Lifecycle for ExportStatus {
    const MOVES: &'static [(Self, Self)] = &[
        (Self::Queued, Self::Rendering),
        // Another attempt takes over (a crashed worker's, or a retry).
        (Self::Rendering, Self::Rendering),
        (Self::Rendering, Self::Ready),
        (Self::Queued, Self::Failed),
        (Self::Rendering, Self::Failed),
        // An admin retries the dead job.
        (Self::Failed, Self::Queued),
        (Self::Ready, Self::Expired),
        (Self::Queued, Self::Cancelled),
        (Self::Rendering, Self::Cancelled),
    ];
}

stored_as_text!(ExportStatus);

/// Where a personal data export is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    strum::VariantArray,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::Display,
)]
#[strum(serialize_all = "lowercase")]
pub enum DataExportStatus {
    /// Waiting for a worker.
    Queued,
    /// The archive is being written (or waits for a retry).
    Building,
    /// The archive can be downloaded until it expires.
    Ready,
    /// Building failed for good.
    Failed,
    /// The archive was removed.
    Expired,
    /// Its account holder (or an admin) stopped it; no archive.
    Cancelled,
}

impl Lifecycle for DataExportStatus {
    const MOVES: &'static [(Self, Self)] = &[
        (Self::Queued, Self::Building),
        (Self::Building, Self::Building),
        (Self::Building, Self::Ready),
        (Self::Queued, Self::Failed),
        (Self::Building, Self::Failed),
        (Self::Failed, Self::Queued),
        (Self::Ready, Self::Expired),
        (Self::Queued, Self::Cancelled),
        (Self::Building, Self::Cancelled),
    ];
}

stored_as_text!(DataExportStatus);

/// Where a mission draft is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    strum::VariantArray,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::Display,
)]
#[strum(serialize_all = "lowercase")]
pub enum DraftStatus {
    /// Waiting for a worker.
    Queued,
    /// The model is writing the plan (or the draft waits for a retry).
    Generating,
    /// The plan is written.
    Ready,
    /// No plan; the error says why.
    Failed,
    /// Waits for the practice's budget (the error says so); resumes when it is raised.
    #[strum(serialize = "budget_exceeded")]
    BudgetExceeded,
    /// Its requester (or an admin) stopped it.
    Cancelled,
}

impl Lifecycle for DraftStatus {
    const MOVES: &'static [(Self, Self)] = &[
        (Self::Queued, Self::Generating),
        (Self::Generating, Self::Generating),
        (Self::Generating, Self::Ready),
        (Self::Queued, Self::Failed),
        (Self::Generating, Self::Failed),
        (Self::Failed, Self::Queued),
        (Self::Queued, Self::BudgetExceeded),
        (Self::Generating, Self::BudgetExceeded),
        (Self::BudgetExceeded, Self::Queued),
        (Self::BudgetExceeded, Self::Failed),
        (Self::Queued, Self::Cancelled),
        (Self::Generating, Self::Cancelled),
        (Self::BudgetExceeded, Self::Cancelled),
    ];
}

stored_as_text!(DraftStatus);

impl Lifecycle for JobState {
    const COLUMN: &'static str = "state";
    const MOVES: &'static [(Self, Self)] = &[
        // A worker claims a due job (new, handed back, or due for a retry).
        (Self::Pending, Self::Running),
        (Self::Failed, Self::Running),
        // A renewal keeps the lease; an attempt whose lease was handed back while nobody
        // claimed the job since takes it back.
        (Self::Running, Self::Running),
        (Self::Pending, Self::Running),
        // An attempt ends, fenced by its claim: the latest attempt, running or handed back.
        (Self::Running, Self::Done),
        (Self::Pending, Self::Done),
        (Self::Running, Self::Failed),
        (Self::Pending, Self::Failed),
        (Self::Running, Self::Dead),
        (Self::Pending, Self::Dead),
        (Self::Running, Self::Cancelled),
        (Self::Pending, Self::Cancelled),
        // A paid job past its practice's budget waits before it starts.
        (Self::Running, Self::Held),
        (Self::Pending, Self::Held),
        // Its worker was lost (the lease lapsed) or cut it at shutdown: another takes it.
        (Self::Running, Self::Pending),
        // Released when the budget allows (or killed: a worker claims it to bury it).
        (Self::Held, Self::Pending),
        // An admin's retry.
        (Self::Dead, Self::Pending),
        (Self::Failed, Self::Pending),
        // Cancelled while it waits.
        (Self::Failed, Self::Cancelled),
        (Self::Held, Self::Cancelled),
    ];
}

impl Lifecycle for SessionStatus {
    const MOVES: &'static [(Self, Self)] = &[
        (Self::Uploaded, Self::Transcribing),
        // A retried attempt takes its stage over.
        (Self::Transcribing, Self::Transcribing),
        (Self::Transcribing, Self::Transcribed),
        (Self::Transcribed, Self::Extracting),
        (Self::Extracting, Self::Extracting),
        (Self::Extracting, Self::Processed),
        // A stage's job is dead (or was lost): the session says so, whatever it was waiting for.
        (Self::Uploaded, Self::Failed),
        (Self::Transcribing, Self::Failed),
        (Self::Transcribed, Self::Failed),
        (Self::Extracting, Self::Failed),
        (Self::Failed, Self::Failed),
        // A retry resumes at the failed stage; a re-extraction starts from the transcript.
        (Self::Failed, Self::Uploaded),
        (Self::Failed, Self::Transcribed),
        (Self::Processed, Self::Transcribed),
        // A paid stage that would start past the practice's budget waits, and resumes where
        // it was held once the budget allows.
        (Self::Uploaded, Self::BudgetExceeded),
        (Self::Transcribing, Self::BudgetExceeded),
        (Self::Transcribed, Self::BudgetExceeded),
        (Self::Extracting, Self::BudgetExceeded),
        (Self::BudgetExceeded, Self::Uploaded),
        (Self::BudgetExceeded, Self::Transcribed),
        (Self::BudgetExceeded, Self::Failed),
        // Its practitioner stops it while it is in progress (or waiting for the budget).
        (Self::Uploaded, Self::Cancelled),
        (Self::Transcribing, Self::Cancelled),
        (Self::Transcribed, Self::Cancelled),
        (Self::Extracting, Self::Cancelled),
        (Self::BudgetExceeded, Self::Cancelled),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<S: Lifecycle>() {
        for state in S::VARIANTS {
            let reached = S::MOVES.iter().any(|(_, to)| to == state);
            let first = ["queued", "uploaded", "pending"].contains(&state.name());
            assert!(reached || first, "{state:?} cannot be reached");
        }
    }

    #[test]
    fn every_state_is_reachable_and_named_in_lower_case() {
        check::<ExportStatus>();
        check::<DataExportStatus>();
        check::<DraftStatus>();
        check::<SessionStatus>();
        check::<JobState>();
        for state in JobState::ALL {
            assert_eq!(state.name(), state.as_str());
        }
        for state in SessionStatus::ALL {
            assert_eq!(state.name(), state.as_str());
        }
        assert_eq!(
            ExportStatus::entered_from(ExportStatus::Failed),
            "'queued', 'rendering'"
        );
        assert_eq!(
            DraftStatus::entered_from(DraftStatus::Queued),
            "'failed', 'budget_exceeded'"
        );
        assert!(!DataExportStatus::Ready.may_become(DataExportStatus::Building));
        assert_eq!(
            ExportStatus::try_from("expired".to_owned()).unwrap(),
            ExportStatus::Expired
        );
        assert!(ExportStatus::try_from("lost".to_owned()).is_err());
    }

    #[test]
    fn a_narrower_move_names_its_states_and_an_unlisted_one_is_refused() {
        use SessionStatus::*;
        assert_eq!(
            update_from("sessions", &[Transcribing], Transcribed, "x = 1", "id = $1"),
            "UPDATE sessions SET status = 'transcribed', x = 1 WHERE id = $1 AND status IN ('transcribing')"
        );
        let unlisted = std::panic::catch_unwind(|| {
            update_from("sessions", &[Processed], Failed, "x = 1", "id = $1")
        });
        assert!(unlisted.is_err(), "processed notes are never failed");
        assert_eq!(
            SessionStatus::try_from("extracting".to_owned()).unwrap(),
            Extracting
        );
        assert!(SessionStatus::try_from("lost".to_owned()).is_err());
    }
}
