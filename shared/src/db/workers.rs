//! The `workers` table: which worker processes are alive, for admins.

use std::{collections::HashMap, time::Duration};

use sqlx::{AnyConnection, FromRow};

use super::{Db, now_ms};

/// How often a worker process says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// Silence after which a process counts as gone: three missed heartbeats.
pub const GONE_AFTER: Duration = Duration::from_secs(15);

/// A worker process's row.
#[derive(Debug, Clone, FromRow)]
pub struct WorkerRow {
    pub name: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    pub queues: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub running: i64,
    pub stopped_at: Option<i64>,
}

/// Registers a starting process (a restart under the same name starts afresh).
pub async fn register(db: &Db, row: &WorkerRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO workers (name, host, pid, version, queues, started_at, heartbeat_at, \
         running, stopped_at) VALUES ($1, $2, $3, $4, $5, $6, $6, 0, NULL) \
         ON CONFLICT (name) DO UPDATE SET started_at = $6, heartbeat_at = $6, running = 0, \
         stopped_at = NULL",
    )
    .bind(&row.name)
    .bind(&row.host)
    .bind(row.pid)
    .bind(&row.version)
    .bind(&row.queues)
    .bind(row.started_at)
    .execute(db)
    .await?;
    Ok(())
}

/// A heartbeat: still alive, running `running` jobs. False when the process has no row (its
/// registration failed, or the cleanup forgot it after a long silence): it must register
/// again, or the relay, which sizes each queue's share by the live workers, counts it out.
pub async fn heartbeat(db: &Db, name: &str, running: i64) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE workers SET heartbeat_at = $2, running = $3 WHERE name = $1")
        .bind(name)
        .bind(now_ms())
        .bind(running)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A graceful stop, with the jobs it left running (their leases lapse).
pub async fn stopped(db: &Db, name: &str, running: i64) -> sqlx::Result<()> {
    let now = now_ms();
    sqlx::query(
        "UPDATE workers SET heartbeat_at = $2, stopped_at = $2, running = $3 WHERE name = $1",
    )
    .bind(name)
    .bind(now)
    .bind(running)
    .execute(db)
    .await?;
    Ok(())
}

/// Every known process, the latest started first.
pub async fn list(db: &Db) -> sqlx::Result<Vec<WorkerRow>> {
    sqlx::query_as::<_, WorkerRow>(
        "SELECT name, host, pid, version, queues, started_at, heartbeat_at, running, stopped_at \
         FROM workers ORDER BY started_at DESC, name",
    )
    .fetch_all(db)
    .await
}

/// Forgets processes last heard of before `before`; returns how many.
pub async fn delete_silent_since(conn: &mut AnyConnection, before: i64) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM workers WHERE heartbeat_at < $1")
        .bind(before)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// The job slots per queue of the processes alive now (not stopped, heard from within
/// [`GONE_AFTER`]), summed over processes: what the relay sizes each queue's share of the
/// transport by.
pub async fn live_slots(db: &Db) -> sqlx::Result<HashMap<String, usize>> {
    let lists: Vec<String> = sqlx::query_scalar(
        "SELECT queues FROM workers WHERE stopped_at IS NULL AND heartbeat_at >= $1",
    )
    .bind(now_ms() - GONE_AFTER.as_millis() as i64)
    .fetch_all(db)
    .await?;
    let mut slots = HashMap::new();
    for (queue, n) in lists.iter().flat_map(|list| parse_queues(list)) {
        *slots.entry(queue.to_owned()).or_default() += n;
    }
    Ok(slots)
}

/// Reads a `queues` column: `email=16,transcription=2` (as [`queues_column`] writes it).
fn parse_queues(list: &str) -> impl Iterator<Item = (&str, usize)> {
    list.split(',').filter_map(|entry| {
        let (queue, n) = entry.split_once('=')?;
        let queue = queue.trim();
        (!queue.is_empty()).then_some(())?;
        Some((queue, n.trim().parse().ok()?))
    })
}

/// The `queues` column of a process serving each queue with so many slots.
pub fn queues_column<'a>(served: impl IntoIterator<Item = (&'a str, usize)>) -> String {
    served
        .into_iter()
        .map(|(queue, slots)| format!("{queue}={slots}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queues_column_reads_back() {
        let column = queues_column([("email", 16), ("transcription", 2)]);
        assert_eq!(column, "email=16,transcription=2");
        let read: Vec<_> = parse_queues(&column).collect();
        assert_eq!(read, [("email", 16), ("transcription", 2)]);
        assert_eq!(parse_queues("email=x,=3,documents").count(), 0);
    }
}
