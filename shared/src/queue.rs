//! The transport between the ledger and the workers, and the outbox relay that feeds it.
//!
//! apalis carries one small message per job, [`Delivery`] (the job id). Redis in production,
//! a SQLite file in embedded mode. The database ledger stays the truth: the relay hands a job
//! to the transport only while fewer than `QUEUE_MAX_IN_FLIGHT` of its queue are in transit,
//! so a burst of 100,000 jobs waits in the database instead of wedging apalis-redis (which
//! fails from 8,000 due jobs, see NOTES-apalis-1.0.md).

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use apalis::prelude::TaskSink;
use apalis_core::backend::Vacuum;
use apalis_redis::{ConnectionManager, RedisStorage};
use apalis_sqlite::{SqlitePool, SqliteStorage};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    config::{QueueBackend, Settings},
    db::{self, Db},
    jobs::{Enqueued, Queue},
};

/// The message on the queue: which ledger row to run. Nothing else travels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// The `jobs.id` to claim and run.
    pub job_id: String,
}

/// A connected transport. Cheap to clone (connection handles).
#[derive(Clone)]
pub enum Transport {
    /// apalis-redis on one multiplexed connection.
    Redis {
        conn: ConnectionManager,
        namespace: String,
    },
    /// apalis-sqlite on its own pool (it sets `synchronous=OFF` on the pool it is given, so it
    /// never shares the data pool).
    Sqlite { pool: SqlitePool, namespace: String },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Redis { namespace, .. } => write!(f, "Transport::Redis({namespace})"),
            Transport::Sqlite { namespace, .. } => write!(f, "Transport::Sqlite({namespace})"),
        }
    }
}

/// Heartbeat of apalis workers. Orphan recovery is the ledger's lease, so this only needs to be
/// short enough for apalis' own bookkeeping.
const HEARTBEAT: Duration = Duration::from_secs(5);

impl Transport {
    /// Connects to `QUEUE_URL` and prepares the backend.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let namespace = settings.queue_namespace.clone();
        match &settings.queue {
            QueueBackend::Redis(url) => {
                // Bounded: while Redis is down, calls fail within seconds instead of waiting on
                // the default reconnect schedule (requests stalled ~28 s in a test without this).
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(5)))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(1));
                let conn = redis::Client::open(url.expose_secret())
                    .context("QUEUE_URL is not a valid Redis URL")?
                    .get_connection_manager_with_config(config)
                    .await
                    .context("connecting to QUEUE_URL (Redis)")?;
                Ok(Transport::Redis { conn, namespace })
            }
            QueueBackend::Sqlite(url) => {
                db::prepare_sqlite_path(url)?;
                let url = if url.contains("mode=") {
                    url.clone()
                } else {
                    format!("{url}?mode=rwc")
                };
                // One connection: the queue file has one writer at a time anyway, and several
                // connections contending for it spend their time in SQLite's busy-wait sleeps
                // (measured: 115 jobs/s with 4 connections, 383 with 1; `cargo bench --bench burst`).
                let pool = apalis_sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect(&url)
                    .await
                    .context("opening the SQLite queue (QUEUE_URL)")?;
                sqlx::query("PRAGMA busy_timeout = 10000")
                    .execute(&pool)
                    .await?;
                SqliteStorage::setup(&pool)
                    .await
                    .context("preparing the SQLite queue tables")?;
                Ok(Transport::Sqlite { pool, namespace })
            }
        }
    }

    /// The transport-level name of a queue (namespaced).
    pub fn queue_name(&self, queue: Queue) -> String {
        let ns = match self {
            Transport::Redis { namespace, .. } | Transport::Sqlite { namespace, .. } => namespace,
        };
        format!("{ns}:{}", queue.as_str())
    }

    /// apalis-redis settings for a queue: explicit name, short heartbeat. Workers add their
    /// fetch batch.
    pub fn redis_config(&self, queue: Queue) -> apalis_redis::Config {
        apalis_redis::Config::default()
            .queue(self.queue_name(queue))
            .heartbeat_interval(HEARTBEAT)
            .missed_heartbeats(3)
    }

    /// apalis-sqlite settings for a queue (see [`Transport::redis_config`]).
    pub fn sqlite_config(&self, queue: Queue) -> apalis_sqlite::Config {
        apalis_sqlite::Config::default()
            .queue(self.queue_name(queue))
            .heartbeat_interval(HEARTBEAT)
            .missed_heartbeats(3)
    }

    /// Puts one delivery on a queue.
    pub async fn push(&self, queue: Queue, job_id: &str) -> anyhow::Result<()> {
        let delivery = Delivery {
            job_id: job_id.to_owned(),
        };
        match self {
            Transport::Redis { conn, .. } => {
                let mut storage = RedisStorage::<Delivery>::new(conn.clone())
                    .with_config(self.redis_config(queue));
                storage
                    .push(delivery)
                    .await
                    .map_err(|e| anyhow::anyhow!("pushing to Redis: {e}"))
            }
            Transport::Sqlite { pool, .. } => {
                let mut storage =
                    SqliteStorage::<Delivery>::new(pool).with_config(self.sqlite_config(queue));
                storage
                    .push(delivery)
                    .await
                    .map_err(|e| anyhow::anyhow!("pushing to the SQLite queue: {e}"))
            }
        }
    }

    /// Deletes what the transport keeps of deliveries finished more than `age` ago, on every
    /// queue, and returns how many went. apalis keeps finished tasks forever otherwise (the
    /// SQLite `Jobs` table, Redis hashes and sets); the ledger is the record Tend reads.
    pub async fn vacuum(&self, age: Duration) -> anyhow::Result<usize> {
        let mut removed = 0;
        for queue in Queue::ALL {
            match self {
                Transport::Redis { conn, .. } => {
                    let config = self.redis_config(queue);
                    let mut storage =
                        RedisStorage::<Delivery>::new(conn.clone()).with_config(config.clone());
                    removed += storage
                        .vacuum_before(age)
                        .await
                        .map_err(|e| anyhow::anyhow!("vacuuming Redis: {e}"))?;
                    // The set of finished ids is only read by apalis' own admin queries.
                    let mut conn = conn.clone();
                    let _: i64 = redis::cmd("DEL")
                        .arg(config.done_jobs_set())
                        .query_async(&mut conn)
                        .await?;
                }
                Transport::Sqlite { pool, .. } => {
                    let mut storage =
                        SqliteStorage::<Delivery>::new(pool).with_config(self.sqlite_config(queue));
                    removed += storage
                        .vacuum_before(age)
                        .await
                        .map_err(|e| anyhow::anyhow!("vacuuming the SQLite queue: {e}"))?;
                }
            }
        }
        Ok(removed)
    }

    /// Checks that the transport answers (`GET /ready`).
    pub async fn ping(&self) -> anyhow::Result<()> {
        match self {
            Transport::Redis { conn, .. } => {
                let mut conn = conn.clone();
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            }
            Transport::Sqlite { pool, .. } => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// The Redis connection, when there is one (shared rate limits use it).
    pub fn redis(&self) -> Option<ConnectionManager> {
        match self {
            Transport::Redis { conn, .. } => Some(conn.clone()),
            Transport::Sqlite { .. } => None,
        }
    }
}

/// Moves jobs from the ledger to the transport: right after a request commits (the fast
/// path) and from a loop that catches everything else (retries that fell due, jobs whose
/// worker died, pushes that failed while the queue was down).
#[derive(Clone)]
pub struct Relay {
    db: Db,
    transport: Transport,
    max_in_flight: i64,
    wake: Arc<Notify>,
}

/// Longest a request waits to hand its job to the queue; past it the relay delivers it later.
const FAST_DISPATCH_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the relay loop looks for due jobs when nothing wakes it.
const RELAY_INTERVAL: Duration = Duration::from_millis(250);
/// How often lapsed leases are looked for.
const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);
/// How often stale deliveries are looked for.
const STALE_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// A job dispatched this long ago and never claimed is offered again.
const STALE_DISPATCH: Duration = Duration::from_secs(10 * 60);
/// Most jobs one relay pass takes from the ledger per queue.
const RELAY_BATCH: i64 = 500;

impl Relay {
    /// A relay over `db` and `transport`.
    pub fn new(db: Db, transport: Transport, max_in_flight: u32) -> Self {
        Self {
            db,
            transport,
            max_in_flight: i64::from(max_in_flight.max(1)),
            wake: Arc::new(Notify::new()),
        }
    }

    /// The transport it feeds.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Hands a just-committed job to the transport at once. Best effort: on any failure the job
    /// stays in the ledger and the relay loop delivers it later, so the caller's 2xx holds.
    pub async fn dispatch_now(&self, job: &Enqueued) {
        if let Err(err) = self.try_dispatch_now(job).await {
            tracing::warn!(job_id = %job.id, error = %err, "fast dispatch failed; the relay will retry");
        }
        self.wake.notify_one();
    }

    async fn try_dispatch_now(&self, job: &Enqueued) -> anyhow::Result<()> {
        let queue = job.queue.as_str();
        if db::jobs::in_flight(&self.db, queue).await? >= self.max_in_flight {
            return Ok(()); // The queue is full enough: the job waits in the ledger.
        }
        if db::jobs::take_one_for_dispatch(&self.db, &job.id).await? {
            let pushed = tokio::time::timeout(
                FAST_DISPATCH_TIMEOUT,
                self.transport.push(job.queue, &job.id),
            )
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the queue did not answer in time")));
            if let Err(err) = pushed {
                db::jobs::undispatch(&self.db, &job.id).await?;
                return Err(err);
            }
        }
        Ok(())
    }

    /// Runs until `shutdown`: recovers lapsed leases (each second), re-offers lost deliveries
    /// (each 30 s), and feeds each queue up to its in-flight bound (each 250 ms, or at once when
    /// woken).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut last_recovery = tokio::time::Instant::now();
        let mut last_stale_check = tokio::time::Instant::now();
        loop {
            // Leases lapse on a scale of seconds: looking once a second is plenty.
            if due(&mut last_recovery, RECOVERY_INTERVAL) {
                report(
                    "jobs whose worker stopped renewing its lease handed back",
                    db::jobs::recover_expired_leases(&self.db).await,
                );
            }
            if due(&mut last_stale_check, STALE_CHECK_INTERVAL) {
                let cutoff = db::now_ms() - STALE_DISPATCH.as_millis() as i64;
                report(
                    "stale deliveries offered again",
                    db::jobs::redispatch_stale(&self.db, cutoff).await,
                );
            }
            match self.pass().await {
                Ok(moved) if moved > 0 => tracing::debug!(moved, "relay pass"),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "relay pass failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(RELAY_INTERVAL) => {}
            }
        }
    }

    /// One pass over every queue; returns how many jobs it handed over.
    pub async fn pass(&self) -> anyhow::Result<usize> {
        let recovered = db::jobs::recover_expired_leases(&self.db).await?;
        if recovered > 0 {
            tracing::warn!(
                count = recovered,
                "recovered jobs whose worker stopped renewing its lease"
            );
        }
        let mut moved = 0;
        for queue in Queue::ALL {
            let in_flight = db::jobs::in_flight(&self.db, queue.as_str()).await?;
            let room = (self.max_in_flight - in_flight).min(RELAY_BATCH);
            if room <= 0 {
                continue;
            }
            let ids = db::jobs::take_for_dispatch(&self.db, queue.as_str(), room).await?;
            for (i, id) in ids.iter().enumerate() {
                if let Err(err) = self.transport.push(queue, id).await {
                    // Give back this one and the rest; the next pass tries again.
                    for id in &ids[i..] {
                        db::jobs::undispatch(&self.db, id).await?;
                    }
                    return Err(err.context(format!("queue {} unreachable", queue.as_str())));
                }
                moved += 1;
            }
        }
        Ok(moved)
    }
}

/// True (and restarts the clock) once `every` has passed since `last`.
fn due(last: &mut tokio::time::Instant, every: Duration) -> bool {
    if last.elapsed() < every {
        return false;
    }
    *last = tokio::time::Instant::now();
    true
}

/// Logs the outcome of a periodic relay chore: a warning when it found work (something went
/// wrong elsewhere for it to find any) or failed, nothing otherwise.
fn report(what: &str, result: sqlx::Result<u64>) {
    match result {
        Ok(0) => {}
        Ok(count) => tracing::warn!(count, "{what}"),
        Err(err) => tracing::warn!(error = %err, "{what}: failed"),
    }
}
