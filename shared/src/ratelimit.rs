//! Fixed-window rate limits: in memory for one process, in Redis when Redis is configured so
//! every API replica counts against the same budget.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use apalis_redis::ConnectionManager;

/// Longest a request waits for the shared counter before it is let through.
const REDIS_TIMEOUT: Duration = Duration::from_millis(300);

/// The verdict on one more attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allowed,
    /// Over the limit; try again after this long (the `Retry-After` header).
    Limited { retry_after: Duration },
}

/// Counts attempts per key and window.
#[derive(Clone)]
pub enum RateLimiter {
    /// One process only (embedded mode): per key, its window's end (ms since the epoch) and
    /// the count in that window.
    Memory(Arc<Mutex<HashMap<String, (u64, u32)>>>),
    /// Shared by every replica.
    Redis {
        conn: ConnectionManager,
        namespace: String,
    },
}

impl RateLimiter {
    /// An in-process limiter.
    pub fn in_memory() -> Self {
        RateLimiter::Memory(Arc::default())
    }

    /// Counts one attempt for `key` and says whether it is within `limit` per `window`.
    /// If Redis cannot be reached the attempt is allowed (and logged): an outage of the limiter
    /// must not lock every user out.
    pub async fn hit(&self, key: &str, limit: u32, window: Duration) -> Decision {
        let Window { slot, now, ends } = Window::now(window);
        let retry_after = Duration::from_millis(ends - now);
        let count = match self {
            RateLimiter::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() > 100_000 {
                    // Only windows that are over go: each key keeps its own window's end, so
                    // a per-minute limit's pruning never forgets an hourly counter.
                    map.retain(|_, (ends, _)| *ends > now);
                }
                let entry = map.entry(key.to_owned()).or_insert((ends, 0));
                if entry.0 != ends {
                    *entry = (ends, 0);
                }
                entry.1 += 1;
                entry.1
            }
            RateLimiter::Redis { conn, namespace } => {
                let redis_key = redis_key(namespace, key, slot);
                let mut conn = conn.clone();
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .incr(&redis_key, 1)
                    .pexpire(&redis_key, window.as_millis() as i64 + 1000);
                let query = pipe.query_async::<(u32, i64)>(&mut conn);
                match tokio::time::timeout(REDIS_TIMEOUT, query).await {
                    Ok(Ok((count, _))) => count,
                    failed => {
                        let error = match failed {
                            Ok(Err(err)) => err.to_string(),
                            _ => "timed out".to_owned(),
                        };
                        tracing::warn!(%error, "rate limiter unavailable; allowing");
                        return Decision::Allowed;
                    }
                }
            }
        };
        if count > limit {
            Decision::Limited { retry_after }
        } else {
            Decision::Allowed
        }
    }

    /// How many attempts `key` has made in the current `window` (admins read budgets with it).
    /// An unreachable Redis reads as none.
    pub async fn used(&self, key: &str, window: Duration) -> u32 {
        let Window { slot, ends, .. } = Window::now(window);
        match self {
            RateLimiter::Memory(map) => {
                let map = map.lock().unwrap_or_else(|p| p.into_inner());
                map.get(key)
                    .filter(|(e, _)| *e == ends)
                    .map_or(0, |(_, n)| *n)
            }
            RateLimiter::Redis { conn, namespace } => {
                let mut conn = conn.clone();
                let mut cmd = redis::cmd("GET");
                cmd.arg(redis_key(namespace, key, slot));
                let get = cmd.query_async::<Option<u32>>(&mut conn);
                match tokio::time::timeout(REDIS_TIMEOUT, get).await {
                    Ok(Ok(count)) => count.unwrap_or(0),
                    _ => 0,
                }
            }
        }
    }

    /// Forgets the attempts of `key` in the current `window` (an admin's reset).
    pub async fn reset(&self, key: &str, window: Duration) -> anyhow::Result<()> {
        let slot = Window::now(window).slot;
        match self {
            RateLimiter::Memory(map) => {
                map.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
            }
            RateLimiter::Redis { conn, namespace } => {
                let mut conn = conn.clone();
                redis::cmd("DEL")
                    .arg(redis_key(namespace, key, slot))
                    .query_async::<()>(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// When the current `window` ends (ms since the epoch).
    pub fn window_ends(window: Duration) -> u64 {
        Window::now(window).ends
    }
}

/// The fixed window of a given length that holds the present moment.
struct Window {
    /// Its number since the epoch.
    slot: u64,
    /// Now, in ms since the epoch.
    now: u64,
    /// When it ends, in ms since the epoch.
    ends: u64,
}

impl Window {
    fn now(length: Duration) -> Self {
        let length_ms = length.as_millis().max(1) as u64;
        let now = chrono::Utc::now().timestamp_millis() as u64;
        let slot = now / length_ms;
        Self {
            slot,
            now,
            ends: (slot + 1) * length_ms,
        }
    }
}

/// The Redis counter of `key` in window `slot`.
fn redis_key(namespace: &str, key: &str, slot: u64) -> String {
    format!("{namespace}:ratelimit:{key}:{slot}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_limiter_allows_up_to_the_limit() {
        let limiter = RateLimiter::in_memory();
        let window = Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limiter.hit("k", 3, window).await, Decision::Allowed);
        }
        match limiter.hit("k", 3, window).await {
            Decision::Limited { retry_after } => assert!(retry_after <= window),
            Decision::Allowed => panic!("fourth attempt allowed"),
        }
        assert_eq!(limiter.hit("other", 3, window).await, Decision::Allowed);
        assert_eq!(limiter.used("k", window).await, 4);
        limiter.reset("k", window).await.unwrap();
        assert_eq!(limiter.used("k", window).await, 0);
        assert_eq!(limiter.hit("k", 3, window).await, Decision::Allowed);
    }

    #[tokio::test]
    async fn pruning_many_short_lived_keys_keeps_the_hourly_counters() {
        let limiter = RateLimiter::in_memory();
        let hour = Duration::from_secs(3600);
        for _ in 0..3 {
            limiter.hit("hourly", 3, hour).await;
        }
        // More than the pruning threshold of per-second keys.
        for i in 0..100_100 {
            limiter
                .hit(&format!("k{i}"), 10, Duration::from_secs(1))
                .await;
        }
        assert!(
            matches!(
                limiter.hit("hourly", 3, hour).await,
                Decision::Limited { .. }
            ),
            "the hourly counter was forgotten"
        );
    }
}
