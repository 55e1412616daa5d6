//! The `audit_logs` table: who did what security-relevant thing, when, from where.

use sqlx::{AnyConnection, FromRow};

use super::{new_id, now_ms};

/// The events the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Register,
    LoginSucceeded,
    LoginFailed,
    LoginRateLimited,
    Logout,
    RefreshTokenReused,
    EmailVerified,
    PasswordResetRequested,
    PasswordReset,
    PasswordChanged,
    RoleChanged,
    AccountDeleted,
    InvitationAccepted,
    JobRetried,
    JobKilled,
    JobReprioritised,
    JobDeleted,
    QueuePaused,
    QueueResumed,
    QueueDeadRetried,
    /// An admin ran a schedule's job now.
    MaintenanceRun,
    UserUpdated,
    /// An admin refilled an account's budgets.
    UserLimitsReset,
    ExportDownloaded,
    DataExportRequested,
    DataExportDownloaded,
    /// A new key signs access tokens (an admin, the command line or the schedule).
    SigningKeyRotated,
    /// A signing key was removed: its tokens are refused.
    SigningKeyRemoved,
    /// An admin cancelled one job.
    JobCancelled,
    /// An admin cancelled every unfinished job of a practice.
    PracticeJobsCancelled,
    /// Its owner cancelled a session, an export, a data export or a draft in progress.
    WorkCancelled,
    /// An admin set a practice's monthly budget.
    BudgetChanged,
}

impl AuditAction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Register => "register",
            AuditAction::LoginSucceeded => "login_succeeded",
            AuditAction::LoginFailed => "login_failed",
            AuditAction::LoginRateLimited => "login_rate_limited",
            AuditAction::Logout => "logout",
            AuditAction::RefreshTokenReused => "refresh_token_reused",
            AuditAction::EmailVerified => "email_verified",
            AuditAction::PasswordResetRequested => "password_reset_requested",
            AuditAction::PasswordReset => "password_reset",
            AuditAction::PasswordChanged => "password_changed",
            AuditAction::RoleChanged => "role_changed",
            AuditAction::AccountDeleted => "account_deleted",
            AuditAction::InvitationAccepted => "invitation_accepted",
            AuditAction::JobRetried => "job_retried",
            AuditAction::JobKilled => "job_killed",
            AuditAction::JobReprioritised => "job_reprioritised",
            AuditAction::JobDeleted => "job_deleted",
            AuditAction::QueuePaused => "queue_paused",
            AuditAction::QueueResumed => "queue_resumed",
            AuditAction::QueueDeadRetried => "queue_dead_retried",
            AuditAction::MaintenanceRun => "maintenance_run",
            AuditAction::UserUpdated => "user_updated",
            AuditAction::UserLimitsReset => "user_limits_reset",
            AuditAction::ExportDownloaded => "export_downloaded",
            AuditAction::DataExportRequested => "data_export_requested",
            AuditAction::DataExportDownloaded => "data_export_downloaded",
            AuditAction::SigningKeyRotated => "signing_key_rotated",
            AuditAction::SigningKeyRemoved => "signing_key_removed",
            AuditAction::JobCancelled => "job_cancelled",
            AuditAction::PracticeJobsCancelled => "practice_jobs_cancelled",
            AuditAction::WorkCancelled => "work_cancelled",
            AuditAction::BudgetChanged => "budget_changed",
        }
    }
}

/// Where a request came from, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// One audit row as read back.
#[derive(Debug, Clone, FromRow)]
pub struct AuditEntry {
    pub id: String,
    pub at: i64,
    pub user_id: Option<String>,
    pub action: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

/// Appends an event. `detail` is a small JSON object of ids and reasons, never personal text.
pub async fn record(
    conn: &mut AnyConnection,
    action: AuditAction,
    user_id: Option<&str>,
    origin: &Origin,
    detail: Option<serde_json::Value>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_logs (id, at, user_id, action, ip, user_agent, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id().to_string())
    .bind(now_ms())
    .bind(user_id)
    .bind(action.as_str())
    .bind(origin.ip.as_deref())
    .bind(origin.user_agent.as_deref().map(|ua| truncate(ua, 256)))
    .bind(detail.map(|d| d.to_string()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Events of one user, newest first.
pub async fn for_user(
    conn: &mut AnyConnection,
    user_id: &str,
    limit: i64,
) -> sqlx::Result<Vec<AuditEntry>> {
    sqlx::query_as::<_, AuditEntry>(
        "SELECT id, at, user_id, action, ip, user_agent, detail FROM audit_logs \
         WHERE user_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
    )
    .bind(user_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// What an audit-log page is filtered by.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter<'a> {
    pub user_id: Option<&'a str>,
    pub action: Option<&'a str>,
    /// At or after (milliseconds).
    pub since: Option<i64>,
}

/// One page of events, newest first (ids are time-ordered), after `cursor` (an id).
pub async fn list(
    db: &super::Db,
    filter: &AuditFilter<'_>,
    cursor: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<AuditEntry>> {
    sqlx::query_as::<_, AuditEntry>(
        "SELECT id, at, user_id, action, ip, user_agent, detail FROM audit_logs \
         WHERE (CAST($1 AS TEXT) IS NULL OR user_id = $1) \
         AND (CAST($2 AS TEXT) IS NULL OR action = $2) \
         AND (CAST($3 AS BIGINT) IS NULL OR at >= $3) \
         AND (CAST($4 AS TEXT) IS NULL OR id < $4) \
         ORDER BY id DESC LIMIT $5",
    )
    .bind(filter.user_id)
    .bind(filter.action)
    .bind(filter.since)
    .bind(cursor)
    .bind(limit)
    .fetch_all(db)
    .await
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
