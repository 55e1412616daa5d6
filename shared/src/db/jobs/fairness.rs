//! Turns between tenants: start-time fair queueing over the ledger.
//!
//! Each queue and priority keeps a virtual clock (`queue_clocks`: the highest fair key of that
//! priority handed to the transport so far) and, per tenant, the fair key of the tenant's latest
//! job of that priority (`queue_tenants`). A new job's key is one turn after its tenant's latest job, or the clock
//! if the tenant has fallen behind it. The relay hands jobs over by priority, then key, so
//! tenants with work waiting alternate: tenant A's 10,000 queued jobs hold keys far ahead of
//! the clock, and tenant B's new job, keyed at the clock, goes next.
//!
//! A job keeps its key for life: a retry or a job handed back after its worker died goes at
//! its old turn, that is at once. A job raised by aging keeps its (old) key too, which puts it
//! first among its new priority; one an admin moves takes the new priority's clock.

use sqlx::AnyConnection;

use super::*;

/// The tenant name the system's own jobs share in `queue_tenants`.
const SYSTEM: &str = "";

/// Reserves the next turn of `tenant` on `queue` and returns its fair key; the caller may
/// number further jobs of the same tenant in the same transaction key + 1, key + 2, … and
/// then record the last with [`record_turns`]. On PostgreSQL the row stays locked until the
/// transaction ends, so two transactions of one tenant never take the same turns.
pub async fn reserve_turn(
    conn: &mut AnyConnection,
    queue: &str,
    priority: Priority,
    tenant: Option<&str>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO queue_tenants (queue, priority, tenant, last_key) \
         VALUES ($1, $2, $3, COALESCE((SELECT virtual_now FROM queue_clocks \
                                      WHERE queue = $1 AND priority = $2), 0) + 1) \
         ON CONFLICT (queue, priority, tenant) DO UPDATE SET last_key = CASE \
           WHEN queue_tenants.last_key + 1 > excluded.last_key THEN queue_tenants.last_key + 1 \
           ELSE excluded.last_key END \
         RETURNING last_key",
    )
    .bind(queue)
    .bind(i64::from(priority.value()))
    .bind(tenant.unwrap_or(SYSTEM))
    .fetch_one(conn)
    .await
}

/// Records `last_key` as the tenant's latest turn on `queue` (after numbering several jobs
/// from one [`reserve_turn`]).
pub async fn record_turns(
    conn: &mut AnyConnection,
    queue: &str,
    priority: Priority,
    tenant: Option<&str>,
    last_key: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE queue_tenants SET last_key = $4 \
         WHERE queue = $1 AND priority = $2 AND tenant = $3 AND last_key < $4",
    )
    .bind(queue)
    .bind(i64::from(priority.value()))
    .bind(tenant.unwrap_or(SYSTEM))
    .bind(last_key)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets `tenant`'s turns on every queue (an erased account: its next job, if any, would
/// start at the clock like a new tenant's).
pub async fn forget_tenant(conn: &mut AnyConnection, tenant: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM queue_tenants WHERE tenant = $1")
        .bind(tenant)
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves the clock of `queue` at `priority` on to `key` (never back): the relay has handed
/// over a job with it. (On PostgreSQL the hand-over's own statement does this.)
pub async fn advance_clock(
    conn: impl sqlx::AnyExecutor<'_>,
    queue: &str,
    priority: i64,
    key: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO queue_clocks (queue, priority, virtual_now) VALUES ($1, $2, $3) \
         ON CONFLICT (queue, priority) DO UPDATE SET virtual_now = $3 \
         WHERE queue_clocks.virtual_now < $3",
    )
    .bind(queue)
    .bind(priority)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

/// Raises to `to` every job of `queue` waiting for dispatch at a lower priority since before
/// `due_before` (ms): the bound on how long batch work waits behind interactive work. The jobs
/// keep their fair keys, which are old, so they go first among `to`'s work.
pub async fn promote_waiting(
    db: &Db,
    queue: &str,
    to: Priority,
    due_before: i64,
) -> sqlx::Result<u64> {
    // Rows another statement holds are left for the next round, never waited for.
    let sql = format!(
        "UPDATE jobs SET priority = $2 WHERE {} AND priority > $2 AND dispatched_at IS NULL",
        sql::picked(
            db,
            "SELECT id FROM jobs WHERE queue = $1 AND state IN ('pending', 'failed') \
             AND dispatched_at IS NULL AND priority > $2 AND run_at < $3",
            sql::Lock::Skip
        )
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(queue)
        .bind(i64::from(to.value()))
        .bind(due_before)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}
