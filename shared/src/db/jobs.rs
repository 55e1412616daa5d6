//! The `jobs` table: the ledger that is the truth about every job.
//!
//! Life of a row: inserted `pending` with the request that starts it (the outbox); the relay
//! marks it dispatched and hands its id to the queue; a worker claims it (`running`, with a
//! lease it keeps renewing); it ends `done`, `failed` (a retry is due at `run_at`) or `dead`.
//! Every state change is a guarded `UPDATE`, so a duplicate delivery or a worker that lost its
//! lease cannot overwrite what another worker did.
//!
//! Fencing: every claim moves the row's `claims` counter on, and the attempt it starts is
//! named by that number ([`Attempt`]). Renewals and outcomes present it, so a stale attempt (a
//! frozen process resumed after another took the job over) changes nothing. An attempt whose
//! lease was handed back while nobody claimed the job since still owns its result: a finished
//! job is never run again because its outcome met an outage. Every attempt that ran ends as
//! one `job_attempts` row, written with the outcome it records (done, failed, dead, killed,
//! lost, cut, refused).

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
    /// How often it was claimed, ever: the fencing token of its current attempt.
    pub claims: i64,
}

impl JobRow {
    /// The attempt this row's latest claim started.
    pub fn attempt(&self) -> Attempt {
        Attempt {
            job_id: self.id.clone(),
            claim: self.claims,
        }
    }
}

/// One attempt of one job: the job and the claim that started it (its fencing token). Every
/// write an attempt makes to the ledger presents it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attempt {
    /// The job.
    pub job_id: String,
    /// The job's `claims` when this attempt claimed it.
    pub claim: i64,
}

impl Attempt {
    /// The token as SQL compares it: `id || ':' || claims` (see [`fenced`]).
    fn fence(&self) -> String {
        format!("{}:{}", self.job_id, self.claim)
    }
}

/// The column list of every full-row query.
macro_rules! job_columns {
    () => {
        "id, kind, queue, payload, state, attempts, max_attempts, run_at, \
    dispatched_at, lease_until, worker, last_error, created_by, request_id, dedup_key, \
    created_at, started_at, finished_at, updated_at, killed_at, claims"
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
         ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING",
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
pub async fn in_flight(db: impl sqlx::AnyExecutor<'_>, queue: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE queue = $1 AND state IN ('pending', 'failed') \
         AND dispatched_at IS NOT NULL",
    )
    .bind(queue)
    .fetch_one(db)
    .await
}

/// Which of `queues` have due jobs not yet dispatched, read from the `jobs_dispatch` index in
/// one statement of probes. A relay pass opens the locked take of [`take_for_dispatch`] only
/// for those: the take counts the transport's room under a lock, which is wasted on a queue
/// with nothing to send. Unlocked, so only a hint: the take itself holds the bound. (It once
/// counted the room too: that count, made again by the take, was a seventh of the ledger's
/// time during a burst, measured with pg_stat_statements.)
pub async fn queues_to_feed(
    db: &Db,
    queues: &[&'static str],
    now: i64,
) -> sqlx::Result<Vec<String>> {
    if queues.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<String> = (0..queues.len()).map(|i| format!("(${})", i + 2)).collect();
    let sql = format!(
        "SELECT column1 FROM (VALUES {}) AS v WHERE EXISTS (SELECT 1 FROM jobs \
         WHERE jobs.queue = v.column1 AND state IN ('pending', 'failed') \
         AND dispatched_at IS NULL AND run_at <= $1)",
        values.join(", ")
    );
    let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(now);
    for queue in queues {
        query = query.bind(*queue);
    }
    query.fetch_all(db).await
}

/// Marks up to `limit` due, undispatched jobs of `queue` as dispatched, never more than leaves
/// `max_in_flight` of the queue in the transport, and returns their ids. The bound is read and
/// taken in one step: on PostgreSQL under a per-queue advisory lock (every API replica and
/// worker runs a relay, and without it N relays that counted together could each fill the room
/// they saw); on SQLite, one writer at a time makes the single statement atomic.
pub async fn take_for_dispatch(
    db: &Db,
    queue: &str,
    max_in_flight: i64,
    limit: i64,
) -> sqlx::Result<Vec<String>> {
    let now = now_ms();
    let pg = super::is_postgres(db);
    // PostgreSQL counts the room once, under the lock, and binds it as `$3`; SQLite counts it
    // inside the one statement (`$3` the limit, `$4` the bound).
    let room = if pg {
        "$3"
    } else {
        "(SELECT max(0, min($3, $4 - COUNT(*))) FROM jobs WHERE queue = $1 \
         AND state IN ('pending', 'failed') AND dispatched_at IS NOT NULL)"
    };
    // The due jobs in `run_at` order, per state straight from the `jobs_dispatch` index
    // (queue, state, dispatched_at, run_at): ordering by `dispatched_at, run_at` (all NULL
    // here) lets the planner walk the index and stop at the limit, where `ORDER BY run_at`
    // over both states read and sorted every due job (24 ms a pass during a burst of 20,000,
    // measured with pg_stat_statements). A killed job is dispatched even while its queue is
    // paused, so that a worker buries it.
    let due = |state: &str, alias: &str| {
        format!(
            "SELECT id, run_at FROM (SELECT id, run_at FROM jobs WHERE queue = $1 \
             AND state = '{state}' AND dispatched_at IS NULL AND run_at <= $2 \
             AND (killed_at IS NOT NULL OR \
                  NOT EXISTS (SELECT 1 FROM queue_pauses WHERE queue_pauses.queue = $1)) \
             ORDER BY dispatched_at, run_at LIMIT {room}) AS {alias}"
        )
    };
    let candidates = format!(
        "SELECT id FROM ({} UNION ALL {}) AS due ORDER BY run_at LIMIT {room}",
        due("pending", "p"),
        due("failed", "f")
    );
    // Rows another relay or a hand-over is taking are skipped, never waited for.
    let select = if pg {
        format!("SELECT id FROM jobs WHERE id = ANY(ARRAY({candidates}))")
    } else {
        candidates
    };
    let sql = format!(
        "UPDATE jobs SET dispatched_at = $2, updated_at = $2 WHERE {} \
         AND dispatched_at IS NULL RETURNING id",
        picked(db, &select, Lock::Skip)
    );
    let query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(queue)
        .bind(now);
    if !pg {
        return query.bind(limit).bind(max_in_flight).fetch_all(db).await;
    }
    let mut tx = db.begin().await?;
    lock_dispatch(&mut tx, queue).await?;
    // A new snapshot after the lock: it sees every dispatch committed before it.
    let room = (max_in_flight - in_flight(&mut *tx, queue).await?).min(limit);
    let ids = if room > 0 {
        query.bind(room).fetch_all(&mut *tx).await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    Ok(ids)
}

/// Serialises the dispatches of `queue` until the transaction ends (PostgreSQL only).
async fn lock_dispatch(conn: &mut AnyConnection, queue: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT CAST(pg_advisory_xact_lock(hashtext($1)) AS TEXT)")
        .bind(format!("tend.dispatch.{queue}"))
        .fetch_optional(conn)
        .await?;
    Ok(())
}

/// Takes the listed just-committed jobs of `queue` for dispatch, unless that would leave more
/// than `max_in_flight` jobs of the queue in the transport (then they wait for the relay).
/// Bounded like [`take_for_dispatch`]: the fast path of every request that starts jobs.
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
         AND (killed_at IS NOT NULL \
              OR NOT EXISTS (SELECT 1 FROM queue_pauses WHERE queue_pauses.queue = $2)) \
         AND (SELECT COUNT(*) FROM jobs WHERE queue = $2 AND state IN ('pending', 'failed') \
              AND dispatched_at IS NOT NULL) + $3 <= $4 RETURNING id",
        listed(db, 5, ids.len(), Lock::Skip)
    );
    let query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(queue)
        .bind(ids.len() as i64)
        .bind(max_in_flight);
    let query = bind_ids(query, ids);
    if !super::is_postgres(db) {
        return query.fetch_all(db).await;
    }
    let mut tx = db.begin().await?;
    lock_dispatch(&mut tx, queue).await?;
    let taken = query.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(taken)
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

/// Claims the delivered jobs for `worker` in one statement: counts each attempt, moves each
/// job's fencing token on and takes a lease. Jobs missing from the answer were stale
/// deliveries (already running elsewhere, finished, or not yet due). A killed job is claimed
/// even while its queue is paused, so that it is buried rather than left waiting.
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
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, claims = claims + 1, \
             worker = $1, lease_until = $2, started_at = $3, finished_at = NULL, updated_at = $3 \
             WHERE {} AND state IN ('pending', 'failed') AND run_at <= $3 \
             AND (killed_at IS NOT NULL OR queue NOT IN (SELECT queue FROM queue_pauses)) \
             RETURNING ",
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

/// Extends the leases of the listed attempts, in one statement, and returns those renewed: a
/// listed attempt missing from the answer was killed or overtaken by another claim. An
/// attempt whose lease was handed back while nobody claimed the job since (its process was
/// frozen, or the ledger was out of reach) takes the job back: it is still the latest attempt.
pub async fn renew_leases(
    db: &Db,
    attempts: &[Attempt],
    lease_ms: i64,
) -> sqlx::Result<Vec<Attempt>> {
    if attempts.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let sql = format!(
        "UPDATE jobs SET state = 'running', lease_until = $1, updated_at = $2 \
         WHERE {} AND state IN ('running', 'pending') AND killed_at IS NULL \
         RETURNING id, claims",
        fenced(db, 3, attempts.len())
    );
    let query = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql))
        .bind(now + lease_ms)
        .bind(now);
    let rows = bind_attempts(query, attempts).fetch_all(db).await?;
    Ok(rows.into_iter().map(Attempt::from).collect())
}

impl From<(String, i64)> for Attempt {
    fn from((job_id, claim): (String, i64)) -> Self {
        Self { job_id, claim }
    }
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
    /// that really ran (the claim that found this counted one more, and ran nothing).
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

    /// The error the outcome records.
    pub fn error(&self) -> &str {
        match self {
            Outcome::RetryAt { error, .. }
            | Outcome::Dead { error }
            | Outcome::Lost { error }
            | Outcome::Killed { error, .. } => error,
        }
    }

    /// Whether the attempt ran: a claim that only buried the job leaves no history row.
    fn ran(&self) -> bool {
        !matches!(
            self,
            Outcome::Lost { .. } | Outcome::Killed { ran: false, .. }
        )
    }

    /// True when the job will not run again.
    pub fn is_dead(&self) -> bool {
        !matches!(self, Outcome::RetryAt { .. })
    }
}

/// An attempt as the ledger knew it when it ended: what its history row records.
#[derive(Debug, Clone, FromRow)]
struct Ended {
    id: String,
    claims: i64,
    /// Which attempt of the job's count it was.
    attempts: i64,
    worker: Option<String>,
    started_at: Option<i64>,
}

impl Ended {
    fn attempt(&self) -> Attempt {
        Attempt {
            job_id: self.id.clone(),
            claim: self.claims,
        }
    }
}

/// Records the end of a failed attempt in the caller's transaction, if the attempt is still
/// the job's latest (running, or handed back with nobody claiming it since), with its history
/// row. False when another attempt holds the job: the caller records this one as refused.
/// Dead outcomes take the caller's transaction so the kind's subject fails in it too.
pub async fn finish(
    conn: &mut AnyConnection,
    attempt: &Attempt,
    outcome: Outcome<'_>,
) -> sqlx::Result<bool> {
    let now = now_ms();
    // Only the latest attempt may end the job; a hand-back without a new claim keeps it so.
    let held = "id = $1 AND claims = $2 AND state IN ('running', 'pending')";
    let returning = "RETURNING id, claims, attempts, worker, started_at";
    let query = match outcome {
        Outcome::RetryAt { error, run_at } => {
            sqlx::query_as::<_, Ended>(sqlx::AssertSqlSafe(format!(
                "UPDATE jobs SET state = 'failed', finished_at = $3, updated_at = $3, \
                 lease_until = NULL, dispatched_at = NULL, last_error = $4, run_at = $5 \
                 WHERE {held} {returning}"
            )))
            .bind(&attempt.job_id)
            .bind(attempt.claim)
            .bind(now)
            .bind(error)
            .bind(run_at)
        }
        Outcome::Dead { error } => sqlx::query_as::<_, Ended>(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'dead', finished_at = $3, updated_at = $3, \
             lease_until = NULL, last_error = $4 WHERE {held} {returning}"
        )))
        .bind(&attempt.job_id)
        .bind(attempt.claim)
        .bind(now)
        .bind(error),
        Outcome::Lost { error } => sqlx::query_as::<_, Ended>(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'dead', finished_at = $3, updated_at = $3, \
             lease_until = NULL, last_error = $4, attempts = max_attempts WHERE {held} {returning}"
        )))
        .bind(&attempt.job_id)
        .bind(attempt.claim)
        .bind(now)
        .bind(error),
        Outcome::Killed { error, ran } => sqlx::query_as::<_, Ended>(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'dead', finished_at = $3, updated_at = $3, \
             lease_until = NULL, last_error = $4, attempts = attempts - $5 WHERE {held} {returning}"
        )))
        .bind(&attempt.job_id)
        .bind(attempt.claim)
        .bind(now)
        .bind(error)
        .bind(i64::from(!ran)),
    };
    let Some(ended) = query.fetch_optional(&mut *conn).await? else {
        return Ok(false);
    };
    if outcome.ran() {
        write_attempt(conn, &ended, now, outcome.name(), Some(outcome.error())).await?;
    }
    Ok(true)
}

/// Writes (or rewrites) the history row of one attempt.
async fn write_attempt(
    conn: &mut AnyConnection,
    ended: &Ended,
    finished_at: i64,
    outcome: &str,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO job_attempts (job_id, claim, attempt, worker, started_at, finished_at, \
         outcome, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (job_id, claim) DO UPDATE SET finished_at = excluded.finished_at, \
         outcome = excluded.outcome, error = excluded.error",
    )
    .bind(&ended.id)
    .bind(ended.claims)
    .bind(ended.attempts)
    .bind(ended.worker.as_deref())
    .bind(ended.started_at.unwrap_or(finished_at))
    .bind(finished_at)
    .bind(outcome)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records an attempt whose outcome came too late: another attempt holds the job (or it was
/// killed meanwhile), so its result was discarded. `job` is the row as the attempt claimed it.
pub async fn record_refused(db: &Db, job: &JobRow, why: &str) -> sqlx::Result<()> {
    let ended = Ended {
        id: job.id.clone(),
        claims: job.claims,
        attempts: job.attempts,
        worker: job.worker.clone(),
        started_at: job.started_at,
    };
    let mut conn = db.acquire().await?;
    write_attempt(&mut conn, &ended, now_ms(), "refused", Some(why)).await
}

/// Records many finished attempts at once (the worker's outcome writer groups them), each
/// with its history row, and returns those recorded; the others were overtaken by another
/// claim. On PostgreSQL one statement; on SQLite two in one transaction (in-process, cheap).
pub async fn finish_done(db: &Db, attempts: &[Attempt]) -> sqlx::Result<Vec<Attempt>> {
    if attempts.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let update = format!(
        "UPDATE jobs SET state = 'done', finished_at = $1, updated_at = $1, lease_until = NULL \
         WHERE {} AND state IN ('running', 'pending') \
         RETURNING id, claims, attempts, worker, started_at",
        fenced(db, 2, attempts.len())
    );
    let history = "INSERT INTO job_attempts (job_id, claim, attempt, worker, started_at, \
         finished_at, outcome) SELECT id, claims, attempts, worker, COALESCE(started_at, $1), $1, \
         'done' FROM done ON CONFLICT (job_id, claim) DO UPDATE SET \
         finished_at = excluded.finished_at, outcome = excluded.outcome, error = NULL";
    if super::is_postgres(db) {
        let sql =
            format!("WITH done AS ({update}), history AS ({history}) SELECT id, claims FROM done");
        let query = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql)).bind(now);
        let rows = bind_attempts(query, attempts).fetch_all(db).await?;
        return Ok(rows.into_iter().map(Attempt::from).collect());
    }
    let mut tx = db.begin().await?;
    let query = sqlx::query_as::<_, Ended>(sqlx::AssertSqlSafe(update)).bind(now);
    let rows = bind_attempts(query, attempts).fetch_all(&mut *tx).await?;
    for row in &rows {
        write_attempt(&mut tx, row, now, "done", None).await?;
    }
    tx.commit().await?;
    Ok(rows.iter().map(Ended::attempt).collect())
}

/// Gives running jobs whose lease lapsed (their worker died or froze) back to the queue, each
/// lost attempt a history row. A job whose attempts are used up goes back too: the worker that
/// claims it sees that and runs the kind's dead hook before recording it dead, so every road to
/// `dead` runs that hook. The attempt keeps its token: if it was only frozen and nobody claims
/// the job before it wakes, its renewal or outcome still counts.
pub async fn recover_expired_leases(db: &Db) -> sqlx::Result<u64> {
    let now = now_ms();
    let error = "worker lost while running (its lease lapsed); handed to another worker";
    let update = format!(
        "UPDATE jobs SET state = 'pending', lease_until = NULL, dispatched_at = NULL, \
         updated_at = $1, last_error = $2 WHERE {} AND state = 'running' AND lease_until < $1 \
         RETURNING id, claims, attempts, worker, started_at",
        picked(
            db,
            "SELECT id FROM jobs WHERE state = 'running' AND lease_until < $1",
            Lock::InOrder
        )
    );
    let history = "INSERT INTO job_attempts (job_id, claim, attempt, worker, started_at, \
         finished_at, outcome, error) SELECT id, claims, attempts, worker, \
         COALESCE(started_at, $1), $1, 'lost', $2 FROM lost ON CONFLICT (job_id, claim) DO NOTHING";
    if super::is_postgres(db) {
        let sql =
            format!("WITH lost AS ({update}), history AS ({history}) SELECT COUNT(*) FROM lost");
        return sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(error)
            .fetch_one(db)
            .await
            .map(|n| n as u64);
    }
    let mut tx = db.begin().await?;
    let rows = sqlx::query_as::<_, Ended>(sqlx::AssertSqlSafe(update))
        .bind(now)
        .bind(error)
        .fetch_all(&mut *tx)
        .await?;
    for row in &rows {
        write_attempt(&mut tx, row, now, "lost", Some(error)).await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Hands back the attempts a shutting-down worker cut at the end of its grace period, so they
/// start again elsewhere at once instead of when their lease lapses. A cut does not count
/// against the job's attempts (the job did nothing wrong). Returns how many went back.
pub async fn hand_back(db: &Db, attempts: &[Attempt]) -> sqlx::Result<u64> {
    if attempts.is_empty() {
        return Ok(0);
    }
    let now = now_ms();
    let error = "cut when its worker shut down; handed to another worker";
    let sql = format!(
        "UPDATE jobs SET state = 'pending', lease_until = NULL, dispatched_at = NULL, \
         attempts = attempts - 1, updated_at = $1, last_error = $2 \
         WHERE {} AND state = 'running' RETURNING id, claims, attempts, worker, started_at",
        fenced(db, 3, attempts.len())
    );
    let mut tx = db.begin().await?;
    let query = sqlx::query_as::<_, Ended>(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(error);
    let rows = bind_attempts(query, attempts).fetch_all(&mut *tx).await?;
    for row in &rows {
        // The history counts the attempt that was cut, not the count it was given back to.
        let cut = Ended {
            attempts: row.attempts + 1,
            ..row.clone()
        };
        write_attempt(&mut tx, &cut, now, "cut", Some(error)).await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// The SQL condition "the attempt named by parameters `$job` (job id) and `$claim` still holds
/// its job" (running, or handed back with nobody claiming it since), for writes of a job's
/// subject that must be fenced like the job's own outcome (an artifact's commit).
pub fn holds(job: usize, claim: usize) -> String {
    format!(
        "EXISTS (SELECT 1 FROM jobs WHERE jobs.id = ${job} AND jobs.claims = ${claim} \
         AND jobs.state IN ('running', 'pending'))"
    )
}

/// The condition "the row is the attempt named by one of the `n` fence parameters": the ids
/// from `$first` on (locked like [`listed`]), then the tokens `id:claims` after them. Bind with
/// [`bind_attempts`].
fn fenced(db: &Db, first: usize, n: usize) -> String {
    format!(
        "{} AND (id || ':' || claims) IN ({})",
        listed(db, first, n, Lock::InOrder),
        id_list(first + n.next_power_of_two(), n)
    )
}

/// Binds the ids, then the tokens, of `attempts`, padded like [`id_list`].
fn bind_attempts<'q, Q: BindId<'q>>(query: Q, attempts: &[Attempt]) -> Q {
    let ids = attempts.iter().map(|a| a.job_id.clone()).collect();
    let query = bind_padded(query, ids);
    bind_padded(query, attempts.iter().map(Attempt::fence).collect())
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

/// Binds owned `values` padded like [`id_list`] (repeating the last).
fn bind_padded<'q, Q: BindId<'q>>(mut query: Q, values: Vec<String>) -> Q {
    let n = values.len();
    let last = values
        .last()
        .cloned()
        .expect("callers check for an empty list");
    for value in values {
        query = query.bind_text(value);
    }
    for _ in n..n.next_power_of_two() {
        query = query.bind_text(last.clone());
    }
    query
}

/// The three sqlx query types share no bind trait; this lets [`bind_ids`] serve them all.
trait BindId<'q>: Sized {
    fn bind_id(self, id: &'q str) -> Self;
    fn bind_text(self, value: String) -> Self;
}

impl<'q> BindId<'q> for sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    fn bind_id(self, id: &'q str) -> Self {
        self.bind(id)
    }
    fn bind_text(self, value: String) -> Self {
        self.bind(value)
    }
}

impl<'q, O> BindId<'q> for sqlx::query::QueryScalar<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
    fn bind_id(self, id: &'q str) -> Self {
        self.bind(id)
    }
    fn bind_text(self, value: String) -> Self {
        self.bind(value)
    }
}

impl<'q, O> BindId<'q> for sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
    fn bind_id(self, id: &'q str) -> Self {
        self.bind(id)
    }
    fn bind_text(self, value: String) -> Self {
        self.bind(value)
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
/// One end of the `jobs_dispatch` index per state (a single `MAX` over both states scanned
/// every finished row of the queue: its cost grew with the ledger's history).
pub async fn latest_claimed_dispatch(db: &Db, queue: &str) -> sqlx::Result<Option<i64>> {
    let (running, done): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT MAX(dispatched_at) FROM jobs WHERE queue = $1 AND state = 'running'), \
         (SELECT MAX(dispatched_at) FROM jobs WHERE queue = $1 AND state = 'done')",
    )
    .bind(queue)
    .fetch_one(db)
    .await?;
    Ok(running.max(done))
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
    sqlx::query(
        "DELETE FROM job_attempts WHERE job_id IN \
         (SELECT id FROM jobs WHERE state = 'done' AND finished_at < $1)",
    )
    .bind(finished_before)
    .execute(&mut *conn)
    .await?;
    let done = sqlx::query("DELETE FROM jobs WHERE state = 'done' AND finished_at < $1")
        .bind(finished_before)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}
