//! Response bodies shared by several operations. What a client reads of its own data lives
//! in `tend_views` (the personal data export writes the same bodies); the admin's live here.

use std::borrow::Cow;

use poem_openapi::{
    Object,
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type},
};
use serde_json::Value;
use tend_shared::jobs::Queue;
pub use tend_views::{
    account::{AuditView, RoleView, UserView},
    ms_to_datetime,
};

/// A queue's name, as the spec lists them: the engine's queues, read from
/// [`Queue`] itself, so a new queue is in the spec without an edit here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueName(pub Queue);

impl From<QueueName> for Queue {
    fn from(name: QueueName) -> Self {
        name.0
    }
}

impl Type for QueueName {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        Cow::Borrowed("QueueName")
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(Self::name().into_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(Self::name().into_owned(), |_| MetaSchema {
            description: Some("A queue's name, as the spec lists them."),
            enum_items: Queue::ALL
                .iter()
                .map(|queue| Value::String(queue.as_str().to_owned()))
                .collect(),
            ..MetaSchema::new("string")
        });
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromParameter for QueueName {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Queue::parse(value)
            .map(Self)
            .ok_or_else(|| ParseError::custom("Expect a valid enumeration value."))
    }
}

impl ParseFromJSON for QueueName {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        let value = value.unwrap_or_default();
        match value.as_str().and_then(Queue::parse) {
            Some(queue) => Ok(Self(queue)),
            None => Err(ParseError::expected_type(value)),
        }
    }
}

impl ToJSON for QueueName {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.as_str().to_owned()))
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
        for name in [QueueName(Queue::Email), QueueName(Queue::Extraction)] {
            let value = name.to_json().unwrap();
            assert_eq!(value.as_str(), Some(Queue::from(name).as_str()));
        }
    }
}
