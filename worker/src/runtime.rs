//! Starts the worker side of a process: one apalis worker per queue (each with its own
//! concurrency) on the configured transport, plus the outbox relay. Stops gracefully: on
//! shutdown no new job is taken and running jobs get `SHUTDOWN_GRACE_SECS` to finish.

use std::{sync::Arc, time::Duration};

use apalis::prelude::*;
use apalis_redis::RedisStorage;
use apalis_sqlite::SqliteStorage;
use tend_shared::{
    Settings,
    db::Db,
    jobs::Queue,
    queue::{Delivery, Relay, Transport},
    storage::ObjectStore,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::runner::{self, JobEnv};

/// How often a worker asks its queue for work. apalis backends otherwise only look on their
/// heartbeat (seconds). Each poll takes up to `WORKER_CONCURRENCY` deliveries (more would let
/// one replica hoard slow jobs while others idle), so this also
/// caps throughput per process and queue (16 / 20 ms = 800 jobs/s); an idle poll costs about
/// 80 µs of Redis CPU (NOTES-apalis-1.0.md).
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A running worker side; [`WorkerHandle::wait`] returns once it has drained.
pub struct WorkerHandle {
    monitor: JoinHandle<()>,
    relay: JoinHandle<()>,
    /// This process's worker name prefix (unique per process).
    pub instance: String,
}

impl WorkerHandle {
    /// Waits for running jobs to finish (bounded by the grace period) and the relay to stop.
    pub async fn wait(self) {
        let _ = self.monitor.await;
        let _ = self.relay.await;
    }
}

/// The apalis handler: every queue delivers job ids to the same runner.
async fn on_delivery(delivery: Delivery, env: Data<Arc<JobEnv>>) -> Result<(), BoxDynError> {
    runner::run_delivery(Arc::clone(&env), delivery.job_id).await;
    Ok(())
}

/// A name no other live process has: apalis refuses a second worker under the same name.
fn instance_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let nonce = &uuid::Uuid::new_v4().simple().to_string()[..6];
    format!("{host}-{}-{nonce}", std::process::id())
}

/// Starts workers for every queue and the relay; they run until `shutdown` is cancelled.
pub async fn start(
    settings: &Settings,
    db: Db,
    transport: Transport,
    store: ObjectStore,
    shutdown: CancellationToken,
) -> anyhow::Result<WorkerHandle> {
    let instance = instance_name();
    let env = Arc::new(JobEnv::new(
        settings,
        db.clone(),
        transport.clone(),
        store,
        instance.clone(),
    )?);
    let concurrency = settings.worker_concurrency;

    let mut monitor = Monitor::new()
        .shutdown_timeout(settings.shutdown_grace)
        // A worker whose backend failed (queue unreachable) is started again.
        .should_restart(|_, _| true);
    for queue in Queue::ALL {
        let env = env.clone();
        let transport_c = transport.clone();
        let prefix = format!("{}-{instance}", queue.as_str());
        monitor = match &transport {
            Transport::Redis { conn, .. } => {
                let conn = conn.clone();
                monitor.register(move |restarts| {
                    let backend = RedisStorage::<Delivery>::new(conn.clone())
                        .with_config(transport_c.redis_config(queue).batch_size(concurrency))
                        .poll_with_interval(POLL_INTERVAL);
                    WorkerBuilder::new(format!("{prefix}-{restarts}"))
                        .backend(backend)
                        .data(env.clone())
                        .concurrency(concurrency)
                        .parallelize(tokio::spawn)
                        .build(on_delivery)
                })
            }
            Transport::Sqlite { pool, .. } => {
                let pool = pool.clone();
                monitor.register(move |restarts| {
                    let backend = SqliteStorage::<Delivery>::new(&pool)
                        .with_config(transport_c.sqlite_config(queue).batch_size(concurrency))
                        .poll_with_interval(POLL_INTERVAL);
                    WorkerBuilder::new(format!("{prefix}-{restarts}"))
                        .backend(backend)
                        .data(env.clone())
                        .concurrency(concurrency)
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
    let relay = Relay::new(db, transport, settings.queue_max_in_flight);
    let relay = tokio::spawn(relay.run(shutdown));
    tracing::info!(%instance, concurrency, "workers started");
    Ok(WorkerHandle {
        monitor,
        relay,
        instance,
    })
}
