//! Token buckets shared by every replica: GCRA (the generic cell rate algorithm) in Redis when
//! the queue is Redis, in this process's memory in embedded mode (one process, so the same
//! thing).
//!
//! A bucket is one number, its theoretical arrival time (TAT): when it would be empty again at
//! its steady rate. A reservation of `cost` units moves it on by `cost` emission intervals and
//! is due once the TAT, less the burst the bucket allows, has come: callers that reserve
//! together are spaced out in the order they asked, each told how long to wait. Redis reads its
//! own clock (`TIME`) inside one script, so replicas with skewed clocks still share one
//! timeline. A bucket can also be paused until an instant (a provider's `429` with
//! `Retry-After`): every replica then waits.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use apalis_redis::ConnectionManager;

/// Longest a reservation waits for Redis before it is given up (and the caller told so).
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Buckets kept in memory before the idle ones are dropped (a limiter keeps one per account
/// and address).
const MEMORY_KEYS: usize = 100_000;

/// A steady rate with a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Units per minute.
    pub per_minute: f64,
    /// Units that may go at once after a quiet spell (at least one).
    pub burst: f64,
}

impl Rate {
    /// `per_minute` units a minute, bursting by a second's worth (at least one unit): a
    /// provider that counts per minute may enforce it over shorter periods.
    pub fn per_minute(per_minute: u64) -> Self {
        let per_minute = per_minute.max(1) as f64;
        Self {
            per_minute,
            burst: (per_minute / 60.0).max(1.0),
        }
    }

    /// The same rate and burst times `share` (a margin under a limit set elsewhere); the burst
    /// stays at least one unit.
    pub fn scaled(self, share: f64) -> Self {
        Self {
            per_minute: self.per_minute * share,
            burst: (self.burst * share).max(1.0),
        }
    }

    /// Milliseconds one unit takes at the steady rate.
    fn interval_ms(&self) -> f64 {
        60_000.0 / self.per_minute
    }

    /// How far ahead of now the TAT may run before a reservation must wait.
    fn tolerance_ms(&self) -> f64 {
        self.interval_ms() * self.burst
    }
}

/// The answer to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved: go after this long (zero: now).
    Due(Duration),
    /// Not reserved: it would have waited this long, past the caller's limit.
    TooFar(Duration),
    /// Not reserved: the bucket is paused this much longer; ask again then.
    Paused(Duration),
}

/// Shared buckets, cheap to clone.
#[derive(Clone)]
pub enum Throttle {
    /// One process: per key, the TAT or the pause's end (ms since the epoch).
    Memory(Arc<Mutex<HashMap<String, f64>>>),
    /// Every replica, through one Redis.
    Redis {
        conn: ConnectionManager,
        namespace: String,
    },
}

/// A script that starts with `now`: Redis's clock in milliseconds (one timeline for every
/// replica, whatever their own clocks say).
macro_rules! script {
    ($body:literal) => {
        concat!(
            "local t = redis.call('TIME')\n",
            "local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000\n",
            $body
        )
    };
}

/// KEYS[1] the bucket, KEYS[2] its pause; ARGV interval, tolerance, cost, longest wait (ms).
/// Returns {1 reserved / 0 too far / 2 paused, wait in ms}.
const RESERVE: &str = script!(
    r"
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return {2, math.ceil(paused - now)} end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[1]) * tonumber(ARGV[3])
local wait = new_tat - tonumber(ARGV[2]) - now
if wait < 0 then wait = 0 end
if wait > tonumber(ARGV[4]) then return {0, math.ceil(wait)} end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {1, math.ceil(wait)}
"
);

/// KEYS[1] the bucket; ARGV interval, cost change (may be negative). Gives back or charges
/// more once the real cost is known; never moves the TAT before now.
const ADJUST: &str = script!(
    r"
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[1]) * tonumber(ARGV[2])
if new_tat <= now then redis.call('DEL', KEYS[1]) return 0 end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return 0
"
);

/// KEYS[1] the bucket. Returns how far its TAT runs ahead of now (ms, 0 when it is idle).
const BACKLOG: &str = script!(
    r"
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then return 0 end
return math.ceil(tat - now)
"
);

/// KEYS[1] the pause; ARGV its length (ms). Only ever lengthens a pause.
const PAUSE: &str = script!(
    r"
local untill = now + tonumber(ARGV[1])
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
if paused >= untill then return 0 end
redis.call('SET', KEYS[1], string.format('%.3f', untill), 'PX', tonumber(ARGV[1]) + 1000)
return 0
"
);

/// A throttle failure: Redis did not answer.
#[derive(Debug, thiserror::Error)]
#[error("the shared rate limiter is unavailable: {0}")]
pub struct Unavailable(String);

impl Throttle {
    /// Buckets in this process only.
    pub fn in_memory() -> Self {
        Throttle::Memory(Arc::default())
    }

    /// Reserves `cost` units of `key` at `rate`, unless that means waiting longer than
    /// `longest` (then nothing is reserved).
    pub async fn reserve(
        &self,
        key: &str,
        rate: Rate,
        cost: f64,
        longest: Duration,
    ) -> Result<Reservation, Unavailable> {
        let longest_ms = longest.as_millis() as f64;
        let (answer, wait_ms) = match self {
            Throttle::Memory(map) => {
                let now = now_ms();
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() > MEMORY_KEYS {
                    // Idle buckets and past pauses hold nothing: every value is an instant.
                    map.retain(|_, until| *until > now);
                }
                let paused = map.get(&pause_key(key)).copied().unwrap_or(0.0);
                if paused > now {
                    (2, paused - now)
                } else {
                    let tat = map.get(key).copied().unwrap_or(0.0).max(now);
                    let new_tat = tat + rate.interval_ms() * cost;
                    let wait = (new_tat - rate.tolerance_ms() - now).max(0.0);
                    if wait > longest_ms {
                        (0, wait)
                    } else {
                        map.insert(key.to_owned(), new_tat);
                        (1, wait)
                    }
                }
            }
            Throttle::Redis { conn, namespace } => {
                let script = redis::Script::new(RESERVE);
                let mut invocation = script.key(bucket_key(namespace, key));
                invocation
                    .key(bucket_key(namespace, &pause_key(key)))
                    .arg(rate.interval_ms())
                    .arg(rate.tolerance_ms())
                    .arg(cost)
                    .arg(longest_ms);
                let mut conn = conn.clone();
                let (answer, wait): (i64, i64) =
                    redis_call(invocation.invoke_async(&mut conn)).await?;
                (answer, wait as f64)
            }
        };
        let wait = Duration::from_millis(wait_ms.ceil() as u64);
        Ok(match answer {
            1 => Reservation::Due(wait),
            2 => Reservation::Paused(wait),
            _ => Reservation::TooFar(wait),
        })
    }

    /// Charges `change` more units to `key` (or gives them back, when negative) once a
    /// reservation's real cost is known.
    pub async fn adjust(&self, key: &str, rate: Rate, change: f64) -> Result<(), Unavailable> {
        match self {
            Throttle::Memory(map) => {
                let now = now_ms();
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                let tat = map.get(key).copied().unwrap_or(0.0).max(now);
                map.insert(key.to_owned(), tat + rate.interval_ms() * change);
                Ok(())
            }
            Throttle::Redis { conn, namespace } => {
                let script = redis::Script::new(ADJUST);
                let mut invocation = script.key(bucket_key(namespace, key));
                invocation.arg(rate.interval_ms()).arg(change);
                let mut conn = conn.clone();
                let _: i64 = redis_call(invocation.invoke_async(&mut conn)).await?;
                Ok(())
            }
        }
    }

    /// How far `key`'s TAT runs ahead of now: the units in use times the rate's interval (zero
    /// when the bucket is full again).
    pub async fn backlog(&self, key: &str) -> Result<Duration, Unavailable> {
        let ahead_ms = match self {
            Throttle::Memory(map) => {
                let map = map.lock().unwrap_or_else(|p| p.into_inner());
                map.get(key).copied().unwrap_or(0.0) - now_ms()
            }
            Throttle::Redis { conn, namespace } => {
                let script = redis::Script::new(BACKLOG);
                let invocation = script.key(bucket_key(namespace, key));
                let mut conn = conn.clone();
                let ahead: i64 = redis_call(invocation.invoke_async(&mut conn)).await?;
                ahead as f64
            }
        };
        Ok(Duration::from_millis(ahead_ms.max(0.0).ceil() as u64))
    }

    /// Empties `key`'s bucket and lifts its pause (an admin's reset).
    pub async fn forget(&self, key: &str) -> Result<(), Unavailable> {
        match self {
            Throttle::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                map.remove(key);
                map.remove(&pause_key(key));
                Ok(())
            }
            Throttle::Redis { conn, namespace } => {
                let mut cmd = redis::cmd("DEL");
                cmd.arg(bucket_key(namespace, key))
                    .arg(bucket_key(namespace, &pause_key(key)));
                let mut conn = conn.clone();
                let _: i64 = redis_call(cmd.query_async(&mut conn)).await?;
                Ok(())
            }
        }
    }

    /// How much longer `key` is paused (zero when it is not).
    pub async fn paused_for(&self, key: &str) -> Result<Duration, Unavailable> {
        let left_ms = match self {
            Throttle::Memory(map) => {
                let map = map.lock().unwrap_or_else(|p| p.into_inner());
                map.get(&pause_key(key)).copied().unwrap_or(0.0) - now_ms()
            }
            Throttle::Redis { conn, namespace } => {
                let mut conn = conn.clone();
                let mut cmd = redis::cmd("PTTL");
                cmd.arg(bucket_key(namespace, &pause_key(key)));
                // The pause key lives a second past the pause (see PAUSE).
                let ttl: i64 = redis_call(cmd.query_async(&mut conn)).await?;
                (ttl - 1000) as f64
            }
        };
        Ok(Duration::from_millis(left_ms.max(0.0).ceil() as u64))
    }

    /// Holds every reservation of `key` for `length` from now (or longer, if it is held so
    /// already).
    pub async fn pause(&self, key: &str, length: Duration) -> Result<(), Unavailable> {
        match self {
            Throttle::Memory(map) => {
                let until = now_ms() + length.as_millis() as f64;
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                let entry = map.entry(pause_key(key)).or_insert(0.0);
                *entry = entry.max(until);
                Ok(())
            }
            Throttle::Redis { conn, namespace } => {
                let script = redis::Script::new(PAUSE);
                let mut invocation = script.key(bucket_key(namespace, &pause_key(key)));
                invocation.arg(length.as_millis() as u64);
                let mut conn = conn.clone();
                let _: i64 = redis_call(invocation.invoke_async(&mut conn)).await?;
                Ok(())
            }
        }
    }
}

/// A Redis call with [`REDIS_TIMEOUT`].
async fn redis_call<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, Unavailable> {
    match tokio::time::timeout(REDIS_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(Unavailable(err.to_string())),
        Err(_) => Err(Unavailable("timed out".into())),
    }
}

fn pause_key(key: &str) -> String {
    format!("{key}:paused")
}

fn bucket_key(namespace: &str, key: &str) -> String {
    format!("{namespace}:throttle:{key}")
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_are_spaced_at_the_rate_after_the_burst() {
        let throttle = Throttle::in_memory();
        let rate = Rate::per_minute(60); // one a second, a burst of one
        let long = Duration::from_secs(60);
        let mut waits = Vec::new();
        for _ in 0..4 {
            match throttle.reserve("m", rate, 1.0, long).await.unwrap() {
                Reservation::Due(wait) => waits.push(wait.as_millis() as i64),
                other => panic!("{other:?}"),
            }
        }
        // The first goes now (the burst), then one a second.
        for (i, wait) in waits.iter().enumerate() {
            let expected = i as i64 * 1000;
            assert!((wait - expected).abs() <= 20, "{waits:?}");
        }
        // Too far ahead: nothing reserved.
        let short = Duration::from_millis(500);
        assert!(matches!(
            throttle.reserve("m", rate, 1.0, short).await.unwrap(),
            Reservation::TooFar(_)
        ));
        // A pause holds every reservation.
        throttle
            .pause("other", Duration::from_secs(5))
            .await
            .unwrap();
        match throttle.reserve("other", rate, 1.0, long).await.unwrap() {
            Reservation::Paused(wait) => assert!(wait > Duration::from_secs(4), "{wait:?}"),
            other => panic!("{other:?}"),
        }
    }
}
