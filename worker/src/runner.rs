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
    db::{
        self,
        jobs::{Attempt, JobRow, Outcome},
    },
    jobs::{JobError, JobTx},
};
use tokio::sync::{Semaphore, SemaphorePermit};
use tracing::Instrument;

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

/// The job series' handles, one per kind and outcome, made once at start: recording through
/// them is an atomic add, where the `counter!` macro per job hashed its labels each time
/// (about a tenth of the engine's throughput, measured with the burst bench).
pub struct JobMetrics {
    finished: std::collections::HashMap<(&'static str, &'static str), metrics::Counter>,
    run_time: std::collections::HashMap<&'static str, metrics::Histogram>,
}

impl JobMetrics {
    /// The outcomes an attempt is counted under.
    const OUTCOMES: [&'static str; 4] = ["done", "retry", "dead", "killed"];

    /// Handles for every kind of the registry (the recorder must be installed first).
    pub fn new() -> Self {
        let mut finished = std::collections::HashMap::new();
        let mut run_time = std::collections::HashMap::new();
        for kind in registry::KINDS {
            for outcome in Self::OUTCOMES {
                finished.insert(
                    (kind.name, outcome),
                    metrics::counter!("tend_jobs_finished_total", "kind" => kind.name, "outcome" => outcome),
                );
            }
            run_time.insert(
                kind.name,
                metrics::histogram!("tend_job_run_duration_seconds", "kind" => kind.name),
            );
        }
        Self { finished, run_time }
    }

    /// Counts a finished attempt (`outcome`: done, retry, dead, killed) and its run time.
    fn count(&self, kind: &str, outcome: &'static str, elapsed: Option<Duration>) {
        if let Some(counter) = self.finished.get(&(kind, outcome)) {
            counter.increment(1);
        }
        if let (Some(elapsed), Some(histogram)) = (elapsed, self.run_time.get(kind)) {
            histogram.record(elapsed.as_secs_f64());
        }
    }
}

impl Default for JobMetrics {
    fn default() -> Self {
        Self::new()
    }
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
            // Killed while it waited: buried without running.
            tracing::warn!(error = KILLED, "job dead");
            let outcome = Outcome::Killed { error: KILLED, ran: false };
            record(runner, &ctx, Some(kind), outcome).await;
            runner.metrics.count(&job.kind, "killed", None);
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
                    Some(true) => tracing::info!(elapsed_ms, "job done"),
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

/// After an attempt was stopped because its lease renewal missed it: if an admin killed it
/// while this attempt held it, records it dead (with the kind's dead hook); otherwise (claimed
/// again after its lease lapsed, cut at shutdown, or the ledger out of reach) leaves it to
/// whoever holds it now.
async fn bury_if_killed(runner: &Runner, job: &JobRow) {
    let env = &runner.env;
    // Renewed, not cancelled, while the ledger is asked what happened.
    runner.leases.finishing(&job.id);
    let current = db::jobs::find(&env.db, &job.id).await;
    let killed = matches!(&current, Ok(Some(c)) if c.killed_at.is_some() && c.claims == job.claims);
    if !killed {
        runner.leases.release(&job.id);
        match current {
            Err(err) => {
                tracing::warn!(job_id = %job.id, error = %err, "attempt stopped: its lease was lost")
            }
            Ok(_) => tracing::warn!(job_id = %job.id, "attempt stopped: its lease was lost"),
        }
        return;
    }
    tracing::warn!(job_id = %job.id, kind = %job.kind, "attempt stopped: killed by an admin");
    let ctx = JobCtx { env, job };
    // A job claimed already killed never runs its handler: the renewal that stopped it may
    // only have overtaken the claim's own burial.
    let outcome = Outcome::Killed {
        error: KILLED,
        ran: job.killed_at.is_none(),
    };
    record(runner, &ctx, registry::find(&job.kind), outcome).await;
    runner.metrics.count(&job.kind, "killed", None);
}

/// Records a failed attempt's outcome, fenced by its claim, with its history row; a dead
/// outcome runs the kind's dead hook in the same transaction. Retried through an outage (the
/// lease is still renewed meanwhile); releases the lease once written.
async fn record(runner: &Runner, ctx: &JobCtx<'_>, kind: Option<&Kind>, outcome: Outcome<'_>) {
    let env = ctx.env;
    let attempt = ctx.job.attempt();
    let hook = kind.filter(|_| outcome.is_dead());
    let write = || write_outcome(ctx, hook, &attempt, outcome.clone());
    match outcome_retry("recording an outcome", write).await {
        Ok(true) => {}
        Ok(false) => refused(env, ctx.job).await,
        Err(err) => {
            tracing::error!(error = %err, "outcome not recorded; the lease will lapse and the job run again")
        }
    }
    runner.leases.release(&ctx.job.id);
}

/// One try of [`record`]: the outcome and, for a dead job, its subject's failure, in one
/// transaction. A dead hook that fails is logged and counted, and the job is recorded dead
/// alone: the repair pass fails its subject later.
async fn write_outcome(
    ctx: &JobCtx<'_>,
    hook: Option<&Kind>,
    attempt: &Attempt,
    outcome: Outcome<'_>,
) -> sqlx::Result<bool> {
    let env = ctx.env;
    let mut tx = JobTx::begin(&env.relay).await?;
    if !db::jobs::finish(&mut tx, attempt, outcome.clone()).await? {
        return Ok(false);
    }
    if let Some(kind) = hook
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
