//! Response bodies shared by several operations. What a client reads of its own data lives
//! in `tend_views` (the personal data export writes the same bodies); the admin's live here.

use poem_openapi::{Enum, Object};
use tend_shared::jobs::Queue;
pub use tend_views::{
    account::{AuditView, RoleView, UserView},
    ms_to_datetime,
};

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

/// One page of audit-log events.
#[derive(Debug, Object)]
pub struct AuditPage {
    /// The events, newest first.
    pub items: Vec<AuditView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
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
