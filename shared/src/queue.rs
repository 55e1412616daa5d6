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
use futures::StreamExt;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    config::{QueueBackend, Settings},
    db::{self, Db},
    jobs::{Enqueued, Queue},
    outage::Outage,
};

/// The message on the queue: which ledger rows to run. Nothing else travels. Short jobs travel
/// in batches ([`Queue::delivery_batch`]), claimed together in one statement.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Delivery {
    /// The `jobs.id`s to claim and run.
    #[serde(default)]
    pub job_ids: Vec<String>,
    /// The single id of a delivery pushed before batches existed (read, never written).
    #[serde(default, skip_serializing)]
    pub job_id: Option<String>,
}

impl Delivery {
    /// Every job id the delivery names.
    pub fn into_ids(self) -> Vec<String> {
        let mut ids = self.job_ids;
        ids.extend(self.job_id);
        ids
    }
}

/// Wakes this process's workers of a queue as soon as something is pushed to it, instead of
/// at their next poll: pushes made in this process wake them directly, pushes made elsewhere
/// through Redis pub/sub ([`Transport::listen_for_wakes`]).
#[derive(Default)]
pub struct Wakers {
    senders: std::sync::Mutex<Vec<(Queue, futures::channel::mpsc::Sender<()>)>>,
}

impl Wakers {
    /// A stream that yields each time `queue` receives work (coalesced: at most one waiting).
    pub fn subscribe(&self, queue: Queue) -> futures::channel::mpsc::Receiver<()> {
        let (tx, rx) = futures::channel::mpsc::channel(1);
        self.senders.lock().expect("wakers lock").push((queue, tx));
        rx
    }

    /// Wakes the workers of `queue` (and forgets those that stopped).
    pub fn wake(&self, queue: Queue) {
        let mut senders = self.senders.lock().expect("wakers lock");
        senders.retain(|(_, tx)| !tx.is_closed());
        for (q, tx) in senders.iter_mut() {
            if *q == queue {
                let _ = tx.try_send(()); // full: a wake is already waiting
            }
        }
    }
}

/// A connected transport. Cheap to clone (connection handles).
#[derive(Clone)]
pub struct Transport {
    /// The backend and its connection.
    pub backend: Backend,
    /// Prefix of every queue name, so several installations can share one Redis.
    namespace: String,
    /// This process's workers, woken on push.
    wakers: Arc<Wakers>,
}

/// The backend behind a [`Transport`].
#[derive(Clone)]
pub enum Backend {
    /// apalis-redis on one multiplexed connection (the client opens pub/sub connections).
    Redis {
        conn: ConnectionManager,
        client: redis::Client,
    },
    /// apalis-sqlite on its own pool (it sets `synchronous=OFF` on the pool it is given, so it
    /// never shares the data pool).
    Sqlite { pool: SqlitePool },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend {
            Backend::Redis { .. } => "Redis",
            Backend::Sqlite { .. } => "Sqlite",
        };
        write!(f, "Transport::{kind}({})", self.namespace)
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
                let client = redis::Client::open(url.expose_secret())
                    .context("QUEUE_URL is not a valid Redis URL")?;
                let conn = client
                    .get_connection_manager_with_config(config)
                    .await
                    .context("connecting to QUEUE_URL (Redis)")?;
                let transport = Self::new(Backend::Redis { conn, client }, namespace);
                // Marks the transport as seen before anything is pushed, so that a later
                // missing marker means the deliveries were lost (see `was_emptied`).
                transport
                    .was_emptied()
                    .await
                    .context("marking the Redis queue")?;
                Ok(transport)
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
                Ok(Self::new(Backend::Sqlite { pool }, namespace))
            }
        }
    }

    fn new(backend: Backend, namespace: String) -> Self {
        Self {
            backend,
            namespace,
            wakers: Arc::default(),
        }
    }

    /// The transport-level name of a queue (namespaced).
    pub fn queue_name(&self, queue: Queue) -> String {
        format!("{}:{}", self.namespace, queue.as_str())
    }

    /// The Redis pub/sub channel on which pushes announce themselves to every worker process.
    fn wake_channel(&self) -> String {
        format!("{}:wake", self.namespace)
    }

    /// This process's wakers (workers subscribe to them).
    pub fn wakers(&self) -> &Wakers {
        &self.wakers
    }

    /// Relays wake-ups announced on Redis by other processes to this process's workers, until
    /// `shutdown`; reconnects after errors. Nothing to do on the SQLite queue, which lives in
    /// one process.
    pub async fn listen_for_wakes(self, shutdown: CancellationToken) {
        let Backend::Redis { client, .. } = &self.backend else {
            return;
        };
        let channel = self.wake_channel();
        let outage = Outage::new("queue", "wake-up listener");
        while !shutdown.is_cancelled() {
            let listened = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                outage.recovered();
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    let name: String = message.get_payload()?;
                    if let Some(queue) = Queue::parse(&name) {
                        self.wakers.wake(queue);
                    }
                }
                anyhow::Ok(())
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                result = listened => {
                    match result {
                        Err(err) => outage.failed(&err),
                        Ok(()) => outage.failed(&"the wake-up channel closed"),
                    }
                    // Wakes only speed things up: polling carries on meanwhile.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
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

    /// Puts one delivery (a batch of job ids) on a queue and wakes its workers.
    pub async fn push(&self, queue: Queue, job_ids: &[String]) -> anyhow::Result<()> {
        metrics::counter!("tend_relay_handed_over_total", "queue" => queue.as_str())
            .increment(job_ids.len() as u64);
        let delivery = Delivery {
            job_ids: job_ids.to_vec(),
            job_id: None,
        };
        match &self.backend {
            Backend::Redis { conn, .. } => {
                let mut storage = RedisStorage::<Delivery>::new(conn.clone())
                    .with_config(self.redis_config(queue));
                storage
                    .push(delivery)
                    .await
                    .map_err(|e| anyhow::anyhow!("pushing to Redis: {e}"))?;
                // Other processes' workers learn of it at once; a lost wake-up only costs a poll.
                let mut conn = conn.clone();
                let woken: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                    .arg(self.wake_channel())
                    .arg(queue.as_str())
                    .query_async(&mut conn)
                    .await;
                if let Err(err) = woken {
                    tracing::debug!(error = %err, "wake-up not published");
                }
            }
            Backend::Sqlite { pool } => {
                let mut storage =
                    SqliteStorage::<Delivery>::new(pool).with_config(self.sqlite_config(queue));
                storage
                    .push(delivery)
                    .await
                    .map_err(|e| anyhow::anyhow!("pushing to the SQLite queue: {e}"))?;
            }
        }
        self.wakers.wake(queue);
        Ok(())
    }

    /// Deletes what the transport keeps of deliveries finished more than `age` ago, on every
    /// queue, and returns how many went. apalis keeps finished tasks forever otherwise (the
    /// SQLite `Jobs` table, Redis hashes and sets); the ledger is the record Tend reads.
    pub async fn vacuum(&self, age: Duration) -> anyhow::Result<usize> {
        let mut removed = 0;
        for queue in Queue::ALL {
            match &self.backend {
                Backend::Redis { conn, .. } => {
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
                Backend::Sqlite { pool } => {
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

    /// True when this call found the transport emptied since it was last seen (a Redis
    /// `FLUSHALL`, or a restart without persistence): every delivery it held is gone, and the
    /// jobs they carried must be offered again now rather than after the stale-delivery delay.
    /// A marker key tells: every process writes it when it connects, before it pushes
    /// anything, so finding it missing later means it was lost with the deliveries; the first
    /// caller to find it missing writes it back and answers `true`. The SQLite queue is never
    /// emptied behind our back: always `false`.
    pub async fn was_emptied(&self) -> anyhow::Result<bool> {
        let Backend::Redis { conn, .. } = &self.backend else {
            return Ok(false);
        };
        let mut conn = conn.clone();
        let created: bool = redis::cmd("SET")
            .arg(format!("{}:transport-epoch", self.namespace))
            .arg(crate::db::now_ms())
            .arg("NX")
            .query_async::<Option<String>>(&mut conn)
            .await?
            .is_some();
        Ok(created)
    }

    /// Checks that the transport answers (`GET /ready`).
    pub async fn ping(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Redis { conn, .. } => {
                let mut conn = conn.clone();
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            }
            Backend::Sqlite { pool } => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// The Redis connection, when there is one (shared rate limits use it).
    pub fn redis(&self) -> Option<ConnectionManager> {
        match &self.backend {
            Backend::Redis { conn, .. } => Some(conn.clone()),
            Backend::Sqlite { .. } => None,
        }
    }
}

/// Moves jobs from the ledger to the transport: right after the transaction that starts them
/// commits ([`Relay::hand_over`]) and from a loop that catches everything else (retries that
/// fell due, jobs whose worker died, pushes that failed while the queue was down, jobs that
/// waited while the transport was full).
#[derive(Clone)]
pub struct Relay {
    db: Db,
    transport: Transport,
    max_in_flight: i64,
    /// `JOB_LEASE_SECS`: after an outage of the ledger, lapsed leases are left alone this long,
    /// so that every worker can renew first (nobody could while the ledger was away).
    lease: Duration,
    /// The leases of this process, renewed before any lapsed lease is handed back, so the
    /// relay never hands back a live job of its own (a process resumed after a freeze).
    leases: Option<Arc<dyn LeaseHolder>>,
    wake: Arc<Notify>,
}

/// What holds leases in this process (the worker's lease keeper).
pub trait LeaseHolder: Send + Sync {
    /// Renews every lease this process holds now.
    fn renew_now(&self) -> futures::future::BoxFuture<'_, ()>;
}

/// Longest a commit waits to hand its jobs to the queue; past it the relay delivers them later.
const HAND_OVER_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the relay loop looks for due jobs when nothing wakes it.
const RELAY_INTERVAL: Duration = Duration::from_millis(250);
/// Shortest gap between two passes, however often the relay is nudged.
const MIN_PASS_GAP: Duration = Duration::from_millis(5);
/// How often lapsed leases are looked for: a lease lapses on a scale of seconds.
const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);
/// How often lost deliveries are looked for among the jobs that later ones overtook.
const OVERTAKEN_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// How far a later delivery must have overtaken an unclaimed one before that one counts as
/// lost: several workers and batches reorder deliveries by a little, never by this much.
const OVERTAKEN_BY: Duration = Duration::from_secs(20);
/// How often stale deliveries are looked for.
const STALE_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// A job dispatched this long ago and never claimed is offered again.
const STALE_DISPATCH: Duration = Duration::from_secs(10 * 60);
/// Most jobs one relay pass takes from the ledger per queue.
const RELAY_BATCH: i64 = 500;
/// Slowest pace of the loop while the ledger or the queue is away (each pass would fail).
const OUTAGE_PACE: Duration = Duration::from_secs(1);

/// Why a relay pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The ledger did not answer.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The transport did not take a delivery.
    #[error("queue {queue}: {error:#}")]
    Queue {
        queue: &'static str,
        error: anyhow::Error,
    },
}

impl Relay {
    /// A relay over `db` and `transport`, bounded by `QUEUE_MAX_IN_FLIGHT`.
    pub fn new(db: Db, transport: Transport, settings: &Settings) -> Self {
        Self {
            db,
            transport,
            max_in_flight: i64::from(settings.queue_max_in_flight.max(1)),
            lease: settings.job_lease,
            leases: None,
            wake: Arc::new(Notify::new()),
        }
    }

    /// The same relay, renewing `leases` before it hands back any lapsed lease.
    pub fn with_leases(mut self, leases: Arc<dyn LeaseHolder>) -> Self {
        self.leases = Some(leases);
        self
    }

    /// The transport it feeds.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The database whose ledger it reads.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Asks this process's relay loop for a pass now (a worker finished jobs, so the transport
    /// has room again).
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    /// Hands just-committed jobs to the transport at once, batched per queue. Best effort: on
    /// any failure the jobs stay in the ledger and the relay loop delivers them later, so the
    /// caller's 2xx holds.
    pub async fn hand_over(&self, jobs: &[Enqueued]) {
        for queue in Queue::ALL {
            let ids: Vec<String> = jobs
                .iter()
                .filter(|job| job.queue == queue)
                .map(|job| job.id.clone())
                .collect();
            for batch in ids.chunks(queue.delivery_batch()) {
                match self.hand_over_batch(queue, batch).await {
                    Ok(true) => {}
                    // The transport is full: the rest waits in the ledger for the relay.
                    Ok(false) => break,
                    Err(err) => {
                        tracing::debug!(queue = queue.as_str(), error = %err, "hand-over failed; the relay will retry");
                        break;
                    }
                }
            }
        }
    }

    /// Hands one batch over; `false` when the transport had no room for it.
    async fn hand_over_batch(&self, queue: Queue, ids: &[String]) -> anyhow::Result<bool> {
        let taken =
            db::jobs::take_listed_for_dispatch(&self.db, queue.as_str(), ids, self.max_in_flight)
                .await?;
        if taken.is_empty() {
            return Ok(false);
        }
        let pushed = tokio::time::timeout(HAND_OVER_TIMEOUT, self.transport.push(queue, &taken))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the queue did not answer in time")));
        if let Err(err) = pushed {
            db::jobs::undispatch(&self.db, &taken).await?;
            return Err(err);
        }
        Ok(true)
    }

    /// Runs until `shutdown`: recovers lapsed leases (each second), re-offers lost deliveries
    /// (each 30 s), and feeds each queue up to its in-flight bound (each 250 ms, or at once when
    /// nudged). While the ledger or the queue is away it says so once, then every 30 s, and
    /// once when it is back ([`Outage`]).
    pub async fn run(self, shutdown: CancellationToken) {
        let database = Outage::new("database", "relay");
        let queue = Outage::new("queue", "relay");
        // After an outage of the ledger, lapsed leases wait until every worker could renew.
        let mut recover_from: Option<tokio::time::Instant> = None;
        let mut last_recovery = tokio::time::Instant::now();
        let mut last_stale_check = tokio::time::Instant::now();
        let mut last_overtaken_check = tokio::time::Instant::now();
        loop {
            // Not while the ledger is (or just was) away: a pass must see it back first, and
            // then every worker gets a whole lease to renew.
            let holding =
                database.is_down() || recover_from.is_some_and(|t| tokio::time::Instant::now() < t);
            if !holding && due(&mut last_recovery, RECOVERY_INTERVAL) {
                if let Some(leases) = &self.leases {
                    leases.renew_now().await;
                }
                report(
                    "jobs whose worker stopped renewing its lease handed back",
                    database.observe(db::jobs::recover_expired_leases(&self.db).await),
                );
                // Everything dispatched until now was in the lost deliveries.
                if let Ok(true) = queue.observe(self.transport.was_emptied().await) {
                    report(
                        "jobs offered again after the queue was emptied",
                        db::jobs::redispatch_stale(&self.db, db::now_ms() + 1).await,
                    );
                }
            }
            if due(&mut last_overtaken_check, OVERTAKEN_CHECK_INTERVAL) {
                report(
                    "lost deliveries offered again (later ones were already claimed)",
                    database.observe(self.redispatch_overtaken().await),
                );
            }
            if due(&mut last_stale_check, STALE_CHECK_INTERVAL) {
                let cutoff = db::now_ms() - STALE_DISPATCH.as_millis() as i64;
                report(
                    "stale deliveries offered again",
                    database.observe(db::jobs::redispatch_stale(&self.db, cutoff).await),
                );
            }
            let was_down = database.is_down();
            match self.pass().await {
                Ok(moved) => {
                    if moved > 0 {
                        tracing::debug!(moved, "relay pass");
                    }
                    database.recovered();
                    queue.recovered();
                }
                Err(PassError::Db(err)) => database.failed(&err),
                Err(err @ PassError::Queue { .. }) => {
                    database.recovered();
                    queue.failed(&err);
                }
            }
            if was_down && !database.is_down() {
                // Nobody could renew a lease while the ledger was away: give every worker a
                // whole lease to do so before anything counts as lapsed.
                recover_from = Some(tokio::time::Instant::now() + self.lease);
            }
            let pace = if database.is_down() || queue.is_down() {
                OUTAGE_PACE
            } else {
                RELAY_INTERVAL
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pace) => {}
            }
            // Nudges come with every group of finished jobs: passes closer than this would
            // only count the same rows again.
            tokio::time::sleep(MIN_PASS_GAP).await;
        }
    }

    /// Re-offers, per queue, the unclaimed jobs dispatched well before the latest one a worker
    /// claimed: the transport delivers in order, so their deliveries were lost.
    async fn redispatch_overtaken(&self) -> sqlx::Result<u64> {
        let mut offered = 0;
        for queue in Queue::ALL {
            if let Some(latest) =
                db::jobs::latest_claimed_dispatch(&self.db, queue.as_str()).await?
            {
                let before = latest - OVERTAKEN_BY.as_millis() as i64;
                offered += db::jobs::redispatch_overtaken(&self.db, queue.as_str(), before).await?;
            }
        }
        Ok(offered)
    }

    /// One pass over every queue; returns how many jobs it handed over. Each queue's take is
    /// bounded by `QUEUE_MAX_IN_FLIGHT` in the same step that counts it, so relays running
    /// side by side in many processes never overfill the transport together.
    pub async fn pass(&self) -> Result<usize, PassError> {
        let names = Queue::ALL.map(Queue::as_str);
        let waiting = db::jobs::queues_to_feed(&self.db, &names, db::now_ms()).await?;
        let mut moved = 0;
        for queue in Queue::ALL {
            if !waiting.iter().any(|name| name == queue.as_str()) {
                continue;
            }
            let ids = db::jobs::take_for_dispatch(
                &self.db,
                queue.as_str(),
                self.max_in_flight,
                RELAY_BATCH,
            )
            .await?;
            let batches: Vec<&[String]> = ids.chunks(queue.delivery_batch()).collect();
            for (i, batch) in batches.iter().enumerate() {
                if let Err(error) = self.transport.push(queue, batch).await {
                    // Give back this batch and the rest; the next pass tries again.
                    db::jobs::undispatch(&self.db, &batches[i..].concat()).await?;
                    return Err(PassError::Queue {
                        queue: queue.as_str(),
                        error,
                    });
                }
                moved += batch.len();
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
/// wrong elsewhere for it to find any). Failures are the [`Outage`]'s to report.
fn report(what: &str, result: sqlx::Result<u64>) {
    if let Ok(count @ 1..) = result {
        tracing::warn!(count, "{what}");
    }
}
