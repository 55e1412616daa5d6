//! Ledger writes that must survive a database blip (a PostgreSQL restart takes a second or
//! two): a claim or an outcome that fails outright costs a stalled or repeated job.

use std::{future::Future, time::Duration};

/// Waits between tries: about 6 s in all, within a lease.
const WAITS_MS: [u64; 5] = [100, 300, 700, 1_500, 3_000];

/// How long an outcome keeps being retried: a finished attempt's result is worth waiting for
/// through an outage (it is fenced, so a late write changes nothing once another attempt
/// holds the job), and its lease is renewed meanwhile.
const OUTCOME_PATIENCE: Duration = Duration::from_secs(10 * 60);
/// Longest wait between two tries of an outcome.
const OUTCOME_WAIT_MAX: Duration = Duration::from_secs(5);

/// Runs `op` until it succeeds or the tries run out (about 6 s); returns the last error then.
pub async fn db_retry<T, F, Fut>(what: &str, op: F) -> sqlx::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = sqlx::Result<T>>,
{
    let total: u64 = WAITS_MS.iter().sum();
    retry_for(what, op, Duration::from_millis(total)).await
}

/// Runs `op` until it succeeds or `OUTCOME_PATIENCE` has passed: for outcomes, which must
/// not be lost to an outage.
pub async fn outcome_retry<T, F, Fut>(what: &str, op: F) -> sqlx::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = sqlx::Result<T>>,
{
    retry_for(what, op, OUTCOME_PATIENCE).await
}

/// Tries `op` with growing waits (from [`WAITS_MS`], then [`OUTCOME_WAIT_MAX`]) for at most
/// `patience`. Says so once at the first failure and once at the last, not at every try.
async fn retry_for<T, F, Fut>(what: &str, mut op: F, patience: Duration) -> sqlx::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = sqlx::Result<T>>,
{
    let started = tokio::time::Instant::now();
    let mut tries = 0usize;
    loop {
        match op().await {
            Ok(value) => {
                if tries > 0 {
                    tracing::info!(tries, "{what} went through after a retry");
                }
                return Ok(value);
            }
            Err(err) => {
                let wait = WAITS_MS
                    .get(tries)
                    .map_or(OUTCOME_WAIT_MAX, |ms| Duration::from_millis(*ms));
                tries += 1;
                if started.elapsed() + wait > patience {
                    return Err(err);
                }
                if tries == 1 {
                    tracing::warn!(error = %err, "{what} failed; retrying");
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}
