//! The transport: apalis storage (Redis, or SQLite in embedded mode) carrying [`Delivery`]
//! messages, with the wakers that start a worker's next claim the moment a job is pushed.

use super::*;

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

    /// Rate buckets shared as this transport is: through Redis by every replica, or within
    /// this process (the embedded mode has one).
    pub fn throttle(&self) -> Throttle {
        match &self.backend {
            Backend::Redis { conn, .. } => Throttle::Redis {
                conn: conn.clone(),
                namespace: self.namespace.clone(),
            },
            Backend::Sqlite { .. } => Throttle::in_memory(),
        }
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
                let task = apalis_core::task::builder::TaskBuilder::new(delivery)
                    .task_id(next_delivery_id().into())
                    .build();
                storage
                    .push_task(task)
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

    /// The Redis connection, client (for pub/sub) and key namespace, on the Redis transport
    /// (the live events' bus uses them).
    pub fn redis_client(&self) -> Option<(ConnectionManager, redis::Client, String)> {
        match &self.backend {
            Backend::Redis { conn, client } => {
                Some((conn.clone(), client.clone(), self.namespace.clone()))
            }
            Backend::Sqlite { .. } => None,
        }
    }
}

/// The id of the next SQLite delivery, higher than every earlier one of this process.
/// apalis-sqlite hands out deliveries of the same second by id, and its own ids are random
/// within a millisecond: two deliveries pushed in one millisecond (a relay pass handing over
/// a high-priority job, then the next) would run in either order.
fn next_delivery_id() -> ulid::Ulid {
    static IDS: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());
    let mut ids = IDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Overflow needs 2^80 ids in one millisecond; a fresh random id is then as good as any.
    ids.generate().unwrap_or_else(|_| ulid::Ulid::generate())
}
