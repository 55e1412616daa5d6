//! The kinds this worker runs: what each does (its handler and hooks) beside what it is
//! (declared in `tend_shared::jobs::kinds`, which the API and the scheduler name). Adding a
//! kind: declare its payload in `shared/src/jobs/kinds/<kind>.rs` (and in that module's
//! `KINDS`), write `jobs/<kind>.rs` (its `Job`), and add one line to [`KINDS`]; a test holds
//! the two lists equal.

use futures::future::BoxFuture;
use tend_shared::jobs::{JobError, JobPayload, JobTx, Queue, RetryPolicy};

use crate::job::{Job, JobCtx};
use tend_shared::jobs::kinds::{
    account_mail::AnswerMailRequest, backup::Backup, cleanup::Cleanup, daily_stats::DailyStats,
    data_export::DataExport, draft_mission::DraftMission, email::SendEmail,
    erase_account::EraseAccount, extract::ExtractNotes, invitation::SendInvitation,
    render_export::RenderExport, retry_dead::RetryDeadJobs, rotate_signing_key::RotateSigningKey,
    transcribe::TranscribeSession, weekly_snapshots::WeeklySnapshots,
};

/// Every job kind this build runs.
pub static KINDS: &[Kind] = &[
    Kind::of::<SendEmail>(),
    Kind::of::<SendInvitation>(),
    Kind::of::<AnswerMailRequest>(),
    Kind::of::<Cleanup>(),
    Kind::of::<DailyStats>(),
    Kind::of::<WeeklySnapshots>(),
    Kind::of::<Backup>(),
    Kind::of::<EraseAccount>(),
    Kind::of::<TranscribeSession>(),
    Kind::of::<ExtractNotes>(),
    Kind::of::<RenderExport>(),
    Kind::of::<DraftMission>(),
    Kind::of::<DataExport>(),
    Kind::of::<RetryDeadJobs>(),
    Kind::of::<RotateSigningKey>(),
];

/// A job kind with its type erased, as the runner uses it.
pub struct Kind {
    /// Its name in the ledger.
    pub name: &'static str,
    /// The queue it runs on.
    pub queue: Queue,
    /// Attempts, timeout and backoff.
    pub policy: RetryPolicy,
    run: for<'a> fn(&'a JobCtx<'a>) -> BoxFuture<'a, Result<(), JobError>>,
    on_retry: for<'a> fn(&'a JobCtx<'a>, &'a str) -> BoxFuture<'a, ()>,
    on_dead: for<'a> fn(&'a JobCtx<'a>, &'a mut JobTx, &'a str) -> BoxFuture<'a, sqlx::Result<()>>,
    on_cancelled: for<'a> fn(&'a JobCtx<'a>) -> BoxFuture<'a, ()>,
}

impl Kind {
    /// The entry of kind `J`.
    pub const fn of<J: Job>() -> Self {
        Self {
            name: J::KIND,
            queue: J::QUEUE,
            policy: J::POLICY,
            run: run::<J>,
            on_retry: on_retry::<J>,
            on_dead: on_dead::<J>,
            on_cancelled: on_cancelled::<J>,
        }
    }

    /// Decodes the payload and runs one attempt.
    pub fn run<'a>(&self, ctx: &'a JobCtx<'a>) -> BoxFuture<'a, Result<(), JobError>> {
        (self.run)(ctx)
    }

    /// Runs the kind's hook for a failed attempt that will be retried ([`Job::on_retry`]).
    pub fn on_retry<'a>(&self, ctx: &'a JobCtx<'a>, error: &'a str) -> BoxFuture<'a, ()> {
        (self.on_retry)(ctx, error)
    }

    /// Runs the kind's dead hook in the transaction that records the job dead
    /// ([`Job::on_dead`]).
    pub fn on_dead<'a>(
        &self,
        ctx: &'a JobCtx<'a>,
        tx: &'a mut JobTx,
        error: &'a str,
    ) -> BoxFuture<'a, sqlx::Result<()>> {
        (self.on_dead)(ctx, tx, error)
    }

    /// Runs the kind's hook after a cancelled job is recorded ([`Job::on_cancelled`]).
    pub fn on_cancelled<'a>(&self, ctx: &'a JobCtx<'a>) -> BoxFuture<'a, ()> {
        (self.on_cancelled)(ctx)
    }
}

/// The kind named `name`, if this build knows it.
pub fn find(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|kind| kind.name == name)
}

fn run<'a, J: Job>(ctx: &'a JobCtx<'a>) -> BoxFuture<'a, Result<(), JobError>> {
    Box::pin(async move { decode::<J>(&ctx.job.payload)?.run(ctx).await })
}

fn on_retry<'a, J: Job>(ctx: &'a JobCtx<'a>, error: &'a str) -> BoxFuture<'a, ()> {
    Box::pin(async move {
        // A payload that does not decode has no subject to tell.
        if let Ok(payload) = decode::<J>(&ctx.job.payload) {
            payload.on_retry(ctx, error).await;
        }
    })
}

fn on_dead<'a, J: Job>(
    ctx: &'a JobCtx<'a>,
    tx: &'a mut JobTx,
    error: &'a str,
) -> BoxFuture<'a, sqlx::Result<()>> {
    Box::pin(async move {
        match decode::<J>(&ctx.job.payload) {
            Ok(payload) => payload.on_dead(ctx, tx, error).await,
            Err(_) => Ok(()),
        }
    })
}

fn on_cancelled<'a, J: Job>(ctx: &'a JobCtx<'a>) -> BoxFuture<'a, ()> {
    Box::pin(async move {
        if let Ok(payload) = decode::<J>(&ctx.job.payload) {
            payload.on_cancelled(ctx).await;
        }
    })
}

fn decode<J: JobPayload>(payload: &str) -> Result<J, JobError> {
    serde_json::from_str(payload).map_err(|e| JobError::permanent("malformed payload", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the rest of Tend names (`tend_shared::jobs::kinds::KINDS`) is what this
    /// worker runs, kind for kind, with the same queue and policy.
    #[test]
    fn the_worker_runs_every_declared_kind_and_no_other() {
        let declared = tend_shared::jobs::kinds::KINDS;
        assert_eq!(KINDS.len(), declared.len());
        for kind in KINDS {
            let info = tend_shared::jobs::kinds::find(kind.name)
                .unwrap_or_else(|| panic!("{} is run but not declared", kind.name));
            assert_eq!(info.queue, kind.queue, "{}", kind.name);
            assert_eq!(
                info.policy.max_attempts, kind.policy.max_attempts,
                "{}",
                kind.name
            );
        }
    }

    #[test]
    fn kind_names_are_unique() {
        for (i, kind) in KINDS.iter().enumerate() {
            assert!(
                KINDS[i + 1..].iter().all(|other| other.name != kind.name),
                "{} is listed twice",
                kind.name
            );
        }
    }
}
