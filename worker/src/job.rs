//! What a job kind implements: one attempt's work, and what happens to the kind's subject when
//! an attempt fails or the job dies. Everything else (claim, lease, timeout, panics, retries,
//! outcome) is the runner's, the same for every kind.

use std::future::Future;

use tend_shared::{
    db::jobs::JobRow,
    jobs::{JobError, JobPayload, JobTx},
};

use crate::env::JobEnv;

/// The handler side of a job kind. The kind's declaration ([`JobPayload`]: name, queue, policy)
/// and this impl live together in one file under `jobs/`, listed once in [`crate::registry`].
pub trait Job: JobPayload {
    /// Runs one attempt. Must be idempotent: delivery is at least once.
    fn run(&self, ctx: &JobCtx<'_>) -> impl Future<Output = Result<(), JobError>> + Send;

    /// After a failed attempt that will be retried (a session shows the latest error).
    fn on_retry(&self, _ctx: &JobCtx<'_>, _error: &str) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Once the job is dead, whichever way it died: a permanent error, its last attempt
    /// failing, timing out or panicking, its workers lost on every attempt, or a kill. Kinds
    /// that own state (a session's stage, an export) mark it failed here, in `tx`: the
    /// transaction that records the job dead, so the two never disagree. When this fails the
    /// job is recorded dead alone and the repair pass fails the subject later
    /// (`tend_shared::db::repair`).
    fn on_dead(
        &self,
        _ctx: &JobCtx<'_>,
        _tx: &mut JobTx,
        _error: &str,
    ) -> impl Future<Output = sqlx::Result<()>> + Send {
        async { Ok(()) }
    }

    /// After the job was recorded cancelled while an attempt of this process held it (its
    /// subject already reads `cancelled`): removes what the stopped attempt may have left in
    /// the object store. Best effort; the cleanup job sweeps orphans.
    fn on_cancelled(&self, _ctx: &JobCtx<'_>) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// What one attempt may see: the environment and its own ledger row.
pub struct JobCtx<'a> {
    /// Connections and clients.
    pub env: &'a JobEnv,
    /// The job being run (its id, attempt count, origin).
    pub job: &'a JobRow,
}
