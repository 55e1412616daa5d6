//! Tend's scheduler: apalis-cron schedules that put maintenance jobs in the ledger, one per
//! declaration in [`tend_shared::schedules::declared`] that is not turned off. It does no
//! heavy work itself; the workers run what it enqueues.
//!
//! Every replica fires every tick; the job's dedup key (`name:tick`) lets only the first
//! insert through, so running two schedulers never double-fires. On start, each schedule's
//! latest tick that should already have fired (within a week, and not before the
//! installation first started) is enqueued the same way, which catches up a run missed while
//! no scheduler was up (and is a no-op when it did run).

use std::sync::Arc;

use apalis::prelude::*;
use apalis_cron::{CronScheduler, Tick};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use tend_shared::{
    jobs::JobTx,
    queue::Relay,
    schedules::{self, Schedule},
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How far back a start looks for a missed tick.
const CATCH_UP_WINDOW: chrono::Duration = chrono::Duration::days(7);

/// Enqueues `schedule`'s run for one tick, once across all replicas.
async fn enqueue_scheduled(relay: &Relay, name: &str, tick_secs: i64) -> anyhow::Result<bool> {
    let scheduled_for = tick_secs * 1000;
    let key = format!("{name}:{scheduled_for}");
    let mut tx = JobTx::begin(relay).await?;
    let enqueued = schedules::enqueue_run(&mut tx, name, scheduled_for, false, &key).await?;
    tx.commit().await?;
    match &enqueued {
        Some(job) => {
            tracing::info!(schedule = name, job_id = %job.id, scheduled_for, "scheduled job enqueued")
        }
        None => tracing::debug!(
            schedule = name,
            scheduled_for,
            "tick already enqueued by another replica"
        ),
    }
    Ok(enqueued.is_some())
}

/// What a tick handler needs.
struct Ctx {
    relay: Relay,
    name: &'static str,
}

async fn on_tick(tick: Tick, ctx: Data<Arc<Ctx>>) -> Result<(), BoxDynError> {
    enqueue_scheduled(&ctx.relay, ctx.name, tick.get_timestamp() as i64)
        .await
        .map(|_| ())
        .map_err(|e| e.into_boxed_dyn_error())
}

/// The latest instant at or before `now` at which `schedule` fires (within a week).
pub fn last_tick(schedule: &Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule.last_at_or_before(now, CATCH_UP_WINDOW)
}

/// Starts the schedules that are on; they run until `shutdown`.
pub async fn start(
    relay: Relay,
    schedules: &[Schedule],
    shutdown: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    // Nothing was missed before the installation first started.
    let installed_at = tend_shared::db::installation::first_started_at(relay.db()).await?;
    let mut workers = Vec::new();
    for schedule in schedules {
        let Some(cron) = schedule.cron_schedule() else {
            tracing::info!(schedule = schedule.spec.name, "schedule turned off");
            continue;
        };
        let name = schedule.spec.name;
        if let Some(missed) = last_tick(schedule, Utc::now())
            && missed.timestamp_millis() >= installed_at
            && enqueue_scheduled(&relay, name, missed.timestamp()).await?
        {
            tracing::info!(schedule = name, tick = %missed, "caught up a run missed while down");
        }
        let ctx = Arc::new(Ctx {
            relay: relay.clone(),
            name,
        });
        let worker = WorkerBuilder::new(format!("scheduler-{name}-{}", instance_suffix()))
            .backend(CronScheduler::new(cron.clone()))
            .data(ctx)
            .build(on_tick);
        workers.push(async move {
            if let Err(err) = worker.run().await {
                tracing::error!(schedule = name, error = %err, "schedule stopped");
            }
        });
    }
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = join_all(workers) => {}
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
    use tend_shared::schedules::configured;

    use super::*;

    #[test]
    fn last_tick_is_the_latest_fire_time_not_after_now() {
        let schedules = configured(&|_: &str| None).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let cleanup = schedules.iter().find(|s| s.spec.name == "cleanup").unwrap();
        let tick = last_tick(cleanup, now).unwrap();
        assert_eq!(tick.to_rfc3339(), "2026-11-22T03:00:00+00:00");
    }
}
