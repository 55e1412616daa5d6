//! Ledger writes that must survive a database blip (a PostgreSQL restart takes a second or
//! two): a claim or an outcome that fails outright costs a stalled or repeated job.

use std::{future::Future, time::Duration};

/// Waits between tries: about 6 s in all, within a lease.
const WAITS_MS: [u64; 5] = [100, 300, 700, 1_500, 3_000];

/// Runs `op` until it succeeds or the tries run out; returns the last error then.
pub async fn db_retry<T, F, Fut>(what: &str, mut op: F) -> sqlx::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = sqlx::Result<T>>,
{
    let mut waits = WAITS_MS.iter();
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(err) => match waits.next() {
                Some(ms) => {
                    tracing::warn!(error = %err, retry_in_ms = ms, "{what} failed; retrying");
                    tokio::time::sleep(Duration::from_millis(*ms)).await;
                }
                None => return Err(err),
            },
        }
    }
}
