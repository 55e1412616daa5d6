//! The provider's rate limits, shared by every worker replica: a request first reserves its
//! turn in its model's request bucket and, for a chat, its estimated tokens in the model's token
//! bucket; once answered, the estimate is settled against the tokens billed. A `429` (or a
//! `503` with `Retry-After`) pauses the model for every replica, not only the one that met it.

use std::time::Duration;

use tend_shared::{
    config::ModelLimits,
    jobs::JobError,
    throttle::{Rate, Reservation, Throttle},
};

/// Longest a job waits for its turns (requests and tokens together); past it the attempt ends,
/// counted as an attempt, and the job is retried after the wait (it gives its slot back rather
/// than hold it idle).
const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// The share of a provider's limit Tend paces at: requests spaced exactly at the limit meet a
/// provider's window with timer and network jitter, and one request too many in a minute is a
/// `429` and a pause (measured: 2 in 117 at exactly 60 a minute, 0 at 97.5%).
const HEADROOM: f64 = 0.975;
/// How long a `429` without `Retry-After` pauses its model.
const DEFAULT_PAUSE: Duration = Duration::from_secs(5);

/// The shared buckets and the limits they enforce.
#[derive(Clone)]
pub struct ProviderLimits {
    throttle: Throttle,
    limits: ModelLimits,
}

/// A turn taken in a model's token bucket, to settle once the tokens billed are known.
#[derive(Debug)]
pub struct TokenTurn {
    model: String,
    rate: Rate,
    estimated: u64,
}

impl ProviderLimits {
    /// Limits enforced through `throttle` (Redis-shared, or this process's).
    pub fn new(throttle: Throttle, limits: ModelLimits) -> Self {
        Self { throttle, limits }
    }

    /// Waits for a turn to call `model` (and, for `tokens`, its token budget). Waiting longer
    /// than a minute in all ends the attempt (an attempt, retried after the wait).
    pub async fn admit(
        &self,
        model: &str,
        tokens: Option<u64>,
    ) -> Result<Option<TokenTurn>, JobError> {
        let deadline = tokio::time::Instant::now() + LONGEST_WAIT;
        let limit = self.limits.of(model);
        let requests = Rate::per_minute(limit.requests_per_minute).scaled(HEADROOM);
        self.wait_for(&requests_key(model), model, requests, 1.0, deadline)
            .await?;
        let (Some(per_minute), Some(estimated)) = (limit.tokens_per_minute, tokens) else {
            return Ok(None);
        };
        // A provider lets a whole minute's tokens through after a quiet spell.
        let rate = Rate {
            per_minute: per_minute as f64,
            burst: per_minute as f64,
        }
        .scaled(HEADROOM);
        // A request larger than the bucket waits for no more than a full bucket; the rest is
        // charged after it (the provider counts it against the next minute the same way).
        let now = (estimated as f64).min(rate.burst);
        let turn = self
            .wait_for(&tokens_key(model), model, rate, now, deadline)
            .await;
        if let Err(err) = turn {
            // The request's turn goes back: no request is sent.
            self.give_back(&requests_key(model), requests, 1.0).await;
            return Err(err);
        }
        self.give_back(&tokens_key(model), rate, now - estimated as f64)
            .await;
        Ok(Some(TokenTurn {
            model: model.to_owned(),
            rate,
            estimated,
        }))
    }

    /// Settles a token turn with the tokens the provider billed.
    pub async fn settle(&self, turn: TokenTurn, billed: u64) {
        let change = billed as f64 - turn.estimated as f64;
        if let Err(err) = self
            .throttle
            .adjust(&tokens_key(&turn.model), turn.rate, change)
            .await
        {
            tracing::warn!(error = %err, "token budget not settled");
        }
    }

    /// Pauses `model` for every replica: the provider asked us to wait `retry_after`.
    pub async fn pause(&self, model: &str, retry_after: Option<Duration>) {
        let length = retry_after.unwrap_or(DEFAULT_PAUSE);
        metrics::counter!("tend_provider_pauses_total", "model" => model.to_owned()).increment(1);
        for key in [requests_key(model), tokens_key(model)] {
            if let Err(err) = self.throttle.pause(&key, length).await {
                tracing::warn!(error = %err, "provider pause not shared");
            }
        }
    }

    /// Charges `cost` units back to `key` (negative: more), saying so if it cannot.
    async fn give_back(&self, key: &str, rate: Rate, cost: f64) {
        if cost == 0.0 {
            return;
        }
        if let Err(err) = self.throttle.adjust(key, rate, -cost).await {
            tracing::warn!(error = %err, "rate budget not adjusted");
        }
    }

    async fn wait_for(
        &self,
        key: &str,
        model: &str,
        rate: Rate,
        cost: f64,
        deadline: tokio::time::Instant,
    ) -> Result<(), JobError> {
        let started = tokio::time::Instant::now();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.throttle.reserve(key, rate, cost, left).await {
                Ok(Reservation::Due(wait)) => {
                    tokio::time::sleep(wait).await;
                    // A pause that began while this turn waited voids it (and its units go
                    // back): after the pause the waiters take new turns, spaced again,
                    // instead of all going at its end.
                    if wait.is_zero() || !self.waited_out_pause(key, deadline).await {
                        break;
                    }
                    self.give_back(key, rate, cost).await;
                }
                Ok(Reservation::Paused(wait)) if wait <= left => tokio::time::sleep(wait).await,
                Ok(Reservation::Paused(wait) | Reservation::TooFar(wait)) => {
                    return Err(JobError::RetryAfter(
                        format!(
                            "the provider's rate limit for {model} is reached (shared by every \
                             worker); waiting"
                        ),
                        wait,
                    ));
                }
                Err(err) => {
                    // Redis is the queue too: if it is away, the limit is the least of it.
                    tracing::warn!(error = %err, "rate limit not checked");
                    break;
                }
            }
        }
        metrics::histogram!("tend_provider_throttle_wait_seconds", "model" => model.to_owned())
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }
}

impl ProviderLimits {
    /// Sleeps through a pause of `key` (until `deadline` at most), if one holds it now;
    /// whether one did.
    async fn waited_out_pause(&self, key: &str, deadline: tokio::time::Instant) -> bool {
        match self.throttle.paused_for(key).await {
            Ok(left) if !left.is_zero() => {
                let until = (tokio::time::Instant::now() + left).min(deadline);
                tokio::time::sleep_until(until).await;
                true
            }
            Ok(_) => false,
            Err(err) => {
                tracing::warn!(error = %err, "pause not checked");
                false
            }
        }
    }
}

fn requests_key(model: &str) -> String {
    format!("provider:{model}:requests")
}

fn tokens_key(model: &str) -> String {
    format!("provider:{model}:tokens")
}
