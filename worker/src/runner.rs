//! The life of one delivery, the same for every job kind:
//!
//! 1. claim the delivered ledger rows in one statement (stale or duplicate deliveries claim
//!    nothing and are dropped);
//! 2. hold each claimed job's lease in the process-wide [`Leases`], renewed together, so a
//!    worker that dies (SIGKILL) lets the leases lapse and the relay hands the jobs on;
//! 3. run each job when its queue has a free slot, under the kind's timeout, catching panics
//!    (a panic must not kill the apalis worker, see NOTES-apalis-1.0.md), and stopping it if
//!    its lease is lost;
//! 4. record the outcome, fenced by the attempt's claim: done (grouped with other jobs' by
//!    [`DoneWriter`]), failed with a retry at `now + backoff`, or dead with the kind's dead
//!    hook in the same transaction. The lease is renewed until the outcome is written; an
//!    outcome refused because another attempt claimed the job meanwhile is recorded as such.
//!
//! apalis always sees success: retries and dead jobs are the ledger's, on every backend alike.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures::FutureExt;
use tend_shared::{
    budget,
    db::{
        self,
        jobs::{Attempt, JobRow, Outcome, holds::BUDGET_EXCEEDED},
    },
    jobs::{
        JobError, JobTx,
        kinds::{SubjectEvent, subject_follows},
    },
};
use tokio::sync::{Semaphore, SemaphorePermit};
use tracing::Instrument;

use crate::job_metrics::JobMetrics;
use crate::{
    env::JobEnv,
    job::JobCtx,
    lease::Leases,
    outcomes::DoneWriter,
    registry::{self, Kind},
    retry::{db_retry, outcome_retry},
};

/// What the runner shares across deliveries of one process.
pub struct Runner {
    /// What handlers use.
    pub env: Arc<JobEnv>,
    /// Leases of the jobs this process holds.
    pub leases: Arc<Leases>,
    /// Records finished jobs in groups.
    pub done: DoneWriter,
    /// Counts outcomes and run times.
    pub metrics: JobMetrics,
}

/// Runs one delivery's jobs to their recorded outcomes. Never fails: errors are written to the
/// ledger (or, if the ledger itself is unreachable, left to the lease to recover).
/// `slots` are the queue's: at most `WORKER_CONCURRENCY(_<QUEUE>)` of its jobs run at once.
pub async fn run_delivery(runner: Arc<Runner>, slots: Arc<Semaphore>, job_ids: Vec<String>) {
    let env = &runner.env;
    let lease_ms = env.settings.job_lease.as_millis() as i64;
    let claim = || db::jobs::claim(&env.db, &job_ids, &env.worker_name, lease_ms);
    let claimed = match db_retry("claiming jobs", claim).await {
        Ok(claimed) => claimed,
        Err(err) => {
            tracing::error!(jobs = job_ids.len(), error = %err, "could not claim jobs; offering them again");
            if let Err(err) = db::jobs::undispatch(&env.db, &job_ids).await {
                tracing::warn!(error = %err, "jobs stay dispatched; the stale check re-offers them");
            }
            return;
        }
    };
    if claimed.len() < job_ids.len() {
        tracing::debug!(
            stale = job_ids.len() - claimed.len(),
            "stale deliveries ignored (jobs already taken or finished)"
        );
    }
    let runs = claimed.into_iter().map(|job| {
        let runner = runner.clone();
        let slots = slots.clone();
        // Held from the claim, so renewals cover a job that waits for a slot.
        let cancel = runner.leases.hold(job.attempt());
        async move {
            let Ok(slot) = slots.acquire().await else {
                return;
            };
            let stopped = job.clone();
            tokio::select! {
                biased;
                _ = run_job(&runner, job, slot) => {}
                _ = cancel.cancelled() => bury_if_killed(&runner, &stopped).await,
            }
        }
    });
    futures::future::join_all(runs).await;
}

/// Runs one claimed job in its queue's `slot` and records its outcome. The slot is given up
/// as soon as the handler returns: the outcome's write is bookkeeping (grouped with other
/// jobs' by the [`DoneWriter`]), and the next job need not wait for it. The lease stays
/// renewed until the write lands.
async fn run_job(runner: &Runner, job: JobRow, slot: SemaphorePermit<'_>) {
    let env = &runner.env;
    let span = tracing::info_span!(
        "job",
        job_id = %job.id,
        kind = %job.kind,
        attempt = job.attempts,
        claim = job.claims,
        request_id = job.request_id.as_deref(),
        tenant = job.tenant.as_deref(),
    );
    async move {
        let ctx = JobCtx { env, job: &job };
        let Some(kind) = registry::find(&job.kind) else {
            let error = format!("unknown job kind {:?}", job.kind);
            tracing::error!(%error, "job dead");
            record(runner, &ctx, None, Outcome::Dead { error: &error }).await;
            return;
        };
        if job.killed_at.is_some() {
            // Killed or cancelled while it waited: buried without running.
            let (outcome, counted) = stopped(&job, false);
            tracing::warn!(error = outcome.error(), "job stopped before it ran");
            record(runner, &ctx, Some(kind), outcome).await;
            runner.metrics.count(&job.kind, counted, None);
            return;
        }
        if job.attempts > job.max_attempts {
            // Every attempt was lost with its worker; this claim only buries it.
            let error = "attempts used up: the job's workers were lost while running it";
            tracing::error!(error, "job dead");
            record(runner, &ctx, Some(kind), Outcome::Lost { error }).await;
            runner.metrics.count(&job.kind, "dead", None);
            return;
        }
        if let Some(message) = over_budget(env, &job).await {
            // Before any paid call: the job waits until the budget allows it.
            tracing::warn!("job held: its practice's monthly budget is spent");
            let outcome = Outcome::Held {
                reason: BUDGET_EXCEEDED,
                error: &message,
            };
            record(runner, &ctx, Some(kind), outcome).await;
            runner.metrics.count(&job.kind, "held", None);
            return;
        }
        tracing::info!("job started");
        let started = std::time::Instant::now();
        let policy = kind.policy;
        let attempt = AssertUnwindSafe(kind.run(&ctx)).catch_unwind();
        let result = match tokio::time::timeout(policy.timeout, attempt).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(JobError::Transient(format!(
                "the handler panicked: {}",
                panic_message(&panic)
            ))),
            Err(_) => Err(JobError::Transient(format!(
                "timed out after {} s",
                policy.timeout.as_secs()
            ))),
        };

        drop(slot);
        let elapsed = started.elapsed();
        let elapsed_ms = elapsed.as_millis() as u64;
        // The attempt is over: from here only its outcome is written. The lease stays renewed
        // until then (an outage must not hand a finished job to another worker), but nothing
        // cancels the write.
        runner.leases.finishing(&job.id);
        let (error, delay) = match result {
            Ok(()) => {
                runner.metrics.count(&job.kind, "done", Some(elapsed));
                match runner.done.done(job.attempt()).await {
                    Some(true) => {
                        tracing::info!(elapsed_ms, "job done");
                        publish_state(env, &job).await;
                    }
                    Some(false) => refused(env, &job).await,
                    // Logged by the writer; the lease lapses and the job runs again.
                    None => {}
                }
                runner.leases.release(&job.id);
                return;
            }
            Err(JobError::Permanent(error)) => {
                tracing::warn!(elapsed_ms, %error, "job failed permanently; not retried");
                (error, None)
            }
            Err(err) if job.attempts >= job.max_attempts => {
                let error = format!("{err} (last of {} attempts)", job.max_attempts);
                tracing::error!(elapsed_ms, %error, "job failed on its last attempt; dead");
                (error, None)
            }
            Err(JobError::Transient(error)) => {
                let delay = policy.backoff(job.attempts as u32);
                (error, Some(delay))
            }
            Err(JobError::RetryAfter(error, asked)) => {
                let delay = asked.clamp(Duration::from_secs(1), policy.backoff_max);
                (error, Some(delay))
            }
        };
        match delay {
            Some(delay) => {
                let run_at = db::now_ms() + delay.as_millis() as i64;
                tracing::warn!(elapsed_ms, %error, retry_in_ms = delay.as_millis() as u64, "job failed; will retry");
                kind.on_retry(&ctx, &error).await;
                record(runner, &ctx, Some(kind), Outcome::RetryAt { error: &error, run_at }).await;
                runner.metrics.count(&job.kind, "retry", Some(elapsed));
            }
            None => {
                record(runner, &ctx, Some(kind), Outcome::Dead { error: &error }).await;
                runner.metrics.count(&job.kind, "dead", Some(elapsed));
            }
        }
    }
    .instrument(span)
    .await
}

/// The error a killed job is buried with.
const KILLED: &str = "killed by an admin";

/// How a job stopped by a kill or a cancellation ends (with the name its metrics count):
/// cancelled when somebody cancelled it (its row says why), dead when an admin killed it.
/// `ran`: whether this attempt ran before it was stopped.
fn stopped(job: &JobRow, ran: bool) -> (Outcome<'_>, &'static str) {
    match job.cancelled_by {
        Some(_) => {
            let error = job.last_error.as_deref().unwrap_or("cancelled");
            (Outcome::Cancelled { error, ran }, "cancelled")
        }
        None => (Outcome::Killed { error: KILLED, ran }, "killed"),
    }
}

/// The hold message when `job` pays the provider and its practice's monthly budget is spent.
/// A budget that cannot be read (the ledger is away) holds nothing: the job's own database
/// work would fail and be retried anyway.
async fn over_budget(env: &JobEnv, job: &JobRow) -> Option<String> {
    let paid = tend_shared::jobs::kinds::find(&job.kind).is_some_and(|kind| kind.paid);
    let tenant = job.tenant.as_deref().filter(|_| paid)?;
    let default = env.settings.provider.default_monthly_budget_micro_usd;
    match budget::of(&env.db, default, tenant).await {
        Ok(budget) if budget.exceeded() => Some(budget.message()),
        Ok(_) => None,
        Err(err) => {
            tracing::warn!(error = %err, "the practice's budget could not be read; the job runs");
            None
        }
    }
}

/// After an attempt was stopped because its lease renewal missed it: if an admin killed it
/// while this attempt held it, records it dead (with the kind's dead hook); otherwise (claimed
/// again after its lease lapsed, cut at shutdown, or the ledger out of reach) leaves it to
/// whoever holds it now.
async fn bury_if_killed(runner: &Runner, job: &JobRow) {
    let env = &runner.env;
    // Renewed, not cancelled, while the ledger is asked what happened.
    runner.leases.finishing(&job.id);
    let current = db::jobs::find(&env.db, &job.id).await;
    let killed = match &current {
        Ok(Some(c)) if c.killed_at.is_some() && c.claims == job.claims => c.clone(),
        _ => {
            runner.leases.release(&job.id);
            match current {
                Err(err) => {
                    tracing::warn!(job_id = %job.id, error = %err, "attempt stopped: its lease was lost")
                }
                Ok(_) => tracing::warn!(job_id = %job.id, "attempt stopped: its lease was lost"),
            }
            return;
        }
    };
    // A job claimed already killed never runs its handler: the renewal that stopped it may
    // only have overtaken the claim's own burial.
    let (outcome, counted) = stopped(&killed, job.killed_at.is_none());
    tracing::warn!(job_id = %job.id, kind = %job.kind, error = outcome.error(), "attempt stopped");
    let ctx = JobCtx { env, job };
    record(runner, &ctx, registry::find(&job.kind), outcome).await;
    runner.metrics.count(&job.kind, counted, None);
}

/// Records a failed attempt's outcome, fenced by its claim, with its history row; a dead
/// outcome runs the kind's dead hook in the same transaction. Retried through an outage (the
/// lease is still renewed meanwhile); releases the lease once written.
async fn record(runner: &Runner, ctx: &JobCtx<'_>, kind: Option<&Kind>, outcome: Outcome<'_>) {
    let env = ctx.env;
    let attempt = ctx.job.attempt();
    let write = || write_outcome(ctx, kind, &attempt, outcome.clone());
    match outcome_retry("recording an outcome", write).await {
        Ok(true) => {
            if let (Outcome::Cancelled { .. }, Some(kind)) = (&outcome, kind) {
                kind.on_cancelled(ctx).await;
            }
            publish_state(env, ctx.job).await;
        }
        Ok(false) => refused(env, ctx.job).await,
        Err(err) => {
            tracing::error!(error = %err, "outcome not recorded; the lease will lapse and the job run again")
        }
    }
    runner.leases.release(&ctx.job.id);
}

/// One try of [`record`]: the outcome and what its subject follows, in one transaction: a
/// dead job's failure (the kind's dead hook), a cancelled job's cancellation, a held job's
/// hold. A dead hook that fails is logged and counted, and the job is recorded dead alone: the
/// repair pass fails its subject later.
async fn write_outcome(
    ctx: &JobCtx<'_>,
    kind: Option<&Kind>,
    attempt: &Attempt,
    outcome: Outcome<'_>,
) -> sqlx::Result<bool> {
    let env = ctx.env;
    let mut tx = JobTx::begin(&env.relay).await?;
    if !db::jobs::finish(&mut tx, attempt, outcome.clone()).await? {
        return Ok(false);
    }
    let event = match &outcome {
        Outcome::Cancelled { error, .. } => Some(SubjectEvent::Cancelled { why: error }),
        Outcome::Held { error, .. } => Some(SubjectEvent::Held {
            job_id: &attempt.job_id,
            message: error,
        }),
        _ => None,
    };
    if let Some(event) = event {
        let job = ctx.job;
        subject_follows(&mut tx, &job.kind, &job.payload, event).await?;
    }
    if let Some(kind) = kind.filter(|_| outcome.is_dead())
        && let Err(err) = kind.on_dead(ctx, &mut tx, outcome.error()).await
    {
        tracing::error!(error = %err, "the dead hook failed; the job is recorded dead alone and the repair pass will fail its subject");
        metrics::counter!("tend_dead_hook_failures_total", "kind" => kind.name).increment(1);
        drop(tx);
        let mut tx = env.db.begin().await?;
        let recorded = db::jobs::finish(&mut tx, attempt, outcome).await?;
        tx.commit().await?;
        return Ok(recorded);
    }
    tx.commit().await?;
    Ok(true)
}

/// Tells the job's record's followers what it is now (live events), once its outcome is
/// committed.
pub(crate) async fn publish_state(env: &JobEnv, job: &JobRow) {
    if let Some(subject) = tend_shared::jobs::kinds::subject_of_job(&job.kind, &job.payload) {
        env.events.publish_state(&env.db, &subject).await;
    }
}

/// An attempt whose outcome came after another attempt claimed the job (or an admin killed
/// it): its result is discarded, and its history says so.
async fn refused(env: &JobEnv, job: &JobRow) {
    let why = "finished after another attempt had claimed the job; its outcome was discarded";
    tracing::warn!(job_id = %job.id, claim = job.claims, "{why}");
    metrics::counter!("tend_job_outcomes_refused_total", "kind" => job.kind.clone()).increment(1);
    if let Err(err) = db::jobs::record_refused(&env.db, job, why).await {
        tracing::warn!(error = %err, "the refused attempt's history row was not written");
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}
