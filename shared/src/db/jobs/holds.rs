//! Jobs that wait for something outside them (`held`) and jobs stopped by their owner or an
//! admin (`cancelled`). Each statement returns the jobs it moved, so the caller runs their
//! kinds' subject hooks in the same transaction (`crate::jobs::kinds::subject_follows`).

use super::*;
use crate::lifecycle::update_from;

/// Why a held job waits: its practice's monthly budget is spent.
pub const BUDGET_EXCEEDED: &str = "budget_exceeded";

/// A job a statement here moved: what its kind's subject hook needs.
#[derive(Debug, Clone, FromRow)]
pub struct Moved {
    pub id: String,
    pub kind: String,
    pub payload: String,
}

/// The unfinished jobs a cancellation takes.
#[derive(Debug, Clone, Copy)]
pub enum Selection<'a> {
    /// One job.
    Job(&'a str),
    /// Every job of a practice.
    Tenant(&'a str),
}

impl Selection<'_> {
    /// The condition, on `$1`.
    fn filter(self) -> &'static str {
        match self {
            Selection::Job(_) => "id = $1",
            Selection::Tenant(_) => "tenant = $1",
        }
    }

    fn value(self) -> String {
        match self {
            Selection::Job(id) | Selection::Tenant(id) => id.to_owned(),
        }
    }
}

/// What a cancellation did.
#[derive(Debug, Default)]
pub struct Cancellation {
    /// Waiting jobs (pending, failed, held) now cancelled: their subjects follow in the
    /// caller's transaction.
    pub cancelled: Vec<Moved>,
    /// Running jobs asked to stop: each worker stops its attempt at its next lease renewal
    /// (within seconds) and records the job cancelled, running the kind's hooks.
    pub stopping: Vec<Moved>,
}

impl Cancellation {
    /// Whether it took no job at all.
    pub fn is_empty(&self) -> bool {
        self.cancelled.is_empty() && self.stopping.is_empty()
    }
}

/// Cancels the selected unfinished jobs of the `kinds` given (those whose work a record
/// shows) on behalf of `by` (a user id), with `why` as their error, in one statement: waiting
/// ones (pending, failed, held) end `cancelled` at once and never run; running ones are asked
/// to stop (`killed_at`), by the same road as an admin's kill, and end `cancelled` when their
/// worker stops them. One statement, so a job moving between running and waiting meanwhile
/// is caught either way. On PostgreSQL rows are locked in id order (as every many-row
/// statement of the ledger), so two cancellations never deadlock.
pub async fn cancel(
    conn: &mut AnyConnection,
    selection: Selection<'_>,
    kinds: &[&str],
    by: &str,
    why: &str,
) -> sqlx::Result<Cancellation> {
    if kinds.is_empty() {
        return Ok(Cancellation::default());
    }
    let postgres = conn.backend_name().eq_ignore_ascii_case("postgresql");
    let lock = if postgres {
        " ORDER BY id FOR UPDATE"
    } else {
        ""
    };
    // Kind names are the registry's, never input.
    let kinds = kinds
        .iter()
        .map(|kind| format!("'{kind}'"))
        .collect::<Vec<_>>()
        .join(", ");
    // The moves are JobState's (waiting -> cancelled; running stays running until its worker
    // stops it), written as one CASE rather than lifecycle::update_from's single target.
    let sql = format!(
        "UPDATE jobs SET \
         state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END, \
         finished_at = CASE WHEN state = 'running' THEN finished_at ELSE $2 END, \
         lease_until = CASE WHEN state = 'running' THEN lease_until ELSE NULL END, \
         killed_at = COALESCE(killed_at, $2), cancelled_by = $3, last_error = $4, \
         updated_at = $2, held_reason = NULL \
         WHERE id IN (SELECT id FROM jobs WHERE {filter} AND kind IN ({kinds}) \
           AND state IN ('pending', 'failed', 'held', 'running'){lock}) \
         AND state IN ('pending', 'failed', 'held', 'running') \
         AND (state <> 'running' OR killed_at IS NULL) \
         RETURNING id, kind, payload, state",
        filter = selection.filter(),
    );
    let rows = sqlx::query_as::<_, (String, String, String, String)>(sqlx::AssertSqlSafe(sql))
        .bind(selection.value())
        .bind(now_ms())
        .bind(by)
        .bind(why)
        .fetch_all(&mut *conn)
        .await?;
    let mut cancellation = Cancellation::default();
    for (id, kind, payload, state) in rows {
        let moved = Moved { id, kind, payload };
        if state == JobState::Running.as_str() {
            cancellation.stopping.push(moved);
        } else {
            cancellation.cancelled.push(moved);
        }
    }
    Ok(cancellation)
}

/// Makes `tenant`'s jobs held for `reason` due again (pending, handed to the queue by the
/// relay in their turn), and returns them.
pub async fn release(
    conn: &mut AnyConnection,
    tenant: &str,
    reason: &str,
) -> sqlx::Result<Vec<Moved>> {
    let now = now_ms();
    let update = update_from(
        "jobs",
        &[JobState::Held],
        JobState::Pending,
        "held_reason = NULL, last_error = NULL, dispatched_at = NULL, run_at = $3, \
         updated_at = $3",
        "tenant = $1 AND held_reason = $2",
    );
    sqlx::query_as::<_, Moved>(sqlx::AssertSqlSafe(format!(
        "{update} RETURNING id, kind, payload"
    )))
    .bind(tenant)
    .bind(reason)
    .bind(now)
    .fetch_all(conn)
    .await
}

/// The practices with jobs held for `reason`.
pub async fn held_tenants(db: &Db, reason: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT tenant FROM jobs WHERE state = 'held' AND held_reason = $1 \
         AND tenant IS NOT NULL",
    )
    .bind(reason)
    .fetch_all(db)
    .await
}

/// How many of `tenant`'s jobs are held, for its budget's view.
pub async fn held_count(db: &Db, tenant: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE tenant = $1 AND state = 'held'")
        .bind(tenant)
        .fetch_one(db)
        .await
}
