//! Access tokens: HS256 JWTs naming their signing key (`kid`), short-lived, carrying `sub`,
//! `role`, `jti`, `exp`, `iat`, `iss` and `aud`, all checked on every request, and `iat_ms`
//! and `sid` (the sign-in). Only HS256 is accepted (so `alg: none` and algorithm confusion are
//! refused).

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use super::keys::{self, ActiveKey, KeySource, LEEWAY_SECS, RELOAD_EVERY};
use crate::{config::Settings, db::Db, domain::Role};

/// Why a token was refused; the API words its 401 from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Well-formed and signed by us, but past `exp`.
    #[error("the access token has expired")]
    Expired,
    /// Anything else: bad signature, wrong algorithm, issuer or audience, malformed.
    #[error("the access token is invalid")]
    Invalid,
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The user's role when the token was issued.
    pub role: Role,
    /// A unique id for this token.
    pub jti: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time, seconds since the epoch.
    pub iat: i64,
    /// Issue time in milliseconds: a password reset refuses tokens issued before it, also
    /// those from earlier in the same second. (Absent in tokens issued before it existed.)
    #[serde(default)]
    pub iat_ms: Option<i64>,
    /// The sign-in (refresh-token family) the token was issued for, so a password change
    /// can keep the device that made it signed in.
    #[serde(default)]
    pub sid: Option<String>,
    /// Who issued it (`JWT_ISSUER`).
    pub iss: String,
    /// Who it is for (`JWT_AUDIENCE`).
    pub aud: String,
}

/// Signs and checks access tokens with the keys in force ([`super::keys`]): the newest
/// signs and names itself in the token's `kid` header; a token is checked with the key its
/// `kid` names (one without a `kid`, issued before keys rotated, with the environment's).
/// The keys are read again every [`RELOAD_EVERY`], and at once when a token names a stored
/// key this process has not seen (one rotated in by another process).
#[derive(Clone)]
pub struct TokenKeys {
    settings: Arc<Settings>,
    db: Option<Db>,
    ring: Arc<RwLock<Arc<Ring>>>,
    reloading: Arc<tokio::sync::Mutex<()>>,
    validation: Validation,
}

/// The keys in force as last read.
struct Ring {
    keys: Vec<ActiveKey>,
    read_at: Instant,
}

impl TokenKeys {
    /// The keys in force, read from `db` (stored keys) and settings (the environment's);
    /// without `db`, the environment's only.
    pub async fn load(settings: Arc<Settings>, db: Option<Db>) -> anyhow::Result<Self> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.jwt_issuer]);
        validation.set_audience(&[&settings.jwt_audience]);
        validation.set_required_spec_claims(&["sub", "exp", "iat", "iss", "aud", "jti"]);
        validation.leeway = LEEWAY_SECS;
        let keys = match &db {
            Some(db) => keys::list(db, &settings).await?,
            None => keys::active(&settings, &[], crate::db::now_ms()),
        };
        Ok(Self {
            ring: Arc::new(RwLock::new(Arc::new(Ring {
                keys,
                read_at: Instant::now(),
            }))),
            settings,
            db,
            reloading: Arc::default(),
            validation,
        })
    }

    /// How long an access token lives.
    pub fn ttl(&self) -> Duration {
        self.settings.access_token_ttl
    }

    /// The keys as last read.
    fn ring(&self) -> Arc<Ring> {
        self.ring
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads the keys again when the last read is older than `max_age` (one reader at a
    /// time; the others wait for its read). A failed read keeps the keys it had and
    /// is tried again after the same age.
    async fn refresh(&self, max_age: Duration) -> Arc<Ring> {
        let ring = self.ring();
        let Some(db) = &self.db else { return ring };
        if ring.read_at.elapsed() < max_age {
            return ring;
        }
        let _guard = self.reloading.lock().await;
        let ring = self.ring();
        if ring.read_at.elapsed() < max_age {
            return ring;
        }
        let keys = match keys::list(db, &self.settings).await {
            Ok(keys) => keys,
            Err(err) => {
                tracing::warn!(error = %err, "signing keys not read again; using the last read");
                ring.keys.clone()
            }
        };
        let fresh = Arc::new(Ring {
            keys,
            read_at: Instant::now(),
        });
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        fresh
    }

    /// Reads the keys again now (after this process rotated or removed one).
    pub async fn reload(&self) {
        self.refresh(Duration::ZERO).await;
    }

    /// Issues an access token for a user's sign-in `sid`, signed by the newest key.
    pub async fn issue(&self, user_id: &str, role: Role, sid: &str) -> anyhow::Result<String> {
        let ring = self.refresh(RELOAD_EVERY).await;
        let signer = ring
            .keys
            .iter()
            .find(|k| k.signing)
            .ok_or_else(|| anyhow::anyhow!("no signing key in force"))?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let now = now_ms.div_euclid(1000);
        let claims = Claims {
            sub: user_id.to_owned(),
            role,
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            iat_ms: Some(now_ms),
            sid: Some(sid.to_owned()),
            exp: now + self.settings.access_token_ttl.as_secs() as i64,
            iss: self.settings.jwt_issuer.clone(),
            aud: self.settings.jwt_audience.clone(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(signer.kid.clone());
        Ok(jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(&signer.secret),
        )?)
    }

    /// When the token was issued, in milliseconds (the start of its second for tokens that
    /// carry no `iat_ms`, which errs on refusing them).
    pub fn issued_at_ms(claims: &Claims) -> i64 {
        claims.iat_ms.unwrap_or(claims.iat * 1000)
    }

    /// Checks signature (with the key the token names), algorithm, expiry, issuer and
    /// audience.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let kid = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid)?
            .kid;
        let ring = self.refresh(RELOAD_EVERY).await;
        if let Some(outcome) = self.check(&ring, kid.as_deref(), token) {
            return outcome;
        }
        // A key rotated in elsewhere since the last read: one look by id (a made-up kid costs
        // that look and no more), then the keys are read again.
        if let (Some(kid), Some(db)) = (&kid, &self.db)
            && crate::db::signing_keys::exists(db, kid)
                .await
                .unwrap_or(false)
        {
            let ring = self.refresh(Duration::ZERO).await;
            if let Some(outcome) = self.check(&ring, Some(kid), token) {
                return outcome;
            }
        }
        Err(TokenError::Invalid)
    }

    /// `token` checked with the keys of `ring` its `kid` names (the environment's when it
    /// names none); `None` when `ring` has no such key.
    fn check(
        &self,
        ring: &Ring,
        kid: Option<&str>,
        token: &str,
    ) -> Option<Result<Claims, TokenError>> {
        let now = crate::db::now_ms();
        let mut named = ring
            .keys
            .iter()
            .filter(|k| match kid {
                Some(kid) => k.kid == kid,
                None => k.source == KeySource::Environment,
            })
            .peekable();
        named.peek()?;
        let mut outcome = Err(TokenError::Invalid);
        for key in named {
            // Read up to RELOAD_EVERY ago: a key's window may have closed since.
            if key.verifies_until.is_some_and(|until| until <= now) {
                continue;
            }
            let decoded = jsonwebtoken::decode::<Claims>(
                token,
                &DecodingKey::from_secret(&key.secret),
                &self.validation,
            );
            match decoded {
                Ok(data) => return Some(Ok(data.claims)),
                Err(err) if *err.kind() == ErrorKind::ExpiredSignature => {
                    outcome = Err(TokenError::Expired)
                }
                Err(_) => {}
            }
        }
        Some(outcome)
    }
}
