//! Request limits (sign-in attempts, mails, an account's hourly budgets): `limit` per `window`
//! as a token bucket ([`crate::throttle`], GCRA) that every API replica shares through Redis,
//! or in this process in the embedded mode. A key may spend its whole `limit` at once; after
//! that one unit comes back every `window / limit`, so a refused caller is told to retry in
//! seconds, not at the end of a fixed window, and no burst of twice the limit fits around a
//! window's edge.

use std::time::Duration;

use crate::throttle::{Rate, Reservation, Throttle};

/// Longest a request waits for the shared buckets before it is let through.
const REDIS_TIMEOUT: Duration = Duration::from_millis(300);

/// The verdict on one more attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allowed,
    /// Over the limit; try again after this long (the `Retry-After` header).
    Limited { retry_after: Duration },
}

/// Limits attempts per key.
#[derive(Clone)]
pub struct RateLimiter {
    buckets: Throttle,
}

impl RateLimiter {
    /// A limiter over `buckets` (the transport's: Redis, or this process).
    pub fn new(buckets: Throttle) -> Self {
        Self { buckets }
    }

    /// An in-process limiter.
    pub fn in_memory() -> Self {
        Self::new(Throttle::in_memory())
    }

    /// Spends one attempt of `key` if it is within `limit` per `window`; a refused attempt
    /// spends nothing. If Redis cannot be reached the attempt is allowed (and logged): an
    /// outage of the limiter must not lock every user out.
    pub async fn hit(&self, key: &str, limit: u32, window: Duration) -> Decision {
        if limit == 0 {
            // Nothing allowed at all.
            return Decision::Limited {
                retry_after: window.max(Duration::from_secs(1)),
            };
        }
        let bucket = bucket(key);
        let reserve = self
            .buckets
            .reserve(&bucket, rate(limit, window), 1.0, Duration::ZERO);
        match tokio::time::timeout(REDIS_TIMEOUT, reserve).await {
            Ok(Ok(Reservation::Due(_))) => Decision::Allowed,
            Ok(Ok(Reservation::TooFar(wait) | Reservation::Paused(wait))) => Decision::Limited {
                retry_after: wait.max(Duration::from_secs(1)),
            },
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "rate limiter unavailable; allowing");
                Decision::Allowed
            }
            Err(_) => {
                tracing::warn!(error = "timed out", "rate limiter unavailable; allowing");
                Decision::Allowed
            }
        }
    }

    /// What `key` has in use of its `limit` per `window`, and how long until all of it is
    /// back (admins read budgets with it). An unreachable Redis reads as nothing in use.
    pub async fn used(&self, key: &str, limit: u32, window: Duration) -> (u32, Duration) {
        let bucket = bucket(key);
        let backlog = self.buckets.backlog(&bucket);
        let ahead = match tokio::time::timeout(REDIS_TIMEOUT, backlog).await {
            Ok(Ok(ahead)) => ahead,
            _ => Duration::ZERO,
        };
        let interval = window.as_secs_f64() / f64::from(limit.max(1));
        let used = (ahead.as_secs_f64() / interval).ceil() as u32;
        (used.min(limit), ahead)
    }

    /// Gives `key` its whole limit back (an admin's reset).
    pub async fn reset(&self, key: &str) -> anyhow::Result<()> {
        self.buckets.forget(&bucket(key)).await?;
        Ok(())
    }
}

/// `limit` per `window`, all of it at once after a quiet spell.
fn rate(limit: u32, window: Duration) -> Rate {
    let limit = f64::from(limit.max(1));
    Rate {
        per_minute: limit * 60.0 / window.as_secs_f64().max(0.001),
        burst: limit,
    }
}

/// The bucket of `key`, apart from the provider's.
fn bucket(key: &str) -> String {
    format!("limit:{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_spends_its_limit_at_once_then_one_unit_comes_back_per_interval() {
        let limiter = RateLimiter::in_memory();
        let window = Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limiter.hit("k", 3, window).await, Decision::Allowed);
        }
        match limiter.hit("k", 3, window).await {
            // One unit comes back every 20 minutes.
            Decision::Limited { retry_after } => {
                assert!(retry_after <= Duration::from_secs(1200), "{retry_after:?}");
                assert!(retry_after > Duration::from_secs(1190), "{retry_after:?}");
            }
            Decision::Allowed => panic!("fourth attempt allowed"),
        }
        assert_eq!(limiter.hit("other", 3, window).await, Decision::Allowed);
        let (used, back_in) = limiter.used("k", 3, window).await;
        assert_eq!(used, 3, "a refused attempt spends nothing");
        assert!(back_in > Duration::from_secs(3590), "{back_in:?}");
        limiter.reset("k").await.unwrap();
        assert_eq!(limiter.used("k", 3, window).await, (0, Duration::ZERO));
        assert_eq!(limiter.hit("k", 3, window).await, Decision::Allowed);
    }

    #[tokio::test]
    async fn many_short_lived_keys_do_not_push_out_a_busy_one() {
        let limiter = RateLimiter::in_memory();
        let hour = Duration::from_secs(3600);
        for _ in 0..3 {
            limiter.hit("hourly", 3, hour).await;
        }
        // More than the in-memory bound of keys that are idle again at once.
        for i in 0..100_100 {
            limiter
                .hit(&format!("k{i}"), 1000, Duration::from_millis(1))
                .await;
        }
        assert!(
            matches!(
                limiter.hit("hourly", 3, hour).await,
                Decision::Limited { .. }
            ),
            "the hourly bucket was forgotten"
        );
    }
}
