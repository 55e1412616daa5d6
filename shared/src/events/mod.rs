//! Live events: what a user's records became (a session's status, an export ready, a draft
//! failed), for `GET /api/v1/events` (Server-Sent Events). An event is published after the
//! change it reports is committed, by whichever process made it, and reaches every API
//! replica: through Redis on the Redis transport, in this process in the embedded mode.
//!
//! Each user has a bounded log ([`LOG_EVENTS`] events, [`LOG_KEEP`] long) that a reconnecting
//! client resumes from (`Last-Event-ID`). Events are snapshots (the record's state as
//! committed), never deltas, and carry ids and statuses only: no patient text.
//!
//! On Redis an event is one script: `XADD` to the user's stream (which numbers it, in order,
//! and keeps the log, trimmed by `MAXLEN` and expiring) and `PUBLISH` on one channel that every
//! API replica listens to with one connection. Streams alone would need a blocked `XREAD` per
//! connected user; pub/sub alone keeps nothing to resume from.

mod memory;
mod redis_bus;
pub mod subjects;

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::Stream;
use serde::Deserialize;

pub use subjects::Subject;

/// Events kept per user for resumption.
pub const LOG_EVENTS: usize = 1000;
/// How long a user's log is kept after its latest event.
pub const LOG_KEEP: Duration = Duration::from_secs(24 * 3600);

/// One event as a subscriber receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its place in its user's log: what `Last-Event-ID` names.
    pub id: String,
    /// `session.state`, `export.state`, `data_export.state` or `draft.state`.
    pub kind: String,
    /// The record's state: its id, status and error (never patient text).
    pub data: serde_json::Value,
}

/// An event to publish to `user_id`.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub user_id: String,
    pub kind: &'static str,
    pub data: serde_json::Value,
}

/// A subscriber's events: the log after the id it resumes from, then live ones.
pub type EventStream = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// Where events travel, cheap to clone.
#[derive(Clone)]
pub enum EventBus {
    /// This process (embedded mode).
    Memory(Arc<memory::MemoryBus>),
    /// Every process, through Redis.
    Redis(Arc<redis_bus::RedisBus>),
}

impl EventBus {
    /// The bus over the transport's Redis (`Transport::redis_client`: connection, client,
    /// namespace), or this process's when the transport is not Redis. Processes on the same
    /// transport share one bus; in the embedded mode, one process is all of them, so the bus
    /// is made once per process (see [`EventBus::in_memory`]).
    pub fn new(redis: Option<(apalis_redis::ConnectionManager, redis::Client, String)>) -> Self {
        match redis {
            Some((conn, client, namespace)) => {
                EventBus::Redis(Arc::new(redis_bus::RedisBus::new(conn, client, namespace)))
            }
            None => Self::in_memory(),
        }
    }

    /// The one in-process bus of this process.
    pub fn in_memory() -> Self {
        static BUS: std::sync::OnceLock<Arc<memory::MemoryBus>> = std::sync::OnceLock::new();
        EventBus::Memory(
            BUS.get_or_init(|| Arc::new(memory::MemoryBus::default()))
                .clone(),
        )
    }

    /// Publishes `event` (after the change it reports was committed). Best effort: a bus that
    /// is away loses the event (logged); the record keeps its state, which a client reads
    /// again when it reconnects.
    pub async fn publish(&self, event: NewEvent) {
        let kind = event.kind;
        let published = match self {
            EventBus::Memory(bus) => {
                bus.publish(event);
                Ok(())
            }
            EventBus::Redis(bus) => bus.publish(event).await,
        };
        if let Err(err) = published {
            tracing::warn!(kind, error = %err, "event not published");
        }
    }

    /// `user_id`'s events after `after` (a `Last-Event-ID`; the log's last events are not
    /// replayed without one), then live ones as they come. The stream ends if this subscriber
    /// falls too far behind (the client reconnects and resumes from its last id).
    pub async fn subscribe(
        &self,
        user_id: &str,
        after: Option<&str>,
    ) -> anyhow::Result<EventStream> {
        match self {
            EventBus::Memory(bus) => Ok(bus.subscribe(user_id, after)),
            EventBus::Redis(bus) => bus.subscribe(user_id, after).await,
        }
    }
}

/// An event id's order: Redis stream ids (`ms-seq`) and in-process counters alike.
pub(crate) fn order(id: &str) -> (u64, u64) {
    let mut parts = id.splitn(2, '-');
    let first = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let second = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (first, second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_by_their_numbers() {
        assert!(order("1733622000000-2") > order("1733622000000-1"));
        assert!(order("1733622000001-0") > order("1733622000000-9"));
        assert!(order("10") > order("9"));
        assert_eq!(order("junk"), (0, 0));
    }
}
