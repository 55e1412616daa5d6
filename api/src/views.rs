//! Response bodies shared by several operations.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use tend_shared::{db::users::User, domain::Role, jobs::Queue};

/// A queue's name, as the spec lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum QueueName {
    /// Outgoing mail.
    Email,
    /// Scheduled housekeeping.
    Maintenance,
    /// Session audio to transcripts.
    Transcription,
    /// Transcripts to notes, mission drafts.
    Extraction,
    /// Exports and personal data exports.
    Documents,
}

impl From<QueueName> for Queue {
    fn from(name: QueueName) -> Self {
        match name {
            QueueName::Email => Queue::Email,
            QueueName::Maintenance => Queue::Maintenance,
            QueueName::Transcription => Queue::Transcription,
            QueueName::Extraction => Queue::Extraction,
            QueueName::Documents => Queue::Documents,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use poem_openapi::types::{ToJSON, Type};

    use super::*;

    /// The spec names the engine's queues, all of them and by their ledger names.
    #[test]
    fn queue_names_are_the_engines_queues() {
        let mut registry = poem_openapi::registry::Registry::new();
        QueueName::register(&mut registry);
        let names: Vec<String> = registry.schemas[QueueName::name().as_ref()]
            .enum_items
            .iter()
            .map(|item| item.as_str().unwrap().to_owned())
            .collect();
        let queues: Vec<&str> = Queue::ALL.iter().map(|q| q.as_str()).collect();
        assert_eq!(names, queues);
        for name in [QueueName::Email, QueueName::Extraction] {
            let value = name.to_json().unwrap();
            assert_eq!(value.as_str(), Some(Queue::from(name).as_str()));
        }
    }
}
