//! What every job kind declares ([`JobPayload`]: its name, queue and policy) and the one way to
//! start jobs ([`JobTx`]).
//!
//! What each kind is (its payload, queue and policy) is declared once in [`kinds`], where the
//! API and the scheduler name it; what it does (its handler) lives in `tend-worker`'s `jobs`
//! folder, one file per kind, listed once in its registry.
//!
//! A job is enqueued inside the transaction of the request (or job) that starts it, so either
//! both the change and the job are stored or neither is (the transactional outbox). When that
//! transaction commits, [`JobTx::commit`] hands the new jobs to the transport at once; the relay
//! in [`crate::queue`] catches up on anything that could not be handed over then.

pub mod kinds;
pub mod priority;
pub mod queues;
pub mod state;
mod tx;

pub use priority::Priority;
pub use queues::Queue;
pub use state::{JobState, UnknownJobState};
pub use tx::JobTx;

use std::time::Duration;

use futures::future::BoxFuture;
use rand::Rng;
use serde::{Serialize, de::DeserializeOwned};
use sqlx::AnyConnection;

use crate::db::{self, jobs::NewJob, now_ms};

/// How often and how long a kind of job may run.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; after the last failure the job is dead.
    pub max_attempts: u32,
    /// One attempt longer than this fails (transiently) with a timeout.
    pub timeout: Duration,
    /// Wait before the first retry; doubled at each further one.
    pub backoff_base: Duration,
    /// Longest wait between two attempts.
    pub backoff_max: Duration,
}

impl RetryPolicy {
    /// Exponential backoff with ±20% jitter (so a failed burst does not retry in lockstep).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let raw = self.backoff_base.saturating_mul(1u32 << exp.min(20));
        let capped = raw.min(self.backoff_max);
        let jitter = rand::rng().random_range(0.8..1.2);
        capped.mul_f64(jitter)
    }
}

/// A payload type of one job kind.
pub trait JobPayload: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The kind's name in the ledger.
    const KIND: &'static str;
    /// The queue its jobs run on.
    const QUEUE: Queue;
    /// Attempts, timeout and backoff for this kind.
    const POLICY: RetryPolicy;
    /// How soon its jobs go among their queue's waiting work, unless the starter says
    /// otherwise ([`JobOrigin::priority`]).
    const PRIORITY: Priority = Priority::NORMAL;
    /// Whether its jobs work on a record (a session, an export, a data export, a draft,
    /// named by [`JobPayload::subject`]): only these are cancelled (mail, erasure and
    /// housekeeping an admin kills), and only their records' states are announced as live
    /// events.
    const CANCELLABLE: bool = false;
    /// Whether its jobs pay the provider (transcription, extraction, drafts): such a job of a
    /// practice past its monthly budget is held before it starts (`crate::budget`).
    const PAID: bool = false;

    /// When an admin retries the dead job `job_id`, in the transaction that makes it due:
    /// kinds whose failure marked their subject failed (a session's stage, an export, a
    /// draft) put it back to waiting for this job. An error (the subject moved on meanwhile)
    /// refuses the retry, with the reason.
    fn on_admin_retry(
        &self,
        _conn: &mut sqlx::AnyConnection,
        _job_id: &str,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }

    /// The record this job's work shows on (a session, an export, a draft), whose state live
    /// events report after each attempt.
    fn subject(&self) -> Option<crate::events::Subject> {
        None
    }

    /// When the job `job_id` is held before it started (its practice's budget is spent), in
    /// the transaction that holds it: its subject says so with `message`.
    fn on_hold(
        &self,
        _conn: &mut sqlx::AnyConnection,
        _job_id: &str,
        _message: &str,
    ) -> impl std::future::Future<Output = sqlx::Result<()>> + Send {
        async { Ok(()) }
    }

    /// When the held job `job_id` is released, in the transaction that makes it due again:
    /// its subject waits for it again.
    fn on_release(
        &self,
        _conn: &mut sqlx::AnyConnection,
        _job_id: &str,
    ) -> impl std::future::Future<Output = sqlx::Result<()>> + Send {
        async { Ok(()) }
    }

    /// When the job is cancelled (its waiting run removed, or its running attempt stopped),
    /// in the transaction that records it: its subject reads `cancelled` (with `why`) and
    /// what the database kept of partial work goes. Files are the worker's hook.
    fn on_cancel(
        &self,
        _conn: &mut sqlx::AnyConnection,
        _why: &str,
    ) -> impl std::future::Future<Output = sqlx::Result<()>> + Send {
        async { Ok(()) }
    }
}

/// A kind the scheduler fires. Its schedule is declared with its payload, and
/// [`kinds::KindInfo::periodic`] makes it one of [`crate::schedules::declared`]: a new periodic
/// kind is its payload file and its line in [`kinds::KINDS`], nothing else.
pub trait Periodic: JobPayload {
    /// When it runs unless `SCHEDULE_<KIND>` says otherwise: a UTC cron expression with
    /// seconds (`sec min hour day month weekday`).
    const DEFAULT_CRON: &'static str;
    /// What a run does, for the admin API.
    const DESCRIPTION: &'static str;
    /// Whether it deletes, and so can be run as a dry run that only counts.
    const DRY_RUN: bool = false;

    /// The run for the tick at `scheduled_for` (ms since the epoch).
    fn for_tick(scheduled_for: i64, dry_run: bool) -> Self;
}

/// One periodic job as declared: `SCHEDULE_<NAME>` overrides its cron expression (UTC, with
/// seconds: `sec min hour day month weekday`), or `off` turns it off.
#[derive(Clone, Copy)]
pub struct ScheduleSpec {
    /// The schedule's name (`cleanup`), in the API and in `SCHEDULE_<NAME>`.
    pub name: &'static str,
    /// The job kind each tick enqueues.
    pub kind: &'static str,
    /// When it runs unless configured otherwise.
    pub default_cron: &'static str,
    /// What it does, for the admin API.
    pub description: &'static str,
    /// Whether it deletes, and so can be run as a dry run that only counts.
    pub dry_run: bool,
    /// Stores the run for a tick (ms) unless its dedup key was stored before.
    pub enqueue: EnqueueTick,
}

/// Stores a periodic kind's run for the tick at a time (ms), as a dry run or not, unless the
/// dedup key was stored before (`None` then).
pub type EnqueueTick =
    for<'a> fn(&'a mut JobTx, i64, bool, &'a str) -> BoxFuture<'a, sqlx::Result<Option<Enqueued>>>;

impl std::fmt::Debug for ScheduleSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduleSpec")
            .field("name", &self.name)
            .field("default_cron", &self.default_cron)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl ScheduleSpec {
    /// The environment variable that configures it.
    pub fn variable(&self) -> String {
        format!("SCHEDULE_{}", self.name.to_ascii_uppercase())
    }
}

/// How a job attempt failed: the handler says whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Bad input or a refusal that will not change (a 400/401 from a provider): dead at once.
    #[error("{0}")]
    Permanent(String),
    /// A timeout, a 5xx, a lost connection: retried with backoff.
    #[error("{0}")]
    Transient(String),
    /// The other side asked us to wait (a 429 with `Retry-After`): retried after that long
    /// (capped by the policy's longest backoff) rather than after the usual backoff.
    #[error("{0}")]
    RetryAfter(String, Duration),
}

impl JobError {
    /// A transient failure from any error, with context.
    pub fn transient(context: &str, err: impl std::fmt::Display) -> Self {
        JobError::Transient(format!("{context}: {err}"))
    }

    /// A permanent failure from any error, with context.
    pub fn permanent(context: &str, err: impl std::fmt::Display) -> Self {
        JobError::Permanent(format!("{context}: {err}"))
    }
}

/// Who started a job and for whom: recorded in the ledger for `GET /jobs/{id}`, log
/// correlation and fair turns between tenants.
#[derive(Debug, Clone, Default)]
pub struct JobOrigin {
    /// The user whose request started it.
    pub created_by: Option<String>,
    /// The request id, carried into the job's log lines.
    pub request_id: Option<String>,
    /// Whose work it is: the practice (a practitioner's account) or the account it serves;
    /// `None` for the system's own work. Tenants take turns within a queue.
    pub tenant: Option<String>,
    /// Its priority, when not its kind's default ([`JobPayload::PRIORITY`]).
    pub priority: Option<Priority>,
}

impl JobOrigin {
    /// The origin of a job that `parent` starts: the same user, request and tenant, at its
    /// kind's own priority (not one that aging or an admin gave the parent).
    pub fn follow_up(parent: &db::jobs::JobRow) -> Self {
        Self {
            created_by: parent.created_by.clone(),
            request_id: parent.request_id.clone(),
            tenant: parent.tenant.clone(),
            priority: None,
        }
    }
}

/// A job stored in the ledger and waiting for the relay.
#[derive(Debug, Clone)]
pub struct Enqueued {
    /// Its id (`GET /jobs/{id}`).
    pub id: String,
    /// The queue it waits on.
    pub queue: Queue,
}

/// Stores a job in the ledger at the fair turn `fair_key`, inside the caller's transaction.
/// Callers start jobs through [`JobTx`], which numbers the turns and hands the jobs over once
/// the transaction commits.
pub(crate) async fn enqueue<J: JobPayload>(
    conn: &mut AnyConnection,
    payload: &J,
    origin: &JobOrigin,
    fair_key: i64,
) -> sqlx::Result<Enqueued> {
    let id = db::new_id().to_string();
    insert(conn, &id, payload, origin, None, fair_key).await?;
    Ok(Enqueued {
        id,
        queue: J::QUEUE,
    })
}

/// Stores a system job unless one with `dedup_key` exists (scheduler ticks); `None` if it did.
pub(crate) async fn enqueue_once<J: JobPayload>(
    conn: &mut AnyConnection,
    payload: &J,
    dedup_key: &str,
    fair_key: i64,
) -> sqlx::Result<Option<Enqueued>> {
    let id = db::new_id().to_string();
    let origin = JobOrigin::default();
    let inserted = insert(conn, &id, payload, &origin, Some(dedup_key), fair_key).await?;
    Ok(inserted.then_some(Enqueued {
        id,
        queue: J::QUEUE,
    }))
}

async fn insert<J: JobPayload>(
    conn: &mut AnyConnection,
    id: &str,
    payload: &J,
    origin: &JobOrigin,
    dedup_key: Option<&str>,
    fair_key: i64,
) -> sqlx::Result<bool> {
    let payload = serde_json::to_string(payload).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    db::jobs::insert(
        conn,
        &NewJob {
            id,
            kind: J::KIND,
            queue: J::QUEUE.as_str(),
            payload: &payload,
            max_attempts: i64::from(J::POLICY.max_attempts),
            run_at: now_ms(),
            created_by: origin.created_by.as_deref(),
            request_id: origin.request_id.as_deref(),
            dedup_key,
            tenant: origin.tenant.as_deref(),
            priority: origin.priority.unwrap_or(J::PRIORITY),
            fair_key,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            timeout: Duration::from_secs(1),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
        };
        let first = policy.backoff(1);
        assert!(first >= Duration::from_millis(1600) && first <= Duration::from_millis(2400));
        let third = policy.backoff(3);
        assert!(third >= Duration::from_millis(6400) && third <= Duration::from_millis(9600));
        assert!(policy.backoff(30) <= Duration::from_secs(72));
    }
}
