//! The bus over Redis: each user's log is a stream, and one pub/sub channel carries every
//! event to every API replica, where one listener per process hands them to its subscribers.

use std::sync::Mutex;

use apalis_redis::ConnectionManager;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::*;

/// Events in flight to this process's subscribers before a slow one is dropped.
const CHANNEL: usize = 4096;

/// KEYS[1] the user's stream, KEYS[2] the channel; ARGV max length, kind, data, keep (ms),
/// user. Logs and publishes in one step, so the channel carries a user's events in the order
/// of its log. Returns the event's id.
const PUBLISH: &str = r"
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'kind', ARGV[2], 'data', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', KEYS[2], cjson.encode({user = ARGV[5], id = id, kind = ARGV[2], data = ARGV[3]}))
return id
";

/// What the channel carries.
#[derive(Deserialize)]
struct Published {
    user: String,
    id: String,
    kind: String,
    data: String,
}

pub struct RedisBus {
    conn: ConnectionManager,
    client: redis::Client,
    namespace: String,
    /// The listener's fan-out, started by the first subscriber.
    live: Mutex<Option<broadcast::Sender<(String, Event)>>>,
}

impl RedisBus {
    pub(super) fn new(conn: ConnectionManager, client: redis::Client, namespace: String) -> Self {
        Self {
            conn,
            client,
            namespace,
            live: Mutex::new(None),
        }
    }

    fn log_key(&self, user_id: &str) -> String {
        format!("{}:events:{user_id}", self.namespace)
    }

    fn channel(&self) -> String {
        format!("{}:events", self.namespace)
    }

    pub(super) async fn publish(&self, event: NewEvent) -> anyhow::Result<()> {
        let script = redis::Script::new(PUBLISH);
        let mut invocation = script.key(self.log_key(&event.user_id));
        invocation
            .key(self.channel())
            .arg(LOG_EVENTS)
            .arg(event.kind)
            .arg(event.data.to_string())
            .arg(LOG_KEEP.as_millis() as u64)
            .arg(&event.user_id);
        let mut conn = self.conn.clone();
        let call = invocation.invoke_async::<String>(&mut conn);
        tokio::time::timeout(Duration::from_secs(2), call)
            .await
            .map_err(|_| anyhow::anyhow!("Redis did not answer in time"))??;
        Ok(())
    }

    pub(super) async fn subscribe(
        &self,
        user_id: &str,
        after: Option<&str>,
    ) -> anyhow::Result<EventStream> {
        // Listening first, then the log: an event published in between comes twice, and the
        // second is dropped by its id, rather than not at all.
        let live = self.listener().await?.subscribe();
        let replay = match after {
            Some(after) => self.replay(user_id, after).await?,
            None => Vec::new(),
        };
        let mut last = replay
            .last()
            .map(|e| order(&e.id))
            .or(after.map(order))
            .unwrap_or((0, 0));
        let user = user_id.to_owned();
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
        })
        .filter(move |event| {
            let newer = order(&event.id) > last;
            if newer {
                last = order(&event.id);
            }
            std::future::ready(newer)
        });
        Ok(Box::pin(futures::stream::iter(replay).chain(live)))
    }

    /// The user's logged events after `after`.
    async fn replay(&self, user_id: &str, after: &str) -> anyhow::Result<Vec<Event>> {
        let mut conn = self.conn.clone();
        // Each entry: its id, then its fields and values in turn.
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(self.log_key(user_id))
            .arg(format!("({after}"))
            .arg("+")
            .query_async(&mut conn)
            .await?;
        Ok(entries
            .into_iter()
            .filter_map(|(id, fields)| {
                let field = |name: &str| {
                    fields
                        .chunks(2)
                        .find(|pair| pair[0] == name)
                        .and_then(|pair| pair.get(1).cloned())
                };
                Some(Event {
                    id,
                    kind: field("kind")?,
                    data: serde_json::from_str(&field("data")?).ok()?,
                })
            })
            .collect())
    }

    /// This process's one listener on the channel, started on first use; it reconnects after
    /// errors (events published meanwhile are in the logs, for clients that resume).
    async fn listener(&self) -> anyhow::Result<broadcast::Sender<(String, Event)>> {
        if let Some(live) = self.live.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(live.clone());
        }
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(self.channel()).await?;
        let mut slot = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(live) = slot.as_ref() {
            return Ok(live.clone());
        }
        let live = broadcast::channel(CHANNEL).0;
        *slot = Some(live.clone());
        drop(slot);
        let sender = live.clone();
        let client = self.client.clone();
        let channel = self.channel();
        tokio::spawn(async move {
            let mut pubsub = Some(pubsub);
            loop {
                let connection = match pubsub.take() {
                    Some(connection) => Ok(connection),
                    None => {
                        async {
                            let mut connection = client.get_async_pubsub().await?;
                            connection.subscribe(&channel).await?;
                            anyhow::Ok(connection)
                        }
                        .await
                    }
                };
                match connection {
                    Ok(mut connection) => {
                        let mut messages = connection.on_message();
                        while let Some(message) = messages.next().await {
                            let Ok(payload) = message.get_payload::<String>() else {
                                continue;
                            };
                            let Ok(published) = serde_json::from_str::<Published>(&payload) else {
                                continue;
                            };
                            let Ok(data) = serde_json::from_str(&published.data) else {
                                continue;
                            };
                            let event = Event {
                                id: published.id,
                                kind: published.kind,
                                data,
                            };
                            // Nobody listening is fine: the logs keep the events.
                            let _ = sender.send((published.user, event));
                        }
                        tracing::warn!("the events channel closed; listening again");
                    }
                    Err(err) => tracing::warn!(error = %err, "cannot listen for events; retrying"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Ok(live)
    }
}
