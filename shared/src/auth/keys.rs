//! The keys that sign access tokens, and their rotation.
//!
//! A fresh installation signs with `JWT_SECRET`. Once a key is rotated in (by
//! `tend-api signing-keys rotate`, an admin, or the `rotate_signing_key` schedule), keys are
//! stored in the database so every process of an installation shares them, and the newest
//! signs. A key stops signing when a newer one arrives and keeps verifying for one
//! access-token lifetime after that (plus [`RELOAD_EVERY`], the time a process may still
//! sign with it before it has read the new key, and the clock leeway); then it is ignored,
//! and deleted at the next rotation. `JWT_SECRET` and `JWT_SECRET_PREVIOUS` follow the same
//! rule, counted from the first stored key. An admin may remove any key but the one that
//! signs: its tokens are refused at once by the process that removed it, by the others within
//! [`RELOAD_EVERY`].

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use rand::RngCore;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::{
    config::Settings,
    db::{
        self, Db,
        audit::{self, AuditAction, Origin},
        signing_keys::StoredKey,
    },
};

/// How often a process reads the stored keys again: a key rotated elsewhere signs here, and
/// a key removed elsewhere stops verifying here, within this.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);
/// Clock leeway when checking `exp`, in seconds.
pub const LEEWAY_SECS: u64 = 5;

/// Where a key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// Stored in the database by a rotation.
    Stored,
    /// `JWT_SECRET` or `JWT_SECRET_PREVIOUS`.
    Environment,
}

impl KeySource {
    /// Its name, as listings show it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Stored => "stored",
            KeySource::Environment => "environment",
        }
    }
}

/// A key in force: what signs or verifies, and until when.
#[derive(Clone)]
pub struct ActiveKey {
    /// The `kid` its tokens carry.
    pub kid: String,
    /// The HMAC key.
    pub(crate) secret: Vec<u8>,
    /// Where it comes from.
    pub source: KeySource,
    /// When it was made (stored keys only), ms since the epoch.
    pub created_at: Option<i64>,
    /// Who made it (stored keys only).
    pub created_by: Option<String>,
    /// Whether it signs new tokens.
    pub signing: bool,
    /// When it stops verifying (ms since the epoch); `None` while nothing replaced it.
    pub verifies_until: Option<i64>,
}

impl std::fmt::Debug for ActiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveKey")
            .field("kid", &self.kid)
            .field("source", &self.source)
            .field("signing", &self.signing)
            .field("verifies_until", &self.verifies_until)
            .finish_non_exhaustive()
    }
}

/// How long a replaced key keeps verifying, in ms: a token it signed at the last moment (up
/// to [`RELOAD_EVERY`] after its replacement, in a process that had not reloaded yet) lives
/// one access-token lifetime, plus the leeway.
fn overlap_ms(settings: &Settings) -> i64 {
    let overlap = RELOAD_EVERY + settings.access_token_ttl + Duration::from_secs(LEEWAY_SECS);
    overlap.as_millis() as i64
}

/// The `kid` of an environment secret: a short digest, which names it without revealing it.
pub fn environment_kid(secret: &str) -> String {
    let digest = hex::encode(Sha256::digest(secret.as_bytes()));
    format!("env-{}", &digest[..12])
}

/// The keys in force at `now` (ms), the signing one first: the stored keys (newest first),
/// then the environment's.
pub fn active(settings: &Settings, stored: &[StoredKey], now: i64) -> Vec<ActiveKey> {
    let overlap = overlap_ms(settings);
    let mut keys = Vec::new();
    for (i, key) in stored.iter().enumerate() {
        let verifies_until = (i > 0).then(|| stored[i - 1].created_at + overlap);
        let Ok(secret) = STANDARD.decode(&key.secret) else {
            tracing::error!(kid = %key.kid, "stored signing key is not base64; ignored");
            continue;
        };
        keys.push(ActiveKey {
            kid: key.kid.clone(),
            secret,
            source: KeySource::Stored,
            created_at: Some(key.created_at),
            created_by: Some(key.created_by.clone()),
            signing: i == 0,
            verifies_until,
        });
    }
    // The environment's keys verify until the first stored key has replaced them.
    let environment_until = stored.last().map(|oldest| oldest.created_at + overlap);
    let secrets = std::iter::once(&settings.jwt_secret).chain(&settings.jwt_secret_previous);
    for (i, secret) in secrets.enumerate() {
        let secret = secret.expose_secret();
        keys.push(ActiveKey {
            kid: environment_kid(secret),
            secret: secret.as_bytes().to_vec(),
            source: KeySource::Environment,
            created_at: None,
            created_by: None,
            signing: i == 0 && stored.is_empty(),
            verifies_until: environment_until,
        });
    }
    keys.retain(|key| key.signing || key.verifies_until.is_none_or(|until| until > now));
    keys
}

/// Every key in force now, as read from the database.
pub async fn list(db: &Db, settings: &Settings) -> sqlx::Result<Vec<ActiveKey>> {
    let stored = db::signing_keys::all(db).await?;
    Ok(active(settings, &stored, db::now_ms()))
}

/// Who rotates, for the key's `created_by` and the audit log.
#[derive(Debug, Clone, Copy)]
pub enum RotatedBy<'a> {
    /// `tend-api signing-keys rotate`.
    Command,
    /// An admin through the API.
    Admin {
        /// The admin's user id.
        user_id: &'a str,
        /// Where the request came from.
        origin: &'a Origin,
    },
    /// The `rotate_signing_key` schedule's run for one tick.
    Schedule {
        /// The tick, ms since the epoch.
        tick: i64,
    },
}

impl RotatedBy<'_> {
    fn created_by(&self) -> String {
        match self {
            RotatedBy::Command => "command".to_owned(),
            RotatedBy::Admin { user_id, .. } => format!("admin:{user_id}"),
            RotatedBy::Schedule { .. } => "schedule".to_owned(),
        }
    }
}

/// Makes a new key, which signs from now on, deletes stored keys that no longer verify
/// anything, and records the rotation in the audit log, in one transaction. Answers the new
/// key as it is in force. A scheduled rotation happens once per tick: a second run for the
/// same tick makes no key and answers `None`.
pub async fn rotate(
    db: &Db,
    settings: &Settings,
    by: RotatedBy<'_>,
) -> sqlx::Result<Option<ActiveKey>> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let now = db::now_ms();
    let key = StoredKey {
        kid: db::new_id().simple().to_string(),
        secret: STANDARD.encode(secret),
        created_at: now,
        created_by: by.created_by(),
    };
    let rotation = match by {
        RotatedBy::Schedule { tick } => Some(format!("schedule:{tick}")),
        _ => None,
    };
    let mut tx = db.begin().await?;
    if !db::signing_keys::insert(&mut tx, &key, rotation.as_deref()).await? {
        return Ok(None);
    }
    let stored = db::signing_keys::all(&mut *tx).await?;
    let in_force = active(settings, &stored, now);
    for old in stored
        .iter()
        .filter(|k| !in_force.iter().any(|f| f.kid == k.kid))
    {
        db::signing_keys::delete(&mut tx, &old.kid).await?;
    }
    let (user_id, origin) = match by {
        RotatedBy::Admin { user_id, origin } => (Some(user_id), origin.clone()),
        _ => (None, Origin::default()),
    };
    let detail = serde_json::json!({"kid": key.kid, "by": key.created_by});
    audit::record(
        &mut tx,
        AuditAction::SigningKeyRotated,
        user_id,
        &origin,
        Some(detail),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(kid = %key.kid, by = %key.created_by, "signing key rotated");
    Ok(in_force.into_iter().find(|k| k.kid == key.kid))
}

/// Why a key was not removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RemoveRefused {
    /// No stored key has that id.
    #[error("no stored signing key has that id")]
    NotFound,
    /// It is the key that signs: rotate first.
    #[error("the key signs new tokens; rotate first, then remove it")]
    Signing,
    /// It is `JWT_SECRET` or in `JWT_SECRET_PREVIOUS`: it goes with the setting.
    #[error("the key comes from JWT_SECRET or JWT_SECRET_PREVIOUS; remove it there")]
    Environment,
}

/// Removes a stored key at once (a leaked key): tokens it signed are refused from now on.
/// `user_id` is the admin who removes it (`None`: the command line).
pub async fn remove(
    db: &Db,
    settings: &Settings,
    kid: &str,
    user_id: Option<&str>,
    origin: &Origin,
) -> sqlx::Result<Result<(), RemoveRefused>> {
    let mut tx = db.begin().await?;
    let stored = db::signing_keys::all(&mut *tx).await?;
    let keys = active(settings, &stored, db::now_ms());
    let found = keys.iter().find(|k| k.kid == kid);
    if found.is_some_and(|k| k.source == KeySource::Environment) {
        return Ok(Err(RemoveRefused::Environment));
    }
    if found.is_some_and(|k| k.signing) {
        return Ok(Err(RemoveRefused::Signing));
    }
    if !db::signing_keys::delete(&mut tx, kid).await? {
        return Ok(Err(RemoveRefused::NotFound));
    }
    let detail = serde_json::json!({"kid": kid});
    audit::record(
        &mut tx,
        AuditAction::SigningKeyRemoved,
        user_id,
        origin,
        Some(detail),
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(kid, "signing key removed; its tokens are refused");
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(kid: &str, created_at: i64) -> StoredKey {
        StoredKey {
            kid: kid.to_owned(),
            secret: STANDARD.encode(kid),
            created_at,
            created_by: "command".to_owned(),
        }
    }

    fn kids(keys: &[ActiveKey]) -> Vec<(&str, bool)> {
        keys.iter().map(|k| (k.kid.as_str(), k.signing)).collect()
    }

    #[test]
    fn a_replaced_key_verifies_for_one_token_lifetime_then_is_gone() {
        let dir = std::env::temp_dir().join(format!("tend-keys-{}", std::process::id()));
        let settings = Settings::from_lookup(|k| match k {
            "DATA_DIR" => Some(dir.display().to_string()),
            "JWT_SECRET" => Some("the-environment-secret".into()),
            "JWT_SECRET_PREVIOUS" => Some("an-older-secret, ".into()),
            "ACCESS_TOKEN_TTL_SECS" => Some("900".into()),
            _ => None,
        })
        .unwrap();
        let env = environment_kid("the-environment-secret");
        let older = environment_kid("an-older-secret");
        // Nothing stored: JWT_SECRET signs, the previous one verifies, neither expires.
        let keys = active(&settings, &[], 0);
        assert_eq!(kids(&keys), [(env.as_str(), true), (older.as_str(), false)]);
        assert!(keys.iter().all(|k| k.verifies_until.is_none()));

        // Two rotations: the newest signs; each replaced key verifies for 900 s (the token
        // lifetime) + 10 s (the reload interval) + 5 s (leeway) after its replacement.
        let overlap = (900 + 10 + 5) * 1000;
        let ring = [stored("b", 1_200_000), stored("a", 1_000_000)];
        let at = |now| kids(&active(&settings, &ring, now)).len();
        let keys = active(&settings, &ring, 1_200_000);
        assert_eq!(keys[0].kid, "b");
        assert!(keys[0].signing && keys[0].verifies_until.is_none());
        assert_eq!(keys[1].verifies_until, Some(1_200_000 + overlap));
        assert_eq!(keys[2].verifies_until, Some(1_000_000 + overlap));
        assert_eq!(at(1_000_000 + overlap - 1), 4);
        assert_eq!(
            at(1_000_000 + overlap),
            2,
            "the environment's keys are gone"
        );
        assert_eq!(at(1_200_000 + overlap), 1, "only the signing key is left");
        assert_eq!(at(i64::MAX), 1, "the signing key never expires");
    }
}
