//! The `users` table.

use sqlx::{AnyConnection, FromRow};

use super::{Db, new_id, now_ms};
use crate::domain::{Email, Role};

/// A user row. `password_hash` stays inside the server.
#[derive(Debug, Clone, FromRow)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub display_name: Option<String>,
    pub email_verified_at: Option<i64>,
    pub tokens_valid_after: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Set while an admin has disabled the account.
    pub disabled_at: Option<i64>,
}

impl User {
    /// The role, falling back to the least privileged one if the row holds something unknown.
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Patient)
    }
}

/// The column list of every full-row query.
macro_rules! user_columns {
    () => {
        "id, email, password_hash, role, display_name, email_verified_at, \
                       tokens_valid_after, created_at, updated_at, disabled_at"
    };
}

/// Inserts a new user; a duplicate email fails with the `users_email_key` unique violation.
pub async fn insert(
    conn: &mut AnyConnection,
    email: &Email,
    password_hash: &str,
    role: Role,
    display_name: Option<&str>,
) -> sqlx::Result<User> {
    let now = now_ms();
    sqlx::query_as::<_, User>(concat!(
        "INSERT INTO users (id, email, password_hash, role, display_name, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING ",
        user_columns!(),
        ""
    ))
    .bind(new_id().to_string())
    .bind(email.as_str())
    .bind(password_hash)
    .bind(role.as_str())
    .bind(display_name)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// Looks a user up by normalised email.
pub async fn find_by_email(db: &Db, email: &Email) -> sqlx::Result<Option<User>> {
    sqlx::query_as::<_, User>(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE email = $1"
    ))
    .bind(email.as_str())
    .fetch_optional(db)
    .await
}

/// Looks a user up by id.
pub async fn find(db: &Db, id: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as::<_, User>(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Marks the email verified (idempotent: the first verification time is kept).
pub async fn mark_verified(conn: &mut AnyConnection, id: &str) -> sqlx::Result<()> {
    let now = now_ms();
    sqlx::query(
        "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2), updated_at = $2 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces the password hash and, when `revoke_tokens`, refuses every access token issued
/// before now.
pub async fn set_password(
    conn: &mut AnyConnection,
    id: &str,
    password_hash: &str,
    revoke_tokens: bool,
) -> sqlx::Result<()> {
    let now = now_ms();
    sqlx::query(
        "UPDATE users SET password_hash = $2, updated_at = $3, \
         tokens_valid_after = CASE WHEN $4 = 1 THEN $3 ELSE tokens_valid_after END WHERE id = $1",
    )
    .bind(id)
    .bind(password_hash)
    .bind(now)
    .bind(i64::from(revoke_tokens))
    .execute(conn)
    .await?;
    Ok(())
}

/// Holds the account's row until the transaction ends, so that a check and the write it
/// allows (a per-account quota) are not interleaved with another request's: a row lock on
/// PostgreSQL, the database's write lock on SQLite (an update takes it at once).
pub async fn lock(conn: &mut AnyConnection, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET updated_at = updated_at WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Changes the display name.
pub async fn set_display_name(db: &Db, id: &str, name: Option<&str>) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET display_name = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(name)
        .bind(now_ms())
        .execute(db)
        .await?;
    Ok(())
}

/// Changes the role (`create-admin`, and admins).
pub async fn set_role(conn: &mut AnyConnection, id: &str, role: Role) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET role = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(role.as_str())
        .bind(now_ms())
        .execute(conn)
        .await?;
    Ok(())
}

/// One page of users, newest first, after `cursor` (an id): those whose address contains
/// `email` (lower-cased; LIKE wildcards in it match themselves) and who have `role`.
pub async fn list(
    db: &Db,
    email: Option<&str>,
    role: Option<Role>,
    cursor: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<User>> {
    let pattern = email.map(|e| format!("%{}%", super::escape_like(&e.to_lowercase())));
    sqlx::query_as::<_, User>(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE (CAST($1 AS TEXT) IS NULL OR email LIKE $1 ESCAPE '\\') \
         AND (CAST($2 AS TEXT) IS NULL OR role = $2) \
         AND (CAST($3 AS TEXT) IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    ))
    .bind(pattern)
    .bind(role.map(Role::as_str))
    .bind(cursor)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Disables (`true`) or enables the account. Disabling refuses every access token issued
/// before now; the caller revokes the refresh tokens in the same transaction.
pub async fn set_disabled(conn: &mut AnyConnection, id: &str, disabled: bool) -> sqlx::Result<()> {
    let now = now_ms();
    sqlx::query(
        "UPDATE users SET \
         disabled_at = CASE WHEN $2 = 1 THEN COALESCE(disabled_at, $3) ELSE NULL END, \
         tokens_valid_after = CASE WHEN $2 = 1 THEN $3 ELSE tokens_valid_after END, \
         updated_at = $3 WHERE id = $1 AND erasing_at IS NULL",
    )
    .bind(id)
    .bind(i64::from(disabled))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the account as being erased: disabled, every token issued before now refused, and
/// out of an admin's reach to re-enable. The caller revokes the refresh tokens in the same
/// transaction and starts the erasure job.
pub async fn mark_erasing(conn: &mut AnyConnection, id: &str) -> sqlx::Result<()> {
    let now = now_ms();
    sqlx::query(
        "UPDATE users SET erasing_at = COALESCE(erasing_at, $2), \
         disabled_at = COALESCE(disabled_at, $2), tokens_valid_after = $2, updated_at = $2 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the account; its tokens go with it (ON DELETE CASCADE; SQLite connections turn
/// foreign keys on in `db::connect_url`).
async fn delete(conn: &mut AnyConnection, id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Erases account `id` (address `email`) in `conn`'s transaction: its open mail requests and
/// the invitations sent to its address go, its audit entries keep what happened but lose the
/// address and browser they came from, its turns on the queues, its budget and the usage rows
/// not tied to a session are forgotten, and the account row goes with every row that cascades
/// from it. True when the account was there.
pub async fn erase(conn: &mut AnyConnection, id: &str, email: &str) -> sqlx::Result<bool> {
    sqlx::query("DELETE FROM account_mail_requests WHERE email = $1")
        .bind(email)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE patients SET invited_email = NULL, invitation_token_hash = NULL, \
         invitation_expires_at = NULL WHERE invited_email = $1",
    )
    .bind(email)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_logs SET ip = NULL, user_agent = NULL WHERE user_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    super::jobs::fairness::forget_tenant(conn, id).await?;
    super::budgets::forget(conn, id).await?;
    sqlx::query("DELETE FROM provider_usage WHERE tenant = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    delete(conn, id).await
}
