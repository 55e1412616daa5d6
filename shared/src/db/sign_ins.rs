//! The `known_sign_ins` table: the client networks each account has signed in from. Login
//! attempts from those are limited apart from everybody else's, so strangers guessing an
//! account's password lock out only other strangers, never its owner at their usual address.

use sqlx::AnyConnection;

use super::{Db, now_ms};

/// How long a network stays known after its last successful sign-in.
pub const KNOWN_FOR_MS: i64 = 90 * 24 * 3600 * 1000;

/// Whether `user_id` signed in successfully from `client` within [`KNOWN_FOR_MS`].
pub async fn is_known(db: &Db, user_id: &str, client: &str) -> sqlx::Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT last_at FROM known_sign_ins WHERE user_id = $1 AND client_key = $2",
    )
    .bind(user_id)
    .bind(client)
    .fetch_optional(db)
    .await?;
    Ok(found.is_some_and(|at| at > now_ms() - KNOWN_FOR_MS))
}

/// Records a successful sign-in of `user_id` from `client`, in the sign-in's transaction.
pub async fn remember(conn: &mut AnyConnection, user_id: &str, client: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO known_sign_ins (user_id, client_key, last_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, client_key) DO UPDATE SET last_at = excluded.last_at",
    )
    .bind(user_id)
    .bind(client)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets networks not signed in from for [`KNOWN_FOR_MS`] (the cleanup's): returns how many.
pub async fn forget_stale(conn: &mut AnyConnection, now: i64) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM known_sign_ins WHERE last_at < $1")
        .bind(now - KNOWN_FOR_MS)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}
