//! Attempts that end without an outcome: lost with their worker (the lease lapsed) or cut at
//! shutdown. Their jobs go back to the queue for another worker, each lost attempt a history
//! row.

use super::attempts::{Ended, write_attempt};
use super::sql::*;
use super::*;
use crate::lifecycle::update_from;
use JobState::{Pending, Running};

/// Gives running jobs whose lease lapsed (their worker died or froze) back to the queue, each
/// lost attempt a history row. A job whose attempts are used up goes back too: the worker that
/// claims it sees that and runs the kind's dead hook before recording it dead, so every road to
/// `dead` runs that hook. The attempt keeps its token: if it was only frozen and nobody claims
/// the job before it wakes, its renewal or outcome still counts.
pub async fn recover_expired_leases(db: &Db) -> sqlx::Result<u64> {
    let now = now_ms();
    let error = "worker lost while running (its lease lapsed); handed to another worker";
    let lapsed = picked(
        db,
        "SELECT id FROM jobs WHERE state = 'running' AND lease_until < $1",
        Lock::InOrder,
    );
    let update = format!(
        "{} RETURNING id, claims, attempts, worker, started_at",
        update_from(
            "jobs",
            &[Running],
            Pending,
            "lease_until = NULL, dispatched_at = NULL, updated_at = $1, last_error = $2",
            &format!("{lapsed} AND lease_until < $1"),
        )
    );
    let history = "INSERT INTO job_attempts (job_id, claim, attempt, worker, started_at, \
         finished_at, outcome, error) SELECT id, claims, attempts, worker, \
         COALESCE(started_at, $1), $1, 'lost', $2 FROM lost ON CONFLICT (job_id, claim) DO NOTHING";
    if crate::db::is_postgres(db) {
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
        "{} RETURNING id, claims, attempts, worker, started_at",
        update_from(
            "jobs",
            &[Running],
            Pending,
            "lease_until = NULL, dispatched_at = NULL, attempts = attempts - 1, \
             updated_at = $1, last_error = $2",
            &fenced(db, 3, attempts.len()),
        )
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
