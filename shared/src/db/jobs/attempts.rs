//! A job's attempts: the claim that starts one (moving the fencing token on), the lease
//! renewals that keep it, and the outcome that ends it with its `job_attempts` row.

use super::sql::*;
use super::*;
use crate::lifecycle::update_from;
use JobState::{Cancelled, Dead, Done, Failed, Held, Pending, Running};

/// The states an attempt's end is recorded from: running, or handed back with nobody claiming
/// the job since (the attempt still owns its result).
const LATEST: [JobState; 2] = [Running, Pending];

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
    let update = update_from(
        "jobs",
        &[Pending, Failed],
        Running,
        "attempts = attempts + 1, claims = claims + 1, worker = $1, lease_until = $2, \
         started_at = $3, finished_at = NULL, updated_at = $3",
        &format!(
            "{} AND run_at <= $3 \
             AND (killed_at IS NOT NULL OR queue NOT IN (SELECT queue FROM queue_pauses))",
            listed(db, 4, ids.len(), Lock::InOrder)
        ),
    );
    let sql = format!(concat!("{} RETURNING ", job_columns!()), update);
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
    let update = update_from(
        "jobs",
        &LATEST,
        Running,
        "lease_until = $1, updated_at = $2",
        &format!("{} AND killed_at IS NULL", fenced(db, 3, attempts.len())),
    );
    let sql = format!("{update} RETURNING id, claims");
    let query = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql))
        .bind(now + lease_ms)
        .bind(now);
    let rows = bind_attempts(query, attempts).fetch_all(db).await?;
    Ok(rows.into_iter().map(Attempt::from).collect())
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
    /// Cancelled by its owner or an admin while this attempt held it: `cancelled`, otherwise
    /// as [`Outcome::Killed`].
    Cancelled { error: &'a str, ran: bool },
    /// Held before it started, for `reason` ([`super::holds::BUDGET_EXCEEDED`]): it waits,
    /// never handed to the queue, until released. The claim is not counted as an attempt.
    Held { reason: &'a str, error: &'a str },
}

impl Outcome<'_> {
    /// The name an attempt's history gives it.
    fn name(&self) -> &'static str {
        match self {
            Outcome::RetryAt { .. } => "failed",
            Outcome::Dead { .. } | Outcome::Lost { .. } => "dead",
            Outcome::Killed { .. } => "killed",
            Outcome::Cancelled { .. } => "cancelled",
            Outcome::Held { .. } => "held",
        }
    }

    /// The error the outcome records.
    pub fn error(&self) -> &str {
        match self {
            Outcome::RetryAt { error, .. }
            | Outcome::Dead { error }
            | Outcome::Lost { error }
            | Outcome::Killed { error, .. }
            | Outcome::Cancelled { error, .. }
            | Outcome::Held { error, .. } => error,
        }
    }

    /// Whether the attempt ran: a claim that only buried the job leaves no history row.
    fn ran(&self) -> bool {
        !matches!(
            self,
            Outcome::Lost { .. }
                | Outcome::Killed { ran: false, .. }
                | Outcome::Cancelled { ran: false, .. }
                | Outcome::Held { .. }
        )
    }

    /// True when the job ends dead (and its kind's dead hook runs).
    pub fn is_dead(&self) -> bool {
        matches!(
            self,
            Outcome::Dead { .. } | Outcome::Lost { .. } | Outcome::Killed { .. }
        )
    }
}

/// An attempt as the ledger knew it when it ended: what its history row records.
#[derive(Debug, Clone, FromRow)]
pub(super) struct Ended {
    pub(super) id: String,
    pub(super) claims: i64,
    /// Which attempt of the job's count it was.
    pub(super) attempts: i64,
    pub(super) worker: Option<String>,
    pub(super) started_at: Option<i64>,
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
    let latest = "id = $1 AND claims = $2";
    let (next, set, filter) = match outcome {
        Outcome::RetryAt { .. } => (
            Failed,
            "finished_at = $3, updated_at = $3, lease_until = NULL, dispatched_at = NULL, \
             last_error = $4, run_at = $5",
            latest,
        ),
        Outcome::Dead { .. } => (
            Dead,
            "finished_at = $3, updated_at = $3, lease_until = NULL, last_error = $4",
            latest,
        ),
        Outcome::Lost { .. } => (
            Dead,
            "finished_at = $3, updated_at = $3, lease_until = NULL, last_error = $4, \
             attempts = max_attempts",
            latest,
        ),
        Outcome::Killed { .. } => (
            Dead,
            "finished_at = $3, updated_at = $3, lease_until = NULL, last_error = $4, \
             attempts = attempts - $5",
            latest,
        ),
        Outcome::Cancelled { .. } => (
            Cancelled,
            "finished_at = $3, updated_at = $3, lease_until = NULL, last_error = $4, \
             attempts = attempts - $5",
            latest,
        ),
        Outcome::Held { .. } => (
            Held,
            "held_reason = $5, updated_at = $3, lease_until = NULL, dispatched_at = NULL, \
             last_error = $4, attempts = attempts - 1",
            "id = $1 AND claims = $2 AND killed_at IS NULL",
        ),
    };
    let sql = format!(
        "{} RETURNING id, claims, attempts, worker, started_at",
        update_from("jobs", &LATEST, next, set, filter)
    );
    let query = sqlx::query_as::<_, Ended>(sqlx::AssertSqlSafe(sql))
        .bind(&attempt.job_id)
        .bind(attempt.claim)
        .bind(now)
        .bind(outcome.error());
    // The fifth parameter, where the outcome has one.
    let query = match outcome {
        Outcome::RetryAt { run_at, .. } => query.bind(run_at),
        Outcome::Killed { ran, .. } | Outcome::Cancelled { ran, .. } => query.bind(i64::from(!ran)),
        Outcome::Held { reason, .. } => query.bind(reason),
        Outcome::Dead { .. } | Outcome::Lost { .. } => query,
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
pub(super) async fn write_attempt(
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
        "{} RETURNING id, claims, attempts, worker, started_at",
        update_from(
            "jobs",
            &LATEST,
            Done,
            "finished_at = $1, updated_at = $1, lease_until = NULL",
            &fenced(db, 2, attempts.len()),
        )
    );
    let history = "INSERT INTO job_attempts (job_id, claim, attempt, worker, started_at, \
         finished_at, outcome) SELECT id, claims, attempts, worker, COALESCE(started_at, $1), $1, \
         'done' FROM done ON CONFLICT (job_id, claim) DO UPDATE SET \
         finished_at = excluded.finished_at, outcome = excluded.outcome, error = NULL";
    if crate::db::is_postgres(db) {
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
