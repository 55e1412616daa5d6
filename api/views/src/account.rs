//! The account as its owner reads it, and its audit trail.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use tend_shared::{
    db::{audit::AuditEntry, users::User},
    domain::Role,
};

use crate::ms_to_datetime;

/// A user's role.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum RoleView {
    /// Runs the platform.
    Admin,
    /// Owns patients and sessions.
    Practitioner,
    /// Reads their own summaries.
    Patient,
}

impl From<Role> for RoleView {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => RoleView::Admin,
            Role::Practitioner => RoleView::Practitioner,
            Role::Patient => RoleView::Patient,
        }
    }
}

/// An account as its owner sees it.
#[derive(Debug, Clone, Object)]
pub struct UserView {
    /// The user id.
    pub id: String,
    /// The (normalised) email address.
    pub email: String,
    /// What the user may do.
    pub role: RoleView,
    /// The name shown to others, if set.
    pub display_name: Option<String>,
    /// Whether the address was confirmed through the emailed link.
    pub email_verified: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.clone(),
            email: user.email.clone(),
            role: user.role().into(),
            display_name: user.display_name.clone(),
            email_verified: user.email_verified_at.is_some(),
            created_at: ms_to_datetime(user.created_at),
        }
    }
}

/// One audit-log event.
#[derive(Debug, Object)]
pub struct AuditView {
    /// The event id.
    pub id: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Whose account it concerns (or who acted, for admin actions).
    pub user_id: Option<String>,
    /// What happened, e.g. `login_failed`, `job_killed`.
    pub action: String,
    /// The client's IP address.
    pub ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// Ids and reasons (never a password, token or patient text).
    pub detail: Option<serde_json::Value>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            at: ms_to_datetime(e.at),
            user_id: e.user_id,
            action: e.action,
            ip: e.ip,
            user_agent: e.user_agent,
            detail: e.detail.and_then(|d| serde_json::from_str(&d).ok()),
        }
    }
}
