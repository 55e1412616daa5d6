//! The `jobs` table: the ledger that is the truth about every job.
//!
//! Life of a row: inserted `pending` with the request that starts it (the outbox); the relay
//! marks it dispatched and hands its id to the queue; a worker claims it (`running`, with a
//! lease it keeps renewing); it ends `done`, `failed` (a retry is due at `run_at`) or `dead`.
//! Every state change is a guarded `UPDATE`, so a duplicate delivery or a worker that lost its
//! lease cannot overwrite what another worker did. Two more ends and a wait: `cancelled` (by
//! its owner or an admin), and `held` (a paid job of a practice past its budget, until
//! released).
//!
//! Fencing: every claim moves the row's `claims` counter on, and the attempt it starts is
//! named by that number ([`Attempt`]). Renewals and outcomes present it, so a stale attempt (a
//! frozen process resumed after another took the job over) changes nothing. An attempt whose
//! lease was handed back while nobody claimed the job since still owns its result: a finished
//! job is never run again because its outcome met an outage. Every attempt that ran ends as
//! one `job_attempts` row, written with the outcome it records (done, failed, dead, killed,
//! lost, cut, refused).
//!
//! The statements live by concern: `dispatch` hands pending jobs to the queue, `attempts`
//! claim, renew and end them, `recovery` hands back those lost with their worker or cut at
//! shutdown, `holds` releases held jobs and cancels unfinished ones, and
//! `sql` holds the pieces the many-row statements share.

/// The column list of every full-row query.
macro_rules! job_columns {
    () => {
        "id, kind, queue, payload, state, attempts, max_attempts, run_at, \
    dispatched_at, lease_until, worker, last_error, created_by, request_id, dedup_key, \
    created_at, started_at, finished_at, updated_at, killed_at, claims, tenant, priority, fair_key, \
    held_reason, cancelled_by"
    };
}

mod attempts;
mod dispatch;
pub mod fairness;
pub mod holds;
mod recovery;
mod sql;

pub use attempts::*;
pub use dispatch::*;
pub use recovery::*;

use sqlx::{AnyConnection, FromRow};

use super::{Db, now_ms};
use crate::jobs::{priority::Priority, state::JobState};

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
    /// Whose work it is (the practice); `None` for the system's own jobs.
    pub tenant: Option<String>,
    /// How soon it goes among its queue's waiting work (0 first).
    #[sqlx(try_from = "i64")]
    pub priority: Priority,
    /// Its turn among its priority's waiting work ([`fairness`]).
    pub fair_key: i64,
    /// Why a held job waits (`budget_exceeded`).
    pub held_reason: Option<String>,
    /// Who cancelled it: with `killed_at`, its attempt stops and it ends cancelled, not dead.
    pub cancelled_by: Option<String>,
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
    /// Whose work it is.
    pub tenant: Option<&'a str>,
    pub priority: Priority,
    /// Its turn among its tenant's jobs ([`fairness::reserve_turn`]).
    pub fair_key: i64,
}

/// Inserts a pending job. With a `dedup_key` already present nothing is inserted and `false`
/// comes back (a second scheduler replica firing the same tick).
pub async fn insert(conn: &mut AnyConnection, job: &NewJob<'_>) -> sqlx::Result<bool> {
    let now = now_ms();
    let done = sqlx::query(
        "INSERT INTO jobs (id, kind, queue, payload, state, attempts, max_attempts, run_at, \
         created_by, request_id, dedup_key, created_at, updated_at, tenant, priority, fair_key) \
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13) \
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
    .bind(job.tenant)
    .bind(i64::from(job.priority.value()))
    .bind(job.fair_key)
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

impl From<(String, i64)> for Attempt {
    fn from((job_id, claim): (String, i64)) -> Self {
        Self { job_id, claim }
    }
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

/// Deletes finished jobs older than the cut-off (done and cancelled; dead jobs stay for
/// admins to retry).
pub async fn prune_done(conn: &mut AnyConnection, finished_before: i64) -> sqlx::Result<u64> {
    sqlx::query(
        "DELETE FROM job_attempts WHERE job_id IN \
         (SELECT id FROM jobs WHERE state IN ('done', 'cancelled') AND finished_at < $1)",
    )
    .bind(finished_before)
    .execute(&mut *conn)
    .await?;
    let done =
        sqlx::query("DELETE FROM jobs WHERE state IN ('done', 'cancelled') AND finished_at < $1")
            .bind(finished_before)
            .execute(&mut *conn)
            .await?;
    Ok(done.rows_affected())
}
