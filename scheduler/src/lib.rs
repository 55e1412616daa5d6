//! Tend's scheduler: apalis-cron schedules that put maintenance jobs in the ledger. It does no
//! heavy work itself; the workers run what it enqueues.
//!
//! Every replica fires every tick; the job's dedup key (`kind:tick`) lets only the first
//! insert through, so running two schedulers never double-fires. On start, the latest tick
//! that should already have fired is enqueued the same way, which catches up a run missed
//! while no scheduler was up (and is a no-op when it did run).

use std::{str::FromStr, sync::Arc};

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use chrono::{DateTime, Utc};
use tend_shared::{
    jobs::{JobPayload, JobTx},
    queue::Relay,
};
use tend_worker::jobs::cleanup::Cleanup;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Hourly cleanup of expired tokens and old finished jobs (at minute 17, off the busy hour).
pub const CLEANUP_SCHEDULE: &str = "0 17 * * * *";

/// What the tick handler needs.
struct Ctx {
    relay: Relay,
}

/// Enqueues the cleanup run for one tick, once across all replicas.
async fn enqueue_cleanup(relay: &Relay, tick_secs: i64) -> anyhow::Result<bool> {
    let scheduled_for = tick_secs * 1000;
    let key = format!("{}:{scheduled_for}", Cleanup::KIND);
    let mut tx = JobTx::begin(relay).await?;
    let enqueued = tx.enqueue_once(&Cleanup { scheduled_for }, &key).await?;
    tx.commit().await?;
    match &enqueued {
        Some(job) => tracing::info!(job_id = %job.id, scheduled_for, "cleanup enqueued"),
        None => tracing::debug!(scheduled_for, "cleanup already enqueued by another replica"),
    }
    Ok(enqueued.is_some())
}

async fn on_tick(tick: Tick, ctx: Data<Arc<Ctx>>) -> Result<(), BoxDynError> {
    enqueue_cleanup(&ctx.relay, tick.get_timestamp() as i64)
        .await
        .map(|_| ())
        .map_err(|e| e.into_boxed_dyn_error())
}

/// The latest instant at or before `now` at which `schedule` fires (within a week).
pub fn last_tick(schedule: &cron::Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule
        .after(&(now - chrono::Duration::days(7)))
        .take_while(|t| *t <= now)
        .last()
}

/// Starts the schedules; they run until `shutdown`.
pub async fn start(relay: Relay, shutdown: CancellationToken) -> anyhow::Result<JoinHandle<()>> {
    let schedule = cron::Schedule::from_str(CLEANUP_SCHEDULE)?;
    // Nothing was missed before the installation first started.
    let installed_at = tend_shared::db::installation::first_started_at(relay.db()).await?;
    if let Some(missed) = last_tick(&schedule, Utc::now())
        && missed.timestamp_millis() >= installed_at
        && enqueue_cleanup(&relay, missed.timestamp()).await?
    {
        tracing::info!(tick = %missed, "caught up a cleanup run missed while down");
    }
    let ctx = Arc::new(Ctx { relay });
    let name = format!("scheduler-cleanup-{}", instance_suffix());
    let worker = WorkerBuilder::new(name)
        .backend(CronScheduler::new(schedule))
        .data(ctx)
        .build(on_tick);
    Ok(tokio::spawn(async move {
        tokio::select! {
            result = worker.run() => {
                if let Err(err) = result {
                    tracing::error!(error = %err, "scheduler stopped");
                }
            }
            _ = shutdown.cancelled() => tracing::info!("scheduler stopped"),
        }
    }))
}

fn instance_suffix() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros() % 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_tick_is_the_latest_fire_time_not_after_now() {
        let schedule = cron::Schedule::from_str(CLEANUP_SCHEDULE).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let tick = last_tick(&schedule, now).unwrap();
        assert_eq!(tick.to_rfc3339(), "2026-11-22T09:17:00+00:00");
    }
}
