//! The in-process bus: a bounded log per user and a broadcast channel.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Instant,
};

use futures::StreamExt;
use tokio::sync::broadcast;

use super::*;

/// Events in flight to this process's subscribers before a slow one is dropped.
const CHANNEL: usize = 4096;

/// Logs and live events of one process.
pub struct MemoryBus {
    state: Mutex<Logs>,
    live: broadcast::Sender<(String, Event)>,
}

#[derive(Default)]
struct Logs {
    next: u64,
    /// Per user: its latest events, and when the latest came.
    users: HashMap<String, (VecDeque<Event>, Instant)>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            live: broadcast::channel(CHANNEL).0,
        }
    }
}

impl MemoryBus {
    pub(super) fn publish(&self, new: NewEvent) {
        let mut logs = self.state.lock().unwrap_or_else(|p| p.into_inner());
        logs.next += 1;
        let event = Event {
            id: logs.next.to_string(),
            kind: new.kind.to_owned(),
            data: new.data,
        };
        let now = Instant::now();
        logs.users
            .retain(|_, (_, latest)| now.duration_since(*latest) < LOG_KEEP);
        let (log, latest) = logs
            .users
            .entry(new.user_id.clone())
            .or_insert_with(|| (VecDeque::new(), now));
        if log.len() == LOG_EVENTS {
            log.pop_front();
        }
        log.push_back(event.clone());
        *latest = now;
        // Sent under the lock, so subscribers see the order of the log.
        let _ = self.live.send((new.user_id, event));
    }

    pub(super) fn subscribe(&self, user_id: &str, after: Option<&str>) -> EventStream {
        let logs = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Subscribed under the lock: nothing falls between the replay and the live events.
        let live = self.live.subscribe();
        let replay: Vec<Event> = match after {
            Some(after) => logs
                .users
                .get(user_id)
                .map(|(log, _)| {
                    log.iter()
                        .filter(|e| order(&e.id) > order(after))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
            None => Vec::new(),
        };
        drop(logs);
        let user = user_id.to_owned();
        // Ends when this subscriber lags behind the channel: it resumes from its last id.
        let live = futures::stream::unfold(live, move |mut live| {
            let user = user.clone();
            async move {
                loop {
                    match live.recv().await {
                        Ok((to, event)) if to == user => return Some((event, live)),
                        Ok(_) => continue,
                        Err(_) => return None,
                    }
                }
            }
        });
        Box::pin(futures::stream::iter(replay).chain(live))
    }
}
