//! The `account_mail_requests` table: "send me a reset link" and "send the verification
//! again", stored by the API and answered by a job (see the migration for why).

use sqlx::{AnyConnection, FromRow};

use super::{audit::Origin, new_id, now_ms};
use crate::domain::Email;

/// What an account-mail request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailPurpose {
    /// A password-reset link, if the address has an account.
    PasswordReset,
    /// The verification mail again, if the address has an unverified account.
    VerifyEmail,
}

impl MailPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MailPurpose::PasswordReset => "password_reset",
            MailPurpose::VerifyEmail => "verify_email",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "password_reset" => Some(MailPurpose::PasswordReset),
            "verify_email" => Some(MailPurpose::VerifyEmail),
            _ => None,
        }
    }
}

/// A stored request.
#[derive(Debug, Clone, FromRow)]
struct Row {
    purpose: String,
    email: String,
    ip: Option<String>,
    user_agent: Option<String>,
}

/// A request, as the job reads it.
#[derive(Debug, Clone)]
pub struct MailRequest {
    /// What to send.
    pub purpose: MailPurpose,
    /// The normalised address.
    pub email: String,
    /// Where the request came from.
    pub origin: Origin,
}

/// Stores a request; returns its id.
pub async fn insert(
    conn: &mut AnyConnection,
    purpose: MailPurpose,
    email: &Email,
    origin: &Origin,
) -> sqlx::Result<String> {
    let id = new_id().to_string();
    sqlx::query(
        "INSERT INTO account_mail_requests (id, purpose, email, ip, user_agent, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(purpose.as_str())
    .bind(email.as_str())
    .bind(origin.ip.as_deref())
    .bind(origin.user_agent.as_deref())
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(id)
}

/// Takes the request out (read and delete in the caller's transaction): a second delivery of
/// its job finds nothing.
pub async fn take(conn: &mut AnyConnection, id: &str) -> sqlx::Result<Option<MailRequest>> {
    let row = sqlx::query_as::<_, Row>(
        "DELETE FROM account_mail_requests WHERE id = $1 \
         RETURNING purpose, email, ip, user_agent",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(|r| {
        Some(MailRequest {
            purpose: MailPurpose::parse(&r.purpose)?,
            email: r.email,
            origin: Origin {
                ip: r.ip,
                user_agent: r.user_agent,
            },
        })
    }))
}

/// Removes requests older than `before` (their job died); returns how many.
pub async fn delete_older_than(conn: &mut AnyConnection, before: i64) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM account_mail_requests WHERE created_at < $1")
        .bind(before)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}
