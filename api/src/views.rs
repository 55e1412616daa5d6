//! Response bodies shared by several operations.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use tend_shared::{db::users::User, domain::Role};

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

/// Converts stored milliseconds to a timestamp.
pub fn ms_to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
