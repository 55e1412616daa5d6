//! The outbox relay: hands committed jobs from the ledger to the transport, bounded per
//! queue, and repairs what an outage, a lost message or a lapsed lease left behind.

use super::*;

/// Moves jobs from the ledger to the transport: right after the transaction that starts them
/// commits ([`Relay::hand_over`]) and from a loop that catches everything else (retries that
/// fell due, jobs whose worker died, pushes that failed while the queue was down, jobs that
/// waited while the transport was full).
#[derive(Clone)]
pub struct Relay {
    db: Db,
    transport: Transport,
    /// How many jobs of each queue the transport may hold now.
    windows: Arc<window::Windows>,
    /// `JOB_PRIORITY_AGING`: the longest a job waits behind higher-priority work.
    aging: Duration,
    /// `PRACTICE_MONTHLY_BUDGET_USD`: the budget of practices without their own.
    default_budget: Option<i64>,
    /// `JOB_LEASE_SECS`: after an outage of the ledger, lapsed leases are left alone this long,
    /// so that every worker can renew first (nobody could while the ledger was away).
    lease: Duration,
    /// The leases of this process, renewed before any lapsed lease is handed back, so the
    /// relay never hands back a live job of its own (a process resumed after a freeze).
    leases: Option<Arc<dyn LeaseHolder>>,
    wake: Arc<Notify>,
}

/// Longest a push to the queue may take; past it the jobs are given back to the ledger and
/// the relay delivers them later.
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
/// How often jobs waiting past `JOB_PRIORITY_AGING` are raised.
const AGING_INTERVAL: Duration = Duration::from_secs(5);
/// How often work held for a budget is released where the budget now allows it (a new month,
/// or a budget raised on another replica; the admin API releases its own change at once).
const BUDGET_CHECK_INTERVAL: Duration = Duration::from_secs(30);
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
            windows: Arc::new(window::Windows::new(i64::from(
                settings.queue_max_in_flight.max(1),
            ))),
            aging: settings.job_priority_aging,
            default_budget: settings.provider.default_monthly_budget_micro_usd,
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

    /// Hands work to the transport at once for the queues that just-committed jobs joined:
    /// the first jobs in hand-over order, which are these jobs unless others wait ahead of
    /// them (a higher priority, or another tenant's turn). Best effort: on any failure the
    /// jobs stay in the ledger and the relay loop delivers them later, so the caller's 2xx
    /// holds.
    pub async fn hand_over(&self, jobs: &[Enqueued]) {
        for queue in Queue::ALL {
            let count = jobs.iter().filter(|job| job.queue == queue).count();
            if count == 0 {
                continue;
            }
            let handed = self.feed(queue, count as i64).await;
            if let Err(err) = handed {
                tracing::debug!(queue = queue.as_str(), error = %err, "hand-over failed; the relay will retry");
            }
        }
    }

    /// Hands up to `limit` of `queue`'s due jobs to the transport, in hand-over order and
    /// within the queue's window; returns how many. A push that fails gives its jobs back.
    async fn feed(&self, queue: Queue, limit: i64) -> Result<usize, PassError> {
        let bound = self.windows.bound(&self.db, queue).await?;
        let ids = db::jobs::take_for_dispatch(&self.db, queue.as_str(), bound, limit).await?;
        let batches: Vec<&[String]> = ids.chunks(queue.delivery_batch()).collect();
        let mut moved = 0;
        for (i, batch) in batches.iter().enumerate() {
            let pushed = tokio::time::timeout(HAND_OVER_TIMEOUT, self.transport.push(queue, batch))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the queue did not answer in time")));
            if let Err(error) = pushed {
                // Give back this batch and the rest; the next pass tries again.
                db::jobs::undispatch(&self.db, &batches[i..].concat()).await?;
                return Err(PassError::Queue {
                    queue: queue.as_str(),
                    error,
                });
            }
            moved += batch.len();
        }
        Ok(moved)
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
        let mut last_aging = tokio::time::Instant::now();
        let mut last_budget_check = tokio::time::Instant::now();
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
            if !holding && due(&mut last_aging, AGING_INTERVAL) {
                // In the normal course of things: the chore logs what it raised itself.
                let _ = database.observe(self.promote_waiting().await);
            }
            if !holding && due(&mut last_budget_check, BUDGET_CHECK_INTERVAL) {
                report(
                    "jobs held for a budget released (the budget allows them now)",
                    database.observe(
                        crate::budget::release_all_allowed(&self.db, self.default_budget)
                            .await
                            .map(|n| n as u64),
                    ),
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

    /// Raises, per queue, the jobs that waited past `JOB_PRIORITY_AGING` behind
    /// higher-priority work to [`Priority::INTERACTIVE`].
    async fn promote_waiting(&self) -> sqlx::Result<u64> {
        let due_before = db::now_ms() - self.aging.as_millis() as i64;
        let mut raised = 0;
        for queue in Queue::ALL {
            raised += db::jobs::fairness::promote_waiting(
                &self.db,
                queue.as_str(),
                Priority::INTERACTIVE,
                due_before,
            )
            .await?;
        }
        if raised > 0 {
            tracing::info!(
                count = raised,
                "jobs raised to interactive priority after waiting past JOB_PRIORITY_AGING"
            );
        }
        Ok(raised)
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
    /// bounded by its window in the same step that counts it, so relays running
    /// side by side in many processes never overfill the transport together.
    pub async fn pass(&self) -> Result<usize, PassError> {
        let names = Queue::ALL.map(Queue::as_str);
        let waiting = db::jobs::queues_to_feed(&self.db, &names, db::now_ms()).await?;
        let mut moved = 0;
        for queue in Queue::ALL {
            if waiting.iter().any(|name| name == queue.as_str()) {
                moved += self.feed(queue, RELAY_BATCH).await?;
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
