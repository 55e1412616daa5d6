//! Starts the worker side of a process: one apalis worker per served queue (`WORKER_QUEUES`),
//! each with its own concurrency, on the configured transport; the outbox relay; the lease
//! keeper; the wake-up listener. Stops gracefully: on shutdown no new job is taken and running
//! jobs get `SHUTDOWN_GRACE_SECS` to finish.

use std::{sync::Arc, time::Duration};

use apalis::prelude::*;
use apalis_core::backend::ext::poll_strategy::Strategy;
use apalis_redis::RedisStorage;
use apalis_sqlite::SqliteStorage;
use tend_shared::{
    Settings,
    db::{
        Db,
        workers::{WorkerRow, queues_column},
    },
    queue::{Backend, Delivery, Relay, Transport},
    storage::ObjectStore,
};
use tokio::{sync::Semaphore, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    env::JobEnv,
    lease::Leases,
    outcomes::DoneWriter,
    presence,
    runner::{self, Runner},
};

/// How often a worker asks its queue for work when no wake-up came. Pushes wake the workers
/// at once (in-process, or through Redis pub/sub), so this only bounds the delay after a lost
/// wake-up; an idle poll costs about 80 µs of Redis CPU (NOTES-apalis-1.0.md).
const POLL_FALLBACK: Duration = Duration::from_millis(200);

/// A running worker side; [`WorkerHandle::wait`] returns once it has drained.
pub struct WorkerHandle {
    monitor: JoinHandle<()>,
    /// Stops the lease keeper once the monitor has drained.
    drained: CancellationToken,
    background: Vec<JoinHandle<()>>,
    leases: Arc<Leases>,
    /// This process's worker name (unique per process), written on the jobs it claims.
    pub instance: String,
}

impl WorkerHandle {
    /// Waits for running jobs to finish (bounded by the grace period) and the relay to stop,
    /// then says how it went: an operator rolling a deploy reads this line.
    pub async fn wait(self) {
        let _ = self.monitor.await;
        // What still runs now was cut by the end of the grace period: handed back at once, so
        // other workers start it without waiting for the lease to lapse.
        let cut = self.leases.hand_back_all().await;
        self.drained.cancel();
        for task in self.background {
            let _ = task.await;
        }
        match cut {
            0 => {
                tracing::info!(instance = %self.instance, "workers stopped; every running job finished")
            }
            cut => tracing::warn!(
                instance = %self.instance,
                cut,
                "workers stopped with jobs still running; they were handed back to other workers"
            ),
        }
    }
}

/// Reports apalis worker restarts (each a poll that failed, many a second while the queue is
/// away) at most once per [`tend_shared::outage::REMINDER_EVERY`], with how many there were.
#[derive(Default)]
struct RestartLog {
    state: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl RestartLog {
    fn restarted(&self, worker: &str, error: &dyn std::fmt::Debug) {
        let mut state = self.state.lock().expect("restart log lock");
        state.1 += 1;
        let due = state
            .0
            .is_none_or(|said| said.elapsed() >= tend_shared::outage::REMINDER_EVERY);
        if due {
            tracing::warn!(
                worker,
                restarts = state.1,
                error = ?error,
                "queue workers restarting after errors (the queue is unreachable?)"
            );
            *state = (Some(std::time::Instant::now()), 0);
        }
    }
}

/// What the apalis handler of one queue needs.
struct QueueWorker {
    runner: Arc<Runner>,
    /// The queue's slots: at most its concurrency of its jobs run at once.
    slots: Arc<Semaphore>,
}

/// The apalis handler: every queue's deliveries go to the same runner.
async fn on_delivery(
    delivery: Delivery,
    worker: Data<Arc<QueueWorker>>,
) -> Result<(), BoxDynError> {
    runner::run_delivery(
        worker.runner.clone(),
        worker.slots.clone(),
        delivery.into_ids(),
    )
    .await;
    Ok(())
}

/// A name no other live process has: apalis refuses a second worker under the same name.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

fn instance_name() -> String {
    let nonce = &uuid::Uuid::new_v4().simple().to_string()[..6];
    format!("{}-{}-{nonce}", host_name(), std::process::id())
}

/// Starts workers for the served queues, the relay and the lease keeper; they run until
/// `shutdown` is cancelled.
pub async fn start(
    settings: &Settings,
    db: Db,
    transport: Transport,
    store: ObjectStore,
    shutdown: CancellationToken,
) -> anyhow::Result<WorkerHandle> {
    tend_shared::metrics::install(settings.metrics_addr)?;
    let instance = instance_name();
    // One relay per process: the loop below runs it, and handlers and the outcome writer use
    // it to hand over follow-up jobs and to ask for a refill as jobs finish.
    let relay = Relay::new(db.clone(), transport.clone(), settings);
    let env = Arc::new(JobEnv::new(
        settings,
        relay.clone(),
        store,
        instance.clone(),
    )?);
    let leases = Arc::new(Leases::new(db.clone(), settings.job_lease));
    // The repair pass, once per start: whatever a crash or a failed dead hook left stuck.
    let repair_db = db.clone();
    tokio::spawn(async move {
        if let Err(err) = crate::jobs::cleanup::resolve_stuck(&repair_db).await {
            tracing::warn!(error = %err, "the repair pass at start failed; the daily cleanup runs it again");
        }
    });
    let runner = Arc::new(Runner {
        done: DoneWriter::start(db.clone(), env.relay.clone()),
        leases: leases.clone(),
        metrics: crate::job_metrics::JobMetrics::new(),
        env,
    });

    let restarts = Arc::new(RestartLog::default());
    let mut monitor = Monitor::new()
        .shutdown_timeout(settings.shutdown_grace)
        // A worker whose backend failed (queue unreachable) is started again, said quietly.
        .should_restart(move |worker, error| {
            restarts.restarted(worker.name(), error);
            true
        });
    let mut served = Vec::new();
    for &queue in &settings.worker_queues {
        let slots = settings.concurrency(queue);
        // As many deliveries at once as jobs may run: a delivery carries at least one job, so
        // fewer would leave slots idle whenever deliveries carry one job each.
        let at_once = slots;
        served.push((queue.as_str(), slots));
        let worker = Arc::new(QueueWorker {
            runner: runner.clone(),
            slots: Arc::new(Semaphore::new(slots)),
        });
        let prefix = format!("{queue}-{instance}");
        // Woken at once when work is pushed; polled as a fallback.
        let wakers = transport.clone();
        let strategy = move || {
            Strategy::new()
                .stream(wakers.wakers().subscribe(queue))
                .interval(POLL_FALLBACK)
        };
        monitor = match &transport.backend {
            Backend::Redis { conn, .. } => {
                let conn = conn.clone();
                let config = transport.redis_config(queue).batch_size(at_once);
                monitor.register(move |restarts| {
                    let backend = RedisStorage::<Delivery>::new(conn.clone())
                        .with_config(config.clone())
                        .poll_with_strategy(strategy());
                    WorkerBuilder::new(format!("{prefix}-{restarts}"))
                        .backend(backend)
                        .data(worker.clone())
                        .concurrency(at_once)
                        .parallelize(tokio::spawn)
                        .build(on_delivery)
                })
            }
            Backend::Sqlite { pool } => {
                let pool = pool.clone();
                let config = transport.sqlite_config(queue).batch_size(at_once);
                monitor.register(move |restarts| {
                    let backend = SqliteStorage::<Delivery>::new(&pool)
                        .with_config(config.clone())
                        .poll_with_strategy(strategy());
                    WorkerBuilder::new(format!("{prefix}-{restarts}"))
                        .backend(backend)
                        .data(worker.clone())
                        .concurrency(at_once)
                        .parallelize(tokio::spawn)
                        .build(on_delivery)
                })
            }
        };
    }

    let monitor_shutdown = shutdown.clone();
    let monitor = tokio::spawn(async move {
        let signal = async move {
            monitor_shutdown.cancelled().await;
            Ok(())
        };
        if let Err(err) = monitor.run_with_signal(signal).await {
            tracing::error!(error = %err, "worker monitor stopped with an error");
        }
    });
    // Renewals go on until the monitor has drained: jobs still run during the grace period.
    let drained = CancellationToken::new();
    let background = vec![
        tokio::spawn(relay.with_leases(leases.clone()).run(shutdown.clone())),
        tokio::spawn(transport.listen_for_wakes(shutdown.clone())),
        tokio::spawn(leases.clone().keep_alive(drained.clone())),
        tokio::spawn(presence::keep(
            db,
            WorkerRow {
                name: instance.clone(),
                host: host_name(),
                pid: i64::from(std::process::id()),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                queues: queues_column(served.iter().copied()),
                started_at: tend_shared::db::now_ms(),
                heartbeat_at: 0,
                running: 0,
                stopped_at: None,
            },
            leases.clone(),
            drained.clone(),
        )),
    ];
    tracing::info!(%instance, queues = %queues_column(served.iter().copied()), "workers started");
    Ok(WorkerHandle {
        monitor,
        drained,
        background,
        leases,
        instance,
    })
}

/// The `tend-worker` process: settings from the environment, migrations, then workers until
/// SIGTERM or Ctrl-C, draining running jobs. `migrate_only` stops after the migrations.
pub async fn run_process(migrate_only: bool) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    tend_shared::telemetry::init(settings.log_format);
    let db = settings.open_database().await?;
    tend_shared::db::migrate(&db).await?;
    if migrate_only {
        return Ok(());
    }
    let transport = Transport::connect(&settings).await?;
    let store = ObjectStore::connect(&settings).await?;
    let shutdown = CancellationToken::new();
    let handle = start(&settings, db, transport, store, shutdown.clone()).await?;
    tend_shared::telemetry::shutdown_signal().await;
    tracing::info!("shutting down: finishing running jobs");
    shutdown.cancel();
    handle.wait().await;
    Ok(())
}
