//! The `jobs` table: the ledger that is the truth about every job.
//!
//! Life of a row: inserted `pending` with the request that starts it (the outbox); the relay
//! marks it dispatched and hands its id to the queue; a worker claims it (`running`, with a
//! lease it keeps renewing); it ends `done`, `failed` (a retry is due at `run_at`) or `dead`.
//! Every state change is a guarded `UPDATE`, so a duplicate delivery or a worker that lost its
//! lease cannot overwrite what another worker did.

use sqlx::{AnyConnection, FromRow};

use super::{Db, now_ms};

/// A ledger row.
#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub queue: String,
    pub payload: String,
    pub state: String,
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
}

/// The column list of every full-row query.
macro_rules! job_columns {
    () => {
        "id, kind, queue, payload, state, attempts, max_attempts, run_at, \
    dispatched_at, lease_until, worker, last_error, created_by, request_id, dedup_key, \
    created_at, started_at, finished_at, updated_at"
    };
}

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

/// Marks up to `limit` due, undispatched jobs of `queue` as dispatched and returns their ids.
/// The guard on `dispatched_at IS NULL` makes concurrent relays split the work, not repeat it.
pub async fn take_for_dispatch(db: &Db, queue: &str, limit: i64) -> sqlx::Result<Vec<String>> {
    let now = now_ms();
    sqlx::query_scalar(
        "UPDATE jobs SET dispatched_at = $2, updated_at = $2 \
         WHERE id IN (SELECT id FROM jobs WHERE queue = $1 AND state IN ('pending', 'failed') \
                      AND dispatched_at IS NULL AND run_at <= $2 ORDER BY run_at LIMIT $3) \
         AND dispatched_at IS NULL RETURNING id",
    )
    .bind(queue)
    .bind(now)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Takes one specific job for dispatch (the fast path right after the request commits).
pub async fn take_one_for_dispatch(db: &Db, id: &str) -> sqlx::Result<bool> {
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE jobs SET dispatched_at = $2, updated_at = $2 WHERE id = $1 \
         AND state IN ('pending', 'failed') AND dispatched_at IS NULL AND run_at <= $2",
    )
    .bind(id)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Undoes a dispatch whose push to the queue failed, so the relay tries again.
pub async fn undispatch(db: &Db, id: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE jobs SET dispatched_at = NULL WHERE id = $1 AND state IN ('pending', 'failed')",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// Claims a delivered job for `worker`: counts the attempt and takes a lease. `None` means the
/// delivery is stale (already running elsewhere, finished, killed, or not yet due).
pub async fn claim(db: &Db, id: &str, worker: &str, lease_ms: i64) -> sqlx::Result<Option<JobRow>> {
    let now = now_ms();
    sqlx::query_as::<_, JobRow>(concat!(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = $2, \
         lease_until = $3, started_at = $4, finished_at = NULL, updated_at = $4 \
         WHERE id = $1 AND state IN ('pending', 'failed') AND run_at <= $4 RETURNING ",
        job_columns!(),
        ""
    ))
    .bind(id)
    .bind(worker)
    .bind(now + lease_ms)
    .bind(now)
    .fetch_optional(db)
    .await
}

/// Extends the lease of a job this worker still holds; `false` if it no longer holds it.
pub async fn renew_lease(db: &Db, id: &str, worker: &str, lease_ms: i64) -> sqlx::Result<bool> {
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE jobs SET lease_until = $3, updated_at = $4 \
         WHERE id = $1 AND worker = $2 AND state = 'running'",
    )
    .bind(id)
    .bind(worker)
    .bind(now + lease_ms)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How an attempt ended, as the ledger records it.
#[derive(Debug, Clone)]
pub enum Outcome<'a> {
    /// Finished.
    Done,
    /// Failed; run again at this instant.
    RetryAt { error: &'a str, run_at: i64 },
    /// Failed for good.
    Dead { error: &'a str },
}

/// Records the end of an attempt, if `worker` still holds the job.
pub async fn finish(db: &Db, id: &str, worker: &str, outcome: Outcome<'_>) -> sqlx::Result<bool> {
    let now = now_ms();
    let query = match outcome {
        Outcome::Done => sqlx::query(
            "UPDATE jobs SET state = 'done', finished_at = $3, updated_at = $3, \
             lease_until = NULL WHERE id = $1 AND worker = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(now),
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
    };
    Ok(query.execute(db).await?.rows_affected() == 1)
}

/// Gives running jobs whose lease lapsed (their worker died) back to the queue. A job that
/// already used all its attempts this way goes dead instead of looping forever.
pub async fn recover_expired_leases(db: &Db) -> sqlx::Result<u64> {
    let now = now_ms();
    let dead = sqlx::query(
        "UPDATE jobs SET state = 'dead', lease_until = NULL, finished_at = $1, updated_at = $1, \
         last_error = 'worker lost while running the last attempt' \
         WHERE state = 'running' AND lease_until < $1 AND attempts >= max_attempts",
    )
    .bind(now)
    .execute(db)
    .await?;
    let requeued = sqlx::query(
        "UPDATE jobs SET state = 'pending', lease_until = NULL, dispatched_at = NULL, \
         updated_at = $1, last_error = 'worker lost while running; handed to another worker' \
         WHERE state = 'running' AND lease_until < $1",
    )
    .bind(now)
    .execute(db)
    .await?;
    Ok(dead.rows_affected() + requeued.rows_affected())
}

/// Re-offers jobs dispatched long ago and never claimed (their queue message was lost, e.g.
/// a Redis flush). A duplicate delivery is harmless: the claim lets only one through.
pub async fn redispatch_stale(db: &Db, dispatched_before: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE jobs SET dispatched_at = NULL WHERE state IN ('pending', 'failed') \
         AND dispatched_at IS NOT NULL AND dispatched_at < $1",
    )
    .bind(dispatched_before)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes finished jobs older than the cut-off (done only; dead jobs stay for admins).
pub async fn prune_done(db: &Db, finished_before: i64) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM jobs WHERE state = 'done' AND finished_at < $1")
        .bind(finished_before)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}
