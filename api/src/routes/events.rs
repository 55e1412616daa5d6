//! `GET /api/v1/events`: the signed-in user's live events as Server-Sent Events (what their
//! sessions, exports, data exports and drafts became), resumable with `Last-Event-ID`.

use std::time::Duration;

use futures::StreamExt;
use poem::web::{Data, sse::Event as SseEvent};
use poem_openapi::{Object, OpenApi, param::Header, payload::EventStream};
use tend_shared::events::Event;

use super::ApiTags;
use crate::{
    error::{ApiError, ApiResult},
    guards::SignedIn,
    state::AppState,
};

/// How often a quiet stream sends a comment, so proxies and the connection's idle timeout
/// keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One event, as the stream sends it: SSE `id` is `id`, `event` is `type`, and `data` is
/// `data` as JSON.
#[derive(Debug, Object)]
pub struct EventView {
    /// Its place in the user's log: send it back as `Last-Event-ID` to resume after it.
    pub id: String,
    /// `session.state`, `export.state`, `data_export.state` or `draft.state`.
    #[oai(rename = "type")]
    pub kind: String,
    /// The record's state as committed: its id, `status`, `error` (and a session's
    /// `failed_stage`, `job_id`), `updated_at` in ms. Ids and statuses only, never patient
    /// text.
    pub data: serde_json::Value,
}

impl From<Event> for EventView {
    fn from(event: Event) -> Self {
        Self {
            id: event.id,
            kind: event.kind,
            data: event.data,
        }
    }
}

/// The live events operation.
pub struct EventsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Users")]
impl EventsApi {
    /// The caller's live events, as Server-Sent Events (`text/event-stream`; curl and the
    /// browser's `EventSource` both read it). Each event's SSE `id` is its place in the log,
    /// its `event` its type and its `data` the record's state as committed (`EventView`); a
    /// comment every 15 s keeps a quiet stream open. A client that reconnects with `Last-Event-ID` (the browser does it by
    /// itself) gets the events it missed first, from a log of the latest 1,000 events per user
    /// kept 24 hours after the latest; without it, the stream starts with what happens next
    /// (read the records once for their state now). Events cross API replicas through Redis.
    #[oai(path = "/events", method = "get", operation_id = "streamEvents")]
    async fn events(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        /// The id of the last event received, to resume after it.
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<String>>,
    ) -> ApiResult<EventStream<futures::stream::BoxStream<'static, EventView>>> {
        let after = last_event_id.0.filter(|id| !id.is_empty());
        if let Some(id) = &after
            && !valid_id(id)
        {
            return Err(ApiError::invalid_field(
                "Last-Event-ID",
                "must be an event's id as the stream sent it (digits, or digits-digits)",
            ));
        }
        let events = state
            .events
            .subscribe(&user.id, after.as_deref())
            .await
            .map_err(|err| {
                ApiError::unavailable(format!("the event stream is unavailable: {err}"))
            })?;
        let stream = events.map(EventView::from).boxed();
        Ok(EventStream::new(stream)
            .keep_alive(KEEP_ALIVE)
            .to_event(|event| {
                let data = serde_json::to_string(&event.data).unwrap_or_default();
                SseEvent::message(data).event_type(event.kind).id(event.id)
            }))
    }
}

/// An id as the stream gives them: `123` or `1733622000000-0`.
fn valid_id(id: &str) -> bool {
    let mut parts = id.splitn(2, '-');
    let digits = |part: Option<&str>| {
        part.is_some_and(|p| {
            !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit())
        })
    };
    digits(parts.next()) && parts.next().is_none_or(|p| digits(Some(p)))
}
