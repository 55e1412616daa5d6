//! The one list of job kinds. The runner finds a kind's policy and handler here, and nothing
//! else lists kinds. Adding a kind: write `jobs/<kind>.rs` (payload, `JobPayload`, `Job`) and add
//! one line to [`KINDS`].

use futures::future::BoxFuture;
use sqlx::AnyConnection;
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
    on_admin_retry:
        for<'a> fn(&'a mut AnyConnection, &'a str, &'a str) -> BoxFuture<'a, Result<(), String>>,
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
            on_admin_retry: on_admin_retry::<J>,
        }
    }

    /// Runs the kind's hook for an admin's retry of the dead job `job_id` with `payload`, in
    /// the caller's transaction ([`Job::on_admin_retry`]).
    pub fn on_admin_retry<'a>(
        &self,
        conn: &'a mut AnyConnection,
        payload: &'a str,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        (self.on_admin_retry)(conn, payload, job_id)
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
}

/// The kind named `name`, if this build knows it.
pub fn find(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|kind| kind.name == name)
}

/// Why an admin's retry of a job did not happen.
#[derive(Debug)]
pub enum RetryRefused {
    /// The job is neither dead nor failed (finished, running, or gone).
    NotRetryable,
    /// Its kind's subject moved on meanwhile (a session retried by its practitioner): why.
    SubjectMovedOn(String),
}

/// An admin's retry of the job `id` of kind `kind` (with `payload`; `dead` when it is dead),
/// in `conn`'s transaction: due now with its attempts counted afresh and, for a dead job, the
/// kind's [`Job::on_admin_retry`] hook putting its subject back to waiting. On a refusal the
/// caller rolls its transaction (or savepoint) back. The single retry of the admin API and
/// the bulk `retry_dead_jobs` both go through here.
pub async fn admin_retry(
    conn: &mut AnyConnection,
    id: &str,
    kind: &str,
    payload: &str,
    dead: bool,
) -> sqlx::Result<Result<(), RetryRefused>> {
    if !tend_shared::db::job_admin::retry(conn, id).await? {
        return Ok(Err(RetryRefused::NotRetryable));
    }
    if dead
        && let Some(kind) = find(kind)
        && let Err(reason) = kind.on_admin_retry(conn, payload, id).await
    {
        return Ok(Err(RetryRefused::SubjectMovedOn(reason)));
    }
    Ok(Ok(()))
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

fn on_admin_retry<'a, J: Job>(
    conn: &'a mut AnyConnection,
    payload: &'a str,
    job_id: &'a str,
) -> BoxFuture<'a, Result<(), String>> {
    Box::pin(async move {
        let payload = decode::<J>(payload).map_err(|e| e.to_string())?;
        payload.on_admin_retry(conn, job_id).await
    })
}

fn decode<J: JobPayload>(payload: &str) -> Result<J, JobError> {
    serde_json::from_str(payload).map_err(|e| JobError::permanent("malformed payload", e))
}

#[cfg(test)]
mod tests {
    use super::*;

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
