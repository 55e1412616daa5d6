//! Handing pending jobs to the queue: what the relay takes for dispatch (bounded by each
//! queue's in-flight limit), gives back when the push failed, and offers again when a queue
//! message was lost or overtaken.

use super::sql::*;
use super::*;

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

/// Marks up to `limit` due, undispatched jobs of `queue` as dispatched, in the order they are
/// to run (priority, then fair key: tenants take turns), never more than leaves `bound` of the
/// queue in the transport, and returns their ids; the queue's fair clock moves on to the
/// last key taken. The bound is read and taken in one step: on PostgreSQL under a per-queue
/// advisory lock (every API replica and worker runs a relay, and without it N relays that
/// counted together could each fill the room they saw); on SQLite, one writer at a time makes
/// the single statement atomic.
pub async fn take_for_dispatch(
    db: &Db,
    queue: &str,
    bound: i64,
    limit: i64,
) -> sqlx::Result<Vec<String>> {
    let now = now_ms();
    let pg = crate::db::is_postgres(db);
    // PostgreSQL counts the room once, under the lock, and binds it as `$3`; SQLite counts it
    // inside the one statement (`$3` the limit, `$4` the bound).
    let room = if pg {
        "$3"
    } else {
        "(SELECT max(0, min($3, $4 - COUNT(*))) FROM jobs WHERE queue = $1 \
         AND state IN ('pending', 'failed') AND dispatched_at IS NOT NULL)"
    };
    // The due jobs in hand-over order, per state straight from the `jobs_dispatch` index
    // (queue, state, dispatched_at, priority, fair_key): ordering by `dispatched_at` too (all
    // NULL here) lets the planner walk the index and stop at the limit, where a sort would
    // read every due job (24 ms a pass during a burst of 20,000, measured with
    // pg_stat_statements). A killed job is dispatched even while its queue is paused, so that
    // a worker buries it.
    let due = |state: &str, alias: &str| {
        format!(
            "SELECT id, priority, fair_key FROM (SELECT id, priority, fair_key FROM jobs \
             WHERE queue = $1 AND state = '{state}' AND dispatched_at IS NULL AND run_at <= $2 \
             AND (killed_at IS NOT NULL OR \
                  NOT EXISTS (SELECT 1 FROM queue_pauses WHERE queue_pauses.queue = $1)) \
             ORDER BY dispatched_at, priority, fair_key LIMIT {room}) AS {alias}"
        )
    };
    let candidates = format!(
        "SELECT id FROM ({} UNION ALL {}) AS due ORDER BY priority, fair_key LIMIT {room}",
        due("pending", "p"),
        due("failed", "f")
    );
    // Rows another relay is taking are skipped, never waited for.
    let select = if pg {
        format!("SELECT id FROM jobs WHERE id = ANY(ARRAY({candidates}))")
    } else {
        candidates
    };
    let update = format!(
        "UPDATE jobs SET dispatched_at = $2, updated_at = $2 WHERE {} \
         AND dispatched_at IS NULL RETURNING id, priority, fair_key",
        picked(db, &select, Lock::Skip)
    );
    // PostgreSQL moves the queue's fair clocks on in the same statement (one round trip
    // fewer on every hand-over); SQLite, which has no writing CTEs, in a second one below.
    let sql = if pg {
        format!(
            "WITH taken AS ({update}), clock AS (INSERT INTO queue_clocks \
             (queue, priority, virtual_now) SELECT $1, priority, MAX(fair_key) FROM taken \
             GROUP BY priority \
             ON CONFLICT (queue, priority) DO UPDATE SET virtual_now = excluded.virtual_now \
             WHERE queue_clocks.virtual_now < excluded.virtual_now) \
             SELECT id, priority, fair_key FROM taken"
        )
    } else {
        update
    };
    let query = sqlx::query_as::<_, (String, i64, i64)>(sqlx::AssertSqlSafe(sql))
        .bind(queue)
        .bind(now);
    let taken = if pg {
        let mut tx = db.begin().await?;
        lock_dispatch(&mut tx, queue).await?;
        // A new snapshot after the lock: it sees every dispatch committed before it.
        let room = (bound - in_flight(&mut *tx, queue).await?).min(limit);
        let taken = if room > 0 {
            query.bind(room).fetch_all(&mut *tx).await?
        } else {
            Vec::new()
        };
        tx.commit().await?;
        taken
    } else {
        let taken = query.bind(limit).bind(bound).fetch_all(db).await?;
        // Each priority's clock to the highest key taken at that priority.
        let mut highest: Vec<(i64, i64)> = Vec::new();
        for (_, priority, key) in &taken {
            match highest.iter_mut().find(|(p, _)| p == priority) {
                Some((_, k)) => *k = (*k).max(*key),
                None => highest.push((*priority, *key)),
            }
        }
        for (priority, key) in highest {
            super::fairness::advance_clock(db, queue, priority, key).await?;
        }
        taken
    };
    // RETURNING gives the rows in the order the UPDATE met them, not the candidates' order.
    let mut taken = taken;
    taken.sort_by_key(|(_, priority, key)| (*priority, *key));
    Ok(taken.into_iter().map(|(id, _, _)| id).collect())
}

/// Serialises the dispatches of `queue` until the transaction ends (PostgreSQL only).
async fn lock_dispatch(conn: &mut AnyConnection, queue: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT CAST(pg_advisory_xact_lock(hashtext($1)) AS TEXT)")
        .bind(format!("tend.dispatch.{queue}"))
        .fetch_optional(conn)
        .await?;
    Ok(())
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
