//! The life of one delivery, the same for every job kind:
//!
//! 1. claim the ledger row (a stale or duplicate delivery claims nothing and is dropped);
//! 2. keep the claim's lease alive while the handler runs, so a worker that dies (SIGKILL)
//!    lets the lease lapse and the relay hands the job to another worker;
//! 3. run the handler under the kind's timeout, catching panics (a panic must not kill the
//!    apalis worker, see NOTES-apalis-1.0.md);
//! 4. record the outcome: done, failed with a retry at `now + backoff`, or dead.
//!
//! apalis always sees success: retries and dead jobs are the ledger's, on every backend alike.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures::FutureExt;
use tend_shared::{
    Settings,
    db::{self, Db, jobs::Outcome},
    jobs::JobError,
    queue::Transport,
    storage::ObjectStore,
};
use tracing::Instrument;

use crate::{jobs, mailer::Mailer, provider::Provider, templates::Templates};

/// What every job handler may use, built once per worker process.
pub struct JobEnv {
    /// The data and the ledger.
    pub db: Db,
    /// All settings.
    pub settings: Settings,
    /// Outgoing mail.
    pub mailer: Mailer,
    /// Email bodies.
    pub templates: Templates,
    /// The queue transport (maintenance vacuums it).
    pub transport: Transport,
    /// This process's worker name, written on the jobs it claims.
    pub worker_name: String,
    /// Uploaded audio.
    pub store: ObjectStore,
    /// The transcription and extraction provider.
    pub provider: Provider,
}

impl JobEnv {
    /// Builds the environment (fails at start if SMTP_URL or a template is wrong).
    pub fn new(
        settings: &Settings,
        db: Db,
        transport: Transport,
        store: ObjectStore,
        worker_name: String,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            db,
            transport,
            settings: settings.clone(),
            mailer: Mailer::from_settings(settings)?,
            templates: Templates::load()?,
            store,
            provider: Provider::new(&settings.provider)?,
            worker_name,
        })
    }
}

/// Runs one delivery to its recorded outcome. Never fails: errors are written to the ledger
/// (or, if the ledger itself is unreachable, left to the lease to recover).
pub async fn run_delivery(env: Arc<JobEnv>, job_id: String) {
    let lease = env.settings.job_lease;
    let lease_ms = lease.as_millis() as i64;
    let job = match db::jobs::claim(&env.db, &job_id, &env.worker_name, lease_ms).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            tracing::debug!(%job_id, "stale delivery ignored (job already taken or finished)");
            return;
        }
        Err(err) => {
            tracing::error!(%job_id, error = %err, "could not claim job; it stays queued");
            return;
        }
    };
    let span = tracing::info_span!(
        "job",
        job_id = %job.id,
        kind = %job.kind,
        attempt = job.attempts,
        request_id = job.request_id.as_deref(),
    );
    async move {
        if job.attempts > job.max_attempts {
            let error = "attempts used up (the job's workers kept dying)";
            jobs::on_failure(&env, &job, error, true).await;
            record(&env, &job.id, Outcome::Dead { error }).await;
            return;
        }
        let Some(policy) = jobs::policy(&job.kind) else {
            let error = format!("unknown job kind {:?}", job.kind);
            record(&env, &job.id, Outcome::Dead { error: &error }).await;
            return;
        };
        tracing::info!("job started");
        let started = std::time::Instant::now();

        let renewer = tokio::spawn(renew_lease(env.clone(), job.id.clone(), lease));
        let handler = AssertUnwindSafe(jobs::handle(&env, &job)).catch_unwind();
        let result = match tokio::time::timeout(policy.timeout, handler).await {
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
        renewer.abort();

        let elapsed_ms = started.elapsed().as_millis() as u64;
        let (error, delay) = match result {
            Ok(()) => {
                tracing::info!(elapsed_ms, "job done");
                record(&env, &job.id, Outcome::Done).await;
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
                jobs::on_failure(&env, &job, &error, false).await;
                record(&env, &job.id, Outcome::RetryAt { error: &error, run_at }).await;
            }
            None => {
                jobs::on_failure(&env, &job, &error, true).await;
                record(&env, &job.id, Outcome::Dead { error: &error }).await;
            }
        }
    }
    .instrument(span)
    .await
}

/// Keeps the lease alive: renews it every third of its length while the handler runs.
async fn renew_lease(env: Arc<JobEnv>, job_id: String, lease: Duration) {
    let lease_ms = lease.as_millis() as i64;
    let mut tick = tokio::time::interval(lease / 3);
    tick.tick().await; // the claim itself took the first lease
    loop {
        tick.tick().await;
        match db::jobs::renew_lease(&env.db, &job_id, &env.worker_name, lease_ms).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("lease lost (the job was killed or taken over)");
                return;
            }
            Err(err) => tracing::warn!(error = %err, "lease renewal failed; retrying"),
        }
    }
}

async fn record(env: &JobEnv, job_id: &str, outcome: Outcome<'_>) {
    match db::jobs::finish(&env.db, job_id, &env.worker_name, outcome).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!("outcome not recorded: this worker no longer holds the job"),
        Err(err) => {
            tracing::error!(error = %err, "outcome not recorded; the lease will expire and the job run again")
        }
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
