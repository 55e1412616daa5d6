//! The `jobs` table: the ledger that is the truth about every job.
//!
//! Life of a row: inserted `pending` with the request that starts it (the outbox); the relay
//! marks it dispatched and hands its id to the queue; a worker claims it (`running`, with a
//! lease it keeps renewing); it ends `done`, `failed` (a retry is due at `run_at`) or `dead`.
//! Every state change is a guarded `UPDATE`, so a duplicate delivery or a worker that lost its
//! lease cannot overwrite what another worker did.

use sqlx::{AnyConnection, FromRow};

use super::{Db, now_ms};
use crate::jobs::JobState;

/// A ledger row (see the `jobs` table's comments for each column).
#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub queue: String,
    pub payload: String,
    #[sqlx(try_from = "String")]
    pub state: JobState,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub dispatched_at: Option<i64>,
    pub lease_until: Option<i64>,
    pub worker: Option<String>,
    pub last_error: Option<String>,
    pub created_by: Option<String>,
    pub request_id: Option<String>,
    pub dedup_key: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
    /// When an admin asked to kill it.
    pub killed_at: Option<i64>,
}

/// The column list of every full-row query.
macro_rules! job_columns {
    () => {
        "id, kind, queue, payload, state, attempts, max_attempts, run_at, \
    dispatched_at, lease_until, worker, last_error, created_by, request_id, dedup_key, \
    created_at, started_at, finished_at, updated_at, killed_at"
    };
}

/// The same list, for queries built at run time (the admin lists).
pub(super) const COLUMNS: &str = job_columns!();

/// What it takes to insert a job.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub queue: &'a str,
    pub payload: &'a str,
    pub max_attempts: i64,
    pub run_at: i64,
    pub created_by: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub dedup_key: Option<&'a str>,
}

/// Inserts a pending job. With a `dedup_key` already present nothing is inserted and `false`
/// comes back (a second scheduler replica firing the same tick).
pub async fn insert(conn: &mut AnyConnection, job: &NewJob<'_>) -> sqlx::Result<bool> {
    let now = now_ms();
    let done = sqlx::query(
        "INSERT INTO jobs (id, kind, queue, payload, state, attempts, max_attempts, run_at, \
         created_by, request_id, dedup_key, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, $7, $8, $9, $10, $10) \
         ON CONFLICT (dedup_key) DO NOTHING",
    )
    .bind(job.id)
    .bind(job.kind)
    .bind(job.queue)
    .bind(job.payload)
    .bind(job.max_attempts)
    .bind(job.run_at)
    .bind(job.created_by)
    .bind(job.request_id)
    .bind(job.dedup_key)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One job by id.
pub async fn find(db: &Db, id: &str) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as::<_, JobRow>(concat!(
        "SELECT ",
        job_columns!(),
        " FROM jobs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Jobs handed to the queue but not yet started: what the relay keeps bounded.
pub async fn in_flight(db: &Db, queue: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE queue = $1 AND state IN ('pending', 'failed') \
         AND dispatched_at IS NOT NULL",
    )
    .bind(queue)
    .fetch_one(db)
    .await
}

/// Jobs in the transport per queue, in one query (the relay's pass over every queue).
pub async fn in_flight_by_queue(db: &Db) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT queue, COUNT(*) FROM jobs WHERE state IN ('pending', 'failed') \
         AND dispatched_at IS NOT NULL GROUP BY queue",
    )
    .fetch_all(db)
    .await
}

/// Marks up to `limit` due, undispatched jobs of `queue` as dispatched and returns their ids.
/// The guard on `dispatched_at IS NULL` makes concurrent relays split the work, not repeat it.
pub async fn take_for_dispatch(db: &Db, queue: &str, limit: i64) -> sqlx::Result<Vec<String>> {
    let now = now_ms();
    // Rows another relay or a hand-over is taking are skipped, never waited for.
    let sql = format!(
        "UPDATE jobs SET dispatched_at = $2, updated_at = $2 WHERE {} \
         AND dispatched_at IS NULL RETURNING id",
        picked(
            db,
            "SELECT id FROM jobs WHERE queue = $1 AND state IN ('pending', 'failed') \
             AND dispatched_at IS NULL AND run_at <= $2 \
             AND NOT EXISTS (SELECT 1 FROM queue_pauses WHERE queue_pauses.queue = $1) \
             ORDER BY run_at LIMIT $3",
            Lock::Skip
        )
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(queue)
        .bind(now)
        .bind(limit)
        .fetch_all(db)
        .await
}

/// Takes the listed just-committed jobs of `queue` for dispatch, unless the queue already has
/// `max_in_flight` jobs in the transport (then they wait for the relay). One statement: the
/// fast path of every request that starts jobs.
pub async fn take_listed_for_dispatch(
    db: &Db,
    queue: &str,
    ids: &[String],
    max_in_flight: i64,
) -> sqlx::Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let sql = format!(
        "UPDATE jobs SET dispatched_at = $1, updated_at = $1 WHERE {} \
         AND state IN ('pending', 'failed') AND dispatched_at IS NULL AND run_at <= $1 \
         AND NOT EXISTS (SELECT 1 FROM queue_pauses WHERE queue_pauses.queue = $2) \
         AND (SELECT COUNT(*) FROM jobs WHERE queue = $2 AND state IN ('pending', 'failed') \
              AND dispatched_at IS NOT NULL) < $3 RETURNING id",
        listed(db, 4, ids.len(), Lock::Skip)
    );
    let query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(queue)
        .bind(max_in_flight);
    bind_ids(query, ids).fetch_all(db).await
}

/// Undoes dispatches whose push to the queue failed, so the relay tries again.
pub async fn undispatch(db: &Db, ids: &[String]) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE jobs SET dispatched_at = NULL WHERE {} AND state IN ('pending', 'failed')",
        listed(db, 1, ids.len(), Lock::InOrder)
    );
    bind_ids(sqlx::query(sqlx::AssertSqlSafe(sql)), ids)
        .execute(db)
        .await?;
    Ok(())
}

/// Claims the delivered jobs for `worker` in one statement: counts each attempt and takes a
/// lease. Jobs missing from the answer were stale deliveries (already running elsewhere,
/// finished, killed, or not yet due).
pub async fn claim(
    db: &Db,
    ids: &[String],
    worker: &str,
    lease_ms: i64,
) -> sqlx::Result<Vec<JobRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let sql = format!(
        concat!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = $1, \
             lease_until = $2, started_at = $3, finished_at = NULL, updated_at = $3 \
             WHERE {} AND state IN ('pending', 'failed') AND run_at <= $3 \
             AND queue NOT IN (SELECT queue FROM queue_pauses) RETURNING ",
            job_columns!()
        ),
        listed(db, 4, ids.len(), Lock::InOrder)
    );
    let query = sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(sql))
        .bind(worker)
        .bind(now + lease_ms)
        .bind(now);
    bind_ids(query, ids).fetch_all(db).await
}

/// Extends the leases of the listed jobs `worker` runs, in one statement, and returns the ids
/// renewed: a listed job missing from the answer was killed or taken over. Only jobs the
/// worker still runs are listed, so a job whose outcome could not be written lets its lease
/// lapse and runs again elsewhere.
pub async fn renew_leases(
    db: &Db,
    worker: &str,
    ids: &[String],
    lease_ms: i64,
) -> sqlx::Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let sql = format!(
        "UPDATE jobs SET lease_until = $2, updated_at = $3 \
         WHERE {} AND state = 'running' AND worker = $1 AND killed_at IS NULL RETURNING id",
        listed(db, 4, ids.len(), Lock::InOrder)
    );
    let query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(worker)
        .bind(now + lease_ms)
        .bind(now);
    bind_ids(query, ids).fetch_all(db).await
}

/// How a failed attempt ended, as the ledger records it (finished jobs go through
/// [`finish_done`], in groups).
#[derive(Debug, Clone)]
pub enum Outcome<'a> {
    /// Failed; run again at this instant.
    RetryAt { error: &'a str, run_at: i64 },
    /// Failed for good.
    Dead { error: &'a str },
    /// Its workers kept dying until no attempt was left: dead, counting only the attempts
    /// that really ran (the claim that found this counted one more).
    Lost { error: &'a str },
    /// Killed by an admin: dead. `ran` says whether this attempt ran (stopped mid-way) or was
    /// only claimed to be buried (then it is not counted).
    Killed { error: &'a str, ran: bool },
}

impl Outcome<'_> {
    /// The name an attempt's history gives it.
    fn name(&self) -> &'static str {
        match self {
            Outcome::RetryAt { .. } => "failed",
            Outcome::Dead { .. } | Outcome::Lost { .. } => "dead",
            Outcome::Killed { .. } => "killed",
        }
    }

    fn error(&self) -> &str {
        match self {
            Outcome::RetryAt { error, .. }
            | Outcome::Dead { error }
            | Outcome::Lost { error }
            | Outcome::Killed { error, .. } => error,
        }
    }
}

/// Records the end of a failed attempt, if `worker` still holds the job, and the attempt in
/// its history.
pub async fn finish(db: &Db, id: &str, worker: &str, outcome: Outcome<'_>) -> sqlx::Result<bool> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    // The attempt is written first, while the row still says who ran it since when.
    let ran = !matches!(outcome, Outcome::Killed { ran: false, .. });
    if ran {
        sqlx::query(
            "INSERT INTO job_attempts (job_id, started_at, attempt, worker, finished_at, outcome, \
             error) SELECT id, started_at, attempts, worker, $3, $4, $5 FROM jobs \
             WHERE id = $1 AND worker = $2 AND state = 'running' AND started_at IS NOT NULL \
             ON CONFLICT (job_id, started_at) DO NOTHING",
        )
        .bind(id)
        .bind(worker)
        .bind(now)
        .bind(outcome.name())
        .bind(outcome.error())
        .execute(&mut *tx)
        .await?;
    }
    let query = match outcome {
        Outcome::RetryAt { error, run_at } => sqlx::query(
            "UPDATE jobs SET state = 'failed', finished_at = $3, updated_at = $3, \
             lease_until = NULL, dispatched_at = NULL, last_error = $4, run_at = $5 \
             WHERE id = $1 AND worker = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(now)
        .bind(error)
        .bind(run_at),
        Outcome::Dead { error } => sqlx::query(
            "UPDATE jobs SET state = 'dead', finished_at = $3, updated_at = $3, \
             lease_until = NULL, last_error = $4 \
             WHERE id = $1 AND worker = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(now)
        .bind(error),
        Outcome::Lost { error } => sqlx::query(
            "UPDATE jobs SET state = 'dead', finished_at = $3, updated_at = $3, \
             lease_until = NULL, last_error = $4, attempts = max_attempts \
             WHERE id = $1 AND worker = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(now)
        .bind(error),
        Outcome::Killed { error, ran } => sqlx::query(
            "UPDATE jobs SET state = 'dead', finished_at = $3, updated_at = $3, \
             lease_until = NULL, last_error = $4, attempts = attempts - $5 \
             WHERE id = $1 AND worker = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(now)
        .bind(error)
        .bind(i64::from(!ran)),
    };
    let recorded = query.execute(&mut *tx).await?.rows_affected() == 1;
    tx.commit().await?;
    Ok(recorded)
}

/// Records many finished jobs at once (the worker's outcome writer groups them) and returns
/// the ids recorded; the others were no longer held by `worker`. A done attempt needs no
/// history row: the job row itself says who ran it and when (see `job_attempts`), which
/// keeps this hot path one statement.
pub async fn finish_done(db: &Db, ids: &[String], worker: &str) -> sqlx::Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "UPDATE jobs SET state = 'done', finished_at = $2, updated_at = $2, lease_until = NULL \
         WHERE {} AND worker = $1 AND state = 'running' RETURNING id",
        listed(db, 3, ids.len(), Lock::InOrder)
    );
    let query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(worker)
        .bind(now_ms());
    bind_ids(query, ids).fetch_all(db).await
}

/// Gives running jobs whose lease lapsed (their worker died) back to the queue. A job whose
/// attempts are used up goes back too: the worker that claims it sees that and runs the kind's
/// dead hook before recording it dead, so every road to `dead` runs that hook.
pub async fn recover_expired_leases(db: &Db) -> sqlx::Result<u64> {
    let now = now_ms();
    let sql = format!(
        "UPDATE jobs SET state = 'pending', lease_until = NULL, dispatched_at = NULL, \
         updated_at = $1, last_error = 'worker lost while running; handed to another worker' \
         WHERE {} AND state = 'running' AND lease_until < $1",
        picked(
            db,
            "SELECT id FROM jobs WHERE state = 'running' AND lease_until < $1",
            Lock::InOrder
        )
    );
    let requeued = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .execute(db)
        .await?;
    Ok(requeued.rows_affected())
}

/// How a statement that changes many jobs takes their row locks on PostgreSQL. Every such
/// statement either locks in id order or skips what is locked, so two of them never wait for
/// each other in a cycle (each such deadlock cost a second, measured, before PostgreSQL broke
/// it). SQLite has one writer at a time and no row locks: nothing to add there.
#[derive(Clone, Copy)]
enum Lock {
    /// Wait for locked rows, taking locks in id order.
    InOrder,
    /// Leave locked rows to whoever holds them (work that another relay does as well).
    Skip,
}

/// The condition "the row is one of those `select` picks". On PostgreSQL the sub-select locks
/// its rows as `lock` says and runs once, its ids then found through the primary key: as a
/// plain `IN (…)`, stale statistics right after a bulk insert made the planner re-run it for
/// each of 20,000 rows (half a second per statement, measured).
fn picked(db: &Db, select: &str, lock: Lock) -> String {
    if super::is_postgres(db) {
        let clause = match lock {
            Lock::InOrder => "ORDER BY id FOR UPDATE",
            Lock::Skip => "FOR UPDATE SKIP LOCKED",
        };
        format!("id = ANY(ARRAY({select} {clause}))")
    } else {
        format!("id IN ({select})")
    }
}

/// The rows named by `n` id parameters from `$first` on ([`picked`]).
fn listed(db: &Db, first: usize, n: usize, lock: Lock) -> String {
    let ids = id_list(first, n);
    if super::is_postgres(db) {
        picked(
            db,
            &format!("SELECT id FROM jobs WHERE id IN ({ids})"),
            lock,
        )
    } else {
        format!("id IN ({ids})")
    }
}

/// `$first, $first+1, …` for a list of `n` ids, padded to the next power of two so that a
/// handful of statement texts (and prepared statements) serve every batch size.
fn id_list(first: usize, n: usize) -> String {
    (0..n.next_power_of_two())
        .map(|i| format!("${}", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Binds `ids` padded like [`id_list`] (repeating the last id, which changes nothing).
fn bind_ids<'q, Q: BindId<'q>>(mut query: Q, ids: &'q [String]) -> Q {
    let last = ids.last().expect("callers check for an empty list");
    for id in ids {
        query = query.bind_id(id);
    }
    for _ in ids.len()..ids.len().next_power_of_two() {
        query = query.bind_id(last);
    }
    query
}

/// The three sqlx query types share no bind trait; this lets [`bind_ids`] serve them all.
trait BindId<'q>: Sized {
    fn bind_id(self, id: &'q str) -> Self;
}

impl<'q> BindId<'q> for sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    fn bind_id(self, id: &'q str) -> Self {
        self.bind(id)
    }
}

impl<'q, O> BindId<'q> for sqlx::query::QueryScalar<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
    fn bind_id(self, id: &'q str) -> Self {
        self.bind(id)
    }
}

impl<'q, O> BindId<'q> for sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
    fn bind_id(self, id: &'q str) -> Self {
        self.bind(id)
    }
}

/// Re-offers jobs dispatched long ago and never claimed (their queue message was lost, e.g.
/// a Redis flush). A duplicate delivery is harmless: the claim lets only one through.
pub async fn redispatch_stale(db: &Db, dispatched_before: i64) -> sqlx::Result<u64> {
    let sql = format!(
        "UPDATE jobs SET dispatched_at = NULL WHERE {} \
         AND dispatched_at IS NOT NULL AND dispatched_at < $1",
        picked(
            db,
            "SELECT id FROM jobs WHERE state IN ('pending', 'failed') \
             AND dispatched_at IS NOT NULL AND dispatched_at < $1",
            Lock::InOrder
        )
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(dispatched_before)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// The latest dispatch time of a job of `queue` that a worker has already claimed (running or
/// finished): deliveries travel in order, so a job dispatched well before it and still
/// unclaimed lost its delivery (a worker killed between taking it and claiming, a relay killed
/// between marking and pushing).
pub async fn latest_claimed_dispatch(db: &Db, queue: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT MAX(dispatched_at) FROM jobs WHERE queue = $1 AND state IN ('running', 'done')",
    )
    .bind(queue)
    .fetch_one(db)
    .await
}

/// Re-offers the unclaimed jobs of `queue` dispatched before `dispatched_before` (see
/// [`latest_claimed_dispatch`]).
pub async fn redispatch_overtaken(
    db: &Db,
    queue: &str,
    dispatched_before: i64,
) -> sqlx::Result<u64> {
    let sql = format!(
        "UPDATE jobs SET dispatched_at = NULL WHERE {} \
         AND dispatched_at IS NOT NULL AND dispatched_at < $2",
        picked(
            db,
            "SELECT id FROM jobs WHERE queue = $1 AND state IN ('pending', 'failed') \
             AND dispatched_at IS NOT NULL AND dispatched_at < $2",
            Lock::InOrder
        )
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(queue)
        .bind(dispatched_before)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes finished jobs older than the cut-off (done only; dead jobs stay for admins).
pub async fn prune_done(conn: &mut AnyConnection, finished_before: i64) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM jobs WHERE state = 'done' AND finished_at < $1")
        .bind(finished_before)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}
