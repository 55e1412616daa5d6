//! The ledger as admins read and change it: per-queue figures, filtered lists, attempt
//! history, and the actions (retry, kill, delete, pause). Workers' own state changes stay in
//! [`super::jobs`]; these are the guarded `UPDATE`s an admin's request makes.

use sqlx::{AnyConnection, FromRow};

use super::{Db, jobs::JobRow, now_ms};
use crate::jobs::{priority::Priority, queues::Queue, state::JobState};
use crate::lifecycle::update_from;

/// One queue's figures, counted in one pass over the ledger.
#[derive(Debug, Clone, Default, FromRow)]
pub struct QueueCounts {
    pub queue: String,
    /// Waiting and due now.
    pub due: i64,
    /// Waiting for a later `run_at` (retries in backoff).
    pub scheduled: i64,
    pub running: i64,
    pub dead: i64,
    /// Waiting for something outside them (a practice's budget).
    pub held: i64,
    pub done_last_minute: i64,
    pub done_last_5_minutes: i64,
    pub done_last_15_minutes: i64,
    pub done_last_hour: i64,
    /// The `run_at` of the job that has been due the longest.
    pub oldest_due_run_at: Option<i64>,
    /// Handed to the transport and not yet started.
    pub in_transport: i64,
}

/// Every queue's figures at `now` (queues with no jobs are absent). Read from indexes only:
/// the live and dead rows through `jobs_state_id`, the last hour's done rows through
/// `jobs_done_recent`, so the cost does not grow with the ledger's history of done jobs (every
/// metrics scrape of every API replica runs this).
pub async fn queue_counts(db: &Db, now: i64) -> sqlx::Result<Vec<QueueCounts>> {
    let minute = 60_000;
    sqlx::query_as::<_, QueueCounts>(
        "SELECT queue, \
         SUM(CASE WHEN state IN ('pending', 'failed') AND run_at <= $1 THEN 1 ELSE 0 END) AS due, \
         SUM(CASE WHEN state IN ('pending', 'failed') AND run_at > $1 THEN 1 ELSE 0 END) \
           AS scheduled, \
         SUM(CASE WHEN state = 'running' THEN 1 ELSE 0 END) AS running, \
         SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END) AS dead, \
         SUM(CASE WHEN state = 'held' THEN 1 ELSE 0 END) AS held, \
         SUM(CASE WHEN state = 'done' AND finished_at >= $2 THEN 1 ELSE 0 END) AS done_last_minute, \
         SUM(CASE WHEN state = 'done' AND finished_at >= $3 THEN 1 ELSE 0 END) \
           AS done_last_5_minutes, \
         SUM(CASE WHEN state = 'done' AND finished_at >= $4 THEN 1 ELSE 0 END) \
           AS done_last_15_minutes, \
         SUM(CASE WHEN state = 'done' AND finished_at >= $5 THEN 1 ELSE 0 END) AS done_last_hour, \
         MIN(CASE WHEN state IN ('pending', 'failed') AND run_at <= $1 THEN run_at END) \
           AS oldest_due_run_at, \
         SUM(CASE WHEN state IN ('pending', 'failed') AND dispatched_at IS NOT NULL \
           THEN 1 ELSE 0 END) AS in_transport \
         FROM (SELECT queue, state, run_at, finished_at, dispatched_at FROM jobs \
               WHERE state IN ('pending', 'failed', 'running', 'dead', 'held') \
               UNION ALL \
               SELECT queue, state, run_at, finished_at, dispatched_at FROM jobs \
               WHERE state = 'done' AND finished_at >= $5) AS counted \
         GROUP BY queue",
    )
    .bind(now)
    .bind(now - minute)
    .bind(now - 5 * minute)
    .bind(now - 15 * minute)
    .bind(now - 60 * minute)
    .fetch_all(db)
    .await
}

/// Jobs finished done per minute over the last `minutes` minutes, per queue: `(queue,
/// minute index since the epoch, count)`.
pub async fn done_per_minute(
    db: &Db,
    now: i64,
    minutes: i64,
) -> sqlx::Result<Vec<(String, i64, i64)>> {
    sqlx::query_as(
        "SELECT queue, finished_at / 60000 AS minute, COUNT(*) FROM jobs \
         WHERE state = 'done' AND finished_at >= $1 GROUP BY queue, finished_at / 60000",
    )
    .bind(now - minutes * 60_000)
    .fetch_all(db)
    .await
}

/// Run times (milliseconds) of the latest `n` jobs of `queue` that finished done.
pub async fn recent_run_times(db: &Db, queue: &str, n: i64) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT finished_at - started_at FROM jobs \
         WHERE queue = $1 AND state = 'done' AND started_at IS NOT NULL \
         ORDER BY finished_at DESC LIMIT $2",
    )
    .bind(queue)
    .bind(n)
    .fetch_all(db)
    .await
}

/// What a job list is filtered by.
#[derive(Debug, Clone, Default)]
pub struct JobFilter<'a> {
    pub queue: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub state: Option<JobState>,
    /// Created at or after (milliseconds).
    pub since: Option<i64>,
    /// Whose work (a practice's account id).
    pub tenant: Option<&'a str>,
}

/// One page of jobs, newest first, after `cursor` (an id).
pub async fn list(
    db: &Db,
    filter: &JobFilter<'_>,
    cursor: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<JobRow>> {
    let sql = format!(
        "SELECT {} FROM jobs WHERE (CAST($1 AS TEXT) IS NULL OR queue = $1) \
         AND (CAST($2 AS TEXT) IS NULL OR kind = $2) \
         AND (CAST($3 AS TEXT) IS NULL OR state = $3) \
         AND (CAST($4 AS BIGINT) IS NULL OR created_at >= $4) \
         AND (CAST($5 AS TEXT) IS NULL OR id < $5) \
         AND (CAST($7 AS TEXT) IS NULL OR tenant = $7) \
         ORDER BY id DESC LIMIT $6",
        super::jobs::COLUMNS
    );
    sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(sql))
        .bind(filter.queue)
        .bind(filter.kind)
        .bind(filter.state.map(JobState::as_str))
        .bind(filter.since)
        .bind(cursor)
        .bind(limit)
        .bind(filter.tenant)
        .fetch_all(db)
        .await
}

/// One finished attempt.
#[derive(Debug, Clone, FromRow)]
pub struct AttemptRow {
    pub attempt: i64,
    pub worker: Option<String>,
    pub started_at: i64,
    pub finished_at: i64,
    pub outcome: String,
    pub error: Option<String>,
}

/// A job's finished attempts, oldest first.
pub async fn attempts(db: &Db, job_id: &str) -> sqlx::Result<Vec<AttemptRow>> {
    sqlx::query_as::<_, AttemptRow>(
        "SELECT attempt, worker, started_at, finished_at, outcome, error FROM job_attempts \
         WHERE job_id = $1 ORDER BY claim",
    )
    .bind(job_id)
    .fetch_all(db)
    .await
}

/// The estimated cost of a job's paid provider calls, in micro-dollars.
pub async fn cost_micro_usd(db: &Db, job_id: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(cost_micro_usd), 0) AS BIGINT) FROM provider_usage \
         WHERE job_id = $1",
    )
    .bind(job_id)
    .fetch_one(db)
    .await
}

/// Makes a dead or failed job due now, with its attempts counted afresh (its history stays
/// in `job_attempts`). False if it is in another state.
pub async fn retry(conn: &mut AnyConnection, id: &str) -> sqlx::Result<bool> {
    let now = now_ms();
    let sql = update_from(
        "jobs",
        &[JobState::Dead, JobState::Failed],
        JobState::Pending,
        "attempts = 0, run_at = $2, dispatched_at = NULL, lease_until = NULL, worker = NULL, \
         killed_at = NULL, finished_at = NULL, updated_at = $2",
        "id = $1",
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A dead job as the bulk retry reads it.
#[derive(Debug, Clone, FromRow)]
pub struct DeadJob {
    /// The job's id.
    pub id: String,
    /// Its kind (whose hook puts its subject back).
    pub kind: String,
    /// Its payload, for the hook.
    pub payload: String,
    /// When it died: with the id, the walk's position.
    pub finished_at: i64,
}

/// Up to `limit` dead jobs of `queue` that died at or before `died_by`, in the order they
/// died, after the position `after` (the last job of the previous batch).
pub async fn dead_batch(
    db: &Db,
    queue: Queue,
    died_by: i64,
    after: Option<(i64, String)>,
    limit: i64,
) -> sqlx::Result<Vec<DeadJob>> {
    let (after_at, after_id) = after.unwrap_or((i64::MIN, String::new()));
    sqlx::query_as(
        "SELECT id, kind, payload, finished_at FROM jobs WHERE state = 'dead' AND queue = $1 \
         AND finished_at <= $2 AND (finished_at > $3 OR (finished_at = $3 AND id > $4)) \
         ORDER BY finished_at, id LIMIT $5",
    )
    .bind(queue.as_str())
    .bind(died_by)
    .bind(after_at)
    .bind(after_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// How many jobs of `queue` that died at or before `died_by` are still dead.
pub async fn count_dead(db: &Db, queue: Queue, died_by: i64) -> sqlx::Result<u64> {
    sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM jobs WHERE state = 'dead' AND queue = $1 AND finished_at <= $2",
    )
    .bind(queue.as_str())
    .bind(died_by)
    .fetch_one(db)
    .await
    .map(|n| n as u64)
}

/// Asks for a waiting or running job to be killed. A waiting one is made due and offered at
/// once, so a worker claims it and buries it (running the kind's dead hook); a running one is
/// stopped by its worker at the next lease renewal, which leaves it out. False if it is
/// finished or already being killed.
pub async fn kill(conn: &mut AnyConnection, id: &str) -> sqlx::Result<bool> {
    let now = now_ms();
    // A held job is made pending: it is never handed over otherwise.
    let done = sqlx::query(
        "UPDATE jobs SET killed_at = $2, updated_at = $2, \
         state = CASE WHEN state = 'held' THEN 'pending' ELSE state END, held_reason = NULL, \
         run_at = CASE WHEN state = 'running' THEN run_at ELSE $2 END, \
         dispatched_at = CASE WHEN state = 'running' THEN dispatched_at ELSE NULL END \
         WHERE id = $1 AND state IN ('pending', 'failed', 'running', 'held') \
         AND killed_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets the priority of a job that waits (pending, or failed and due for a retry), at the
/// current turn of that priority (so it goes next among it, and moves no clock); false for a
/// job in another state. A job already handed to the transport keeps its place there.
pub async fn set_priority(
    conn: &mut AnyConnection,
    id: &str,
    priority: Priority,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET priority = $2, updated_at = $3, \
         fair_key = COALESCE((SELECT virtual_now FROM queue_clocks \
                              WHERE queue_clocks.queue = jobs.queue \
                              AND queue_clocks.priority = $2), 0) \
         WHERE id = $1 AND state IN ('pending', 'failed', 'held') AND killed_at IS NULL",
    )
    .bind(id)
    .bind(i64::from(priority.value()))
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a finished (done, dead or cancelled) job and its history. False if it is not
/// finished.
pub async fn delete_finished(conn: &mut AnyConnection, id: &str) -> sqlx::Result<bool> {
    sqlx::query(
        "DELETE FROM job_attempts WHERE job_id = $1 AND EXISTS \
         (SELECT 1 FROM jobs WHERE id = $1 AND state IN ('done', 'dead', 'cancelled'))",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    let done =
        sqlx::query("DELETE FROM jobs WHERE id = $1 AND state IN ('done', 'dead', 'cancelled')")
            .bind(id)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// The paused queues' names.
pub async fn paused_queues(db: &Db) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT queue FROM queue_pauses ORDER BY queue")
        .fetch_all(db)
        .await
}

/// Pauses `queue` (idempotent): nothing more is dispatched or claimed; running jobs finish.
pub async fn pause(conn: &mut AnyConnection, queue: Queue, by: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO queue_pauses (queue, paused_at, paused_by) VALUES ($1, $2, $3) \
         ON CONFLICT (queue) DO NOTHING",
    )
    .bind(queue.as_str())
    .bind(now_ms())
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}

/// Resumes `queue`: its waiting jobs are offered again, including those whose deliveries
/// were refused while it was paused.
pub async fn resume(conn: &mut AnyConnection, queue: Queue) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM queue_pauses WHERE queue = $1")
        .bind(queue.as_str())
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE jobs SET dispatched_at = NULL WHERE queue = $1 \
         AND state IN ('pending', 'failed') AND dispatched_at IS NOT NULL",
    )
    .bind(queue.as_str())
    .execute(conn)
    .await?;
    Ok(())
}
