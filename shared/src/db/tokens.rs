//! The `refresh_tokens` and `email_tokens` tables. Both store only SHA-256 hashes of tokens.

use sqlx::{AnyConnection, FromRow};

use super::{Db, new_id, now_ms};

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum Rotation {
    /// The token was live; it is now spent. Issue the next one in `family_id`.
    Rotated { user_id: String, family_id: String },
    /// The token had already been spent: someone replayed it. The family is now revoked.
    Reused { user_id: String, family_id: String },
    /// Unknown, expired or revoked.
    Invalid,
}

#[derive(FromRow)]
struct Spent {
    user_id: String,
    family_id: String,
}

#[derive(FromRow)]
struct Known {
    user_id: String,
    family_id: String,
    used_at: Option<i64>,
}

/// Stores a new refresh token hash in `family_id`.
pub async fn insert_refresh(
    conn: &mut AnyConnection,
    user_id: &str,
    family_id: &str,
    token_hash: &str,
    expires_at: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id().to_string())
    .bind(family_id)
    .bind(user_id)
    .bind(token_hash)
    .bind(now_ms())
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Spends a refresh token. Starts with the write, so two concurrent rotations of the same token
/// cannot both succeed (the loser sees it spent: reuse).
pub async fn rotate_refresh(conn: &mut AnyConnection, token_hash: &str) -> sqlx::Result<Rotation> {
    let now = now_ms();
    let spent = sqlx::query_as::<_, Spent>(
        "UPDATE refresh_tokens SET used_at = $2 \
         WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
         RETURNING user_id, family_id",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(spent) = spent {
        return Ok(Rotation::Rotated {
            user_id: spent.user_id,
            family_id: spent.family_id,
        });
    }
    let known = sqlx::query_as::<_, Known>(
        "SELECT user_id, family_id, used_at FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(&mut *conn)
    .await?;
    match known {
        // A spent token presented again is a replay, even if its family was since revoked.
        Some(k) if k.used_at.is_some() => {
            revoke_family(conn, &k.family_id).await?;
            Ok(Rotation::Reused {
                user_id: k.user_id,
                family_id: k.family_id,
            })
        }
        _ => Ok(Rotation::Invalid),
    }
}

/// Revokes every token of a family (logout, reuse).
pub async fn revoke_family(conn: &mut AnyConnection, family_id: &str) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family_id)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Finds the family of a token (for logout), if the token is known.
pub async fn family_of(db: &Db, token_hash: &str) -> sqlx::Result<Option<(String, String)>> {
    let row = sqlx::query_as::<_, Spent>(
        "SELECT user_id, family_id FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.user_id, r.family_id)))
}

/// Revokes every refresh token of a user (password reset: "sign out everywhere").
pub async fn revoke_all_for_user(conn: &mut AnyConnection, user_id: &str) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Revokes every refresh token of a user but those of one sign-in (a password change signs
/// out the other devices and keeps the one that made it).
pub async fn revoke_others_for_user(
    conn: &mut AnyConnection,
    user_id: &str,
    keep_family_id: &str,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $3 \
         WHERE user_id = $1 AND family_id <> $2 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(keep_family_id)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// What an email link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailPurpose {
    /// Confirms the address (24 h).
    VerifyEmail,
    /// Sets a new password (1 h).
    ResetPassword,
}

impl EmailPurpose {
    fn as_str(self) -> &'static str {
        match self {
            EmailPurpose::VerifyEmail => "verify_email",
            EmailPurpose::ResetPassword => "reset_password",
        }
    }
}

/// Stores a new email-link token hash.
pub async fn insert_email_token(
    db: &Db,
    user_id: &str,
    purpose: EmailPurpose,
    token_hash: &str,
    expires_at: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO email_tokens (id, user_id, purpose, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id().to_string())
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(token_hash)
    .bind(now_ms())
    .bind(expires_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Whether an email-link token is live, without spending it: a reset checks its token before
/// paying for a password hash, so a flood of made-up tokens costs no hashing.
pub async fn email_token_is_live(
    db: &Db,
    purpose: EmailPurpose,
    token_hash: &str,
) -> sqlx::Result<bool> {
    let found: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM email_tokens \
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
    )
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(now_ms())
    .fetch_one(db)
    .await?;
    Ok(found > 0)
}

/// Spends an email-link token: returns its user if it was live (single use, unexpired).
pub async fn consume_email_token(
    conn: &mut AnyConnection,
    purpose: EmailPurpose,
    token_hash: &str,
) -> sqlx::Result<Option<String>> {
    let now = now_ms();
    sqlx::query_scalar(
        "UPDATE email_tokens SET used_at = $3 \
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 \
         RETURNING user_id",
    )
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Deletes tokens that can no longer be used; returns how many rows went.
pub async fn delete_expired(conn: &mut AnyConnection, older_than: i64) -> sqlx::Result<u64> {
    let refresh = sqlx::query(
        "DELETE FROM refresh_tokens WHERE expires_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1)",
    )
    .bind(older_than)
    .execute(&mut *conn)
    .await?;
    let email = sqlx::query(
        "DELETE FROM email_tokens WHERE expires_at < $1 OR (used_at IS NOT NULL AND used_at < $1)",
    )
    .bind(older_than)
    .execute(&mut *conn)
    .await?;
    Ok(refresh.rows_affected() + email.rows_affected())
}
