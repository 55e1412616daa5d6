//! The `signing_keys` table: the keys that sign access tokens, newest first. Only
//! [`crate::auth::keys`] reads them; what admins see of a key ([`crate::auth::keys::ActiveKey`]
//! and its views) never holds the secret.

use sqlx::AnyConnection;

use super::Db;

/// A stored signing key.
#[derive(Clone, sqlx::FromRow)]
pub struct StoredKey {
    /// The key id tokens carry in their `kid` header.
    pub kid: String,
    /// The HMAC key, base64.
    pub secret: String,
    /// When it was made (ms since the epoch); the newest key signs.
    pub created_at: i64,
    /// Who made it: `command`, `admin:<user id>` or `schedule`.
    pub created_by: String,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("created_by", &self.created_by)
            .finish_non_exhaustive()
    }
}

/// Every stored key, newest first (in a rotation's transaction, the new key too).
pub async fn all(conn: impl sqlx::AnyExecutor<'_>) -> sqlx::Result<Vec<StoredKey>> {
    sqlx::query_as(
        "SELECT kid, secret, created_at, created_by FROM signing_keys \
         ORDER BY created_at DESC, kid DESC",
    )
    .fetch_all(conn)
    .await
}

/// Whether a key with id `kid` is stored.
pub async fn exists(db: &Db, kid: &str) -> sqlx::Result<bool> {
    let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE kid = $1")
        .bind(kid)
        .fetch_one(db)
        .await?;
    Ok(found > 0)
}

/// Stores a new key; `false` when `rotation` already made one (a retried scheduled run).
pub async fn insert(
    conn: &mut AnyConnection,
    key: &StoredKey,
    rotation: Option<&str>,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO signing_keys (kid, secret, created_at, created_by, rotation) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(&key.kid)
    .bind(&key.secret)
    .bind(key.created_at)
    .bind(&key.created_by)
    .bind(rotation)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes one key; `false` when there was none.
pub async fn delete(conn: &mut AnyConnection, kid: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
        .bind(kid)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}
