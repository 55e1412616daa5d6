//! Access tokens: HS256 JWTs, short-lived, carrying `sub`, `role`, `jti`, `exp`, `iat`, `iss`
//! and `aud`, all checked on every request, and `iat_ms` and `sid` (the sign-in). Only HS256 is accepted (so `alg: none` and
//! algorithm confusion are refused).

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::{config::Settings, domain::Role};

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

/// Signs and checks access tokens with the configured secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl TokenKeys {
    /// Keys from settings.
    pub fn new(settings: &Settings) -> Self {
        let secret = settings.jwt_secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.jwt_issuer]);
        validation.set_audience(&[&settings.jwt_audience]);
        validation.set_required_spec_claims(&["sub", "exp", "iat", "iss", "aud", "jti"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            ttl: settings.access_token_ttl,
        }
    }

    /// How long an access token lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues an access token for a user's sign-in `sid`.
    pub fn issue(&self, user_id: &str, role: Role, sid: &str) -> anyhow::Result<String> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let now = now_ms.div_euclid(1000);
        let claims = Claims {
            sub: user_id.to_owned(),
            role,
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            iat_ms: Some(now_ms),
            sid: Some(sid.to_owned()),
            exp: now + self.ttl.as_secs() as i64,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// When the token was issued, in milliseconds (the start of its second for tokens that
    /// carry no `iat_ms`, which errs on refusing them).
    pub fn issued_at_ms(claims: &Claims) -> i64 {
        claims.iat_ms.unwrap_or(claims.iat * 1000)
    }

    /// Checks signature, algorithm, expiry, issuer and audience.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}
