//! What every handler may use, built once at start and shared (cheap clones).

use std::sync::Arc;

use tend_shared::{
    Settings,
    auth::{
        jwt::{Claims, TokenError, TokenKeys},
        password::Hasher,
    },
    db::{self, Db, users::User},
    jobs::JobTx,
    queue::{Relay, Transport},
    ratelimit::RateLimiter,
    storage::ObjectStore,
};

use crate::error::{ApiError, ApiResult};

/// A bearer token the request-limit middleware verified, kept on the request so the
/// operation's guard does not verify it a second time.
#[derive(Clone)]
pub struct VerifiedToken {
    /// The token as sent.
    pub token: String,
    /// Its claims.
    pub claims: Claims,
}

/// The application state handed to every operation through `Data<&AppState>`.
#[derive(Clone)]
pub struct AppState {
    /// The data and job ledger.
    pub db: Db,
    /// All settings.
    pub settings: Arc<Settings>,
    /// Signs and checks access tokens.
    pub keys: TokenKeys,
    /// Hands just-committed jobs to the queue.
    pub relay: Relay,
    /// Login and email-sending limits.
    pub limiter: RateLimiter,
    /// Uploaded audio.
    pub store: ObjectStore,
    /// Live events (`GET /api/v1/events`), and what the API's own changes publish.
    pub events: tend_shared::events::EventBus,
    /// Password hashing, bounded (threads and queue), so bursts have a memory ceiling.
    pub hasher: Hasher,
}

impl AppState {
    /// Builds the state over connected components (reads the signing keys, starts the
    /// hashing threads).
    pub async fn new(
        settings: Arc<Settings>,
        db: Db,
        transport: Transport,
        store: ObjectStore,
    ) -> anyhow::Result<Self> {
        // The transport's buckets: in Redis, shared by every replica, or in this process.
        let limiter = RateLimiter::new(transport.throttle());
        let events = tend_shared::events::EventBus::new(transport.redis_client());
        Ok(Self {
            hasher: Hasher::start(settings.password_hashing)?,
            keys: TokenKeys::load(settings.clone(), Some(db.clone())).await?,
            relay: Relay::new(db.clone(), transport, &settings),
            limiter,
            events,
            store,
            db,
            settings,
        })
    }

    /// The transport (for readiness checks).
    pub fn transport(&self) -> &Transport {
        self.relay.transport()
    }

    /// Begins a transaction that may start jobs; they are handed to the queue when it commits.
    pub async fn begin(&self) -> ApiResult<JobTx> {
        Ok(JobTx::begin(&self.relay).await?)
    }

    /// Removes stored objects before the rows that own them are deleted: if the store is
    /// down, nothing is deleted (503) and the call can be repeated.
    pub async fn delete_objects(&self, keys: &[String]) -> ApiResult<()> {
        for key in keys {
            self.store.delete(key).await.map_err(|e| {
                tracing::error!(error = %format!("{e:#}"), "object store unavailable");
                ApiError::unavailable("The object store is unavailable; nothing was deleted.")
            })?;
        }
        Ok(())
    }

    /// Resolves a bearer token to its live user and the token's claims: checks the token,
    /// then [`AppState::live_account`].
    pub async fn authenticate(&self, token: &str) -> ApiResult<(User, Claims)> {
        let claims = self.keys.verify(token).await.map_err(|err| {
            let detail = match err {
                TokenError::Expired => "The access token has expired.",
                TokenError::Invalid => "The access token is invalid.",
            };
            ApiError::unauthorized("invalid-token", detail)
        })?;
        self.live_account(claims).await
    }

    /// The live user of a verified token's claims: the account still exists, is not
    /// disabled, and the token was not issued before a password reset (to the millisecond).
    pub async fn live_account(&self, claims: Claims) -> ApiResult<(User, Claims)> {
        let user = db::users::find(&self.db, &claims.sub)
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized("invalid-token", "The account no longer exists.")
            })?;
        if user.disabled_at.is_some() {
            return Err(ApiError::unauthorized(
                "account-disabled",
                "This account is disabled by an admin.",
            ));
        }
        if TokenKeys::issued_at_ms(&claims) < user.tokens_valid_after {
            return Err(ApiError::unauthorized(
                "invalid-token",
                "The access token was revoked; sign in again.",
            ));
        }
        Ok((user, claims))
    }
}
