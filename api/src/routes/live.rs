//! `GET /api/v1/sessions/{id}/live`: a recorded session's live channel over WebSocket. The
//! server sends the session's state on connect and on every change (from the live events'
//! bus, so a worker on another machine reaches it), and answers the client's feature frames
//! with nudges, at most one per session per `NUDGE_RATE_LIMIT_SECONDS` across connections and
//! replicas (a token bucket of the shared limiter).
//!
//! Messages are JSON objects with a `type`:
//! - server: `session.state` {session_id, status, failed_stage, error, chunks {done, total}
//!   (a chunked transcription's progress, else null), usage {calls, cost_usd}, participants}; `session.progress` {session_id, status} as a stage begins;
//!   `notes.ready` {session_id}; `session.failed` {session_id, failed_stage, error}; `nudge`
//!   {nudge_type: SLOW_DOWN | LET_OTHER_SPEAK, intensity 0..1, message}; `error` {message}.
//! - client: `feature_frame` {timestamp_ms, speaking_rate, overlap_ratio}.

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
    time::Instant,
};

use futures::{SinkExt, StreamExt};
use poem::{
    Request,
    web::{
        Data,
        websocket::{BoxWebSocketUpgraded, CloseCode, Message, WebSocket, WebSocketStream},
    },
};
use poem_openapi::{
    OpenApi,
    param::{Path, Query},
};
use serde_json::{Value, json};
use tend_shared::{
    config::LiveSettings,
    db::{self, sessions::SessionRow, users::User},
    domain::Role,
    events::Event,
    ratelimit::Decision,
    sessions::SessionStatus,
};

use super::ApiTags;
use crate::{
    error::{ApiError, ApiResult},
    state::AppState,
};

/// Largest client frame read; a larger one is refused with an `error` message.
const MAX_FRAME: usize = 4 * 1024;
/// Refused frames after which the connection is closed (1008, policy violation).
const MAX_REFUSED: u32 = 5;
/// The subprotocol the server speaks (browsers offer it with `access_token.<token>`).
const PROTOCOL: &str = "tend.live";

/// Connections per session on this replica.
static PARTICIPANTS: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(Mutex::default);

/// The live channel operation.
pub struct LiveApi;

#[OpenApi(prefix_path = "/api/v1/sessions", tag = "ApiTags::Sessions")]
impl LiveApi {
    /// A session's live channel (WebSocket, `101`): its state on connect and on every change,
    /// and nudges answering the client's feature frames. The access token comes as
    /// `Authorization: Bearer`, or for browsers as a `Sec-WebSocket-Protocol` value
    /// `access_token.<token>` (offered with `tend.live`) or the `access_token` query
    /// parameter. 404 for a session the caller may not see (a linked patient sees their own).
    /// Messages (JSON with `type`), server: `session.state`, `session.progress`,
    /// `notes.ready`, `session.failed`, `nudge`, `error`; client: `feature_frame`
    /// `{timestamp_ms, speaking_rate, overlap_ratio}`. The server pings every
    /// `WEBSOCKET_HEARTBEAT_INTERVAL` and closes a connection silent for
    /// `WEBSOCKET_TIMEOUT`; a malformed or oversized frame gets an `error`, and the fifth
    /// closes the connection with 1008. The README describes each message's fields.
    #[oai(path = "/:id/live", method = "get", operation_id = "sessionLive")]
    async fn live(
        &self,
        state: Data<&AppState>,
        req: &Request,
        ws: WebSocket,
        id: Path<String>,
        /// The access token, for browsers that cannot set headers.
        access_token: Query<Option<String>>,
    ) -> ApiResult<BoxWebSocketUpgraded> {
        let token = token_of(req, access_token.0.as_deref()).ok_or_else(|| {
            ApiError::unauthorized("unauthorized", "An access token is required.")
        })?;
        let (user, _) = state.authenticate(&token).await?;
        let session = readable(&state, &user, &id.0).await?;
        let state = state.0.clone();
        Ok(ws
            .protocols([PROTOCOL])
            .on_upgrade(move |socket| async move {
                run(state, session, socket).await;
            })
            .boxed())
    }
}

/// The token from the `Authorization` header, a `Sec-WebSocket-Protocol` value or the query.
fn token_of(req: &Request, query: Option<&str>) -> Option<String> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(bearer) = header("authorization").and_then(|v| {
        v.split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned())
    }) {
        return Some(bearer);
    }
    if let Some(token) = header("sec-websocket-protocol").and_then(|v| {
        v.split(',')
            .find_map(|p| p.trim().strip_prefix("access_token."))
            .map(str::to_owned)
    }) {
        return Some(token);
    }
    query.filter(|t| !t.is_empty()).map(str::to_owned)
}

/// The session if `user` may see it: its practitioner, or the patient linked to its record.
async fn readable(state: &AppState, user: &User, id: &str) -> ApiResult<SessionRow> {
    let reader = match user.role() {
        Role::Practitioner => db::sessions::Reader::Practitioner(&user.id),
        Role::Patient => db::sessions::Reader::Patient(&user.id),
        Role::Admin => return Err(ApiError::not_found("session")),
    };
    db::sessions::find_for(&state.db, id, reader)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))
}

/// A client's feature frame: `{type: feature_frame, timestamp_ms, speaking_rate,
/// overlap_ratio}`, or why it is not one.
fn feature_frame(frame: &[u8]) -> Result<(f64, f64), String> {
    let shape = "a feature_frame {timestamp_ms, speaking_rate, overlap_ratio}";
    let value: Value =
        serde_json::from_slice(frame).map_err(|e| format!("not JSON ({e}); expected {shape}"))?;
    if value["type"] != "feature_frame" || !value["timestamp_ms"].is_i64() {
        return Err(format!("expected {shape}"));
    }
    let number = |name: &str| {
        value[name]
            .as_f64()
            .ok_or_else(|| format!("{name} must be a number"))
    };
    let (speaking_rate, overlap_ratio) = (number("speaking_rate")?, number("overlap_ratio")?);
    if speaking_rate < 0.0 || !(0.0..=1.0).contains(&overlap_ratio) {
        return Err("speaking_rate must be 0 or more and overlap_ratio 0 to 1".into());
    }
    Ok((speaking_rate, overlap_ratio))
}

/// One connection, until it closes.
async fn run(state: AppState, session: SessionRow, socket: WebSocketStream) {
    let (mut sink, mut stream) = socket.split();
    let settings = state.settings.live;
    join(&session.id, 1);
    let events = state.events.subscribe(&session.practitioner_id, None).await;
    let mut events = match events {
        Ok(events) => events,
        Err(err) => {
            let _ = send(
                &mut sink,
                json!({"type": "error", "message": format!("live events are unavailable: {err}")}),
            )
            .await;
            join(&session.id, -1);
            return;
        }
    };
    let _ = send(&mut sink, state_message(&state, &session.id).await).await;
    let mut heartbeat = tokio::time::interval(settings.heartbeat);
    heartbeat.tick().await;
    let mut last_heard = Instant::now();
    let mut refused = 0;
    loop {
        tokio::select! {
            incoming = stream.next() => {
                let Some(Ok(message)) = incoming else { break };
                last_heard = Instant::now();
                let reply = match message {
                    Message::Text(text) => answer(&state, &settings, &session.id, text.as_bytes()).await,
                    Message::Binary(bytes) => answer(&state, &settings, &session.id, &bytes).await,
                    Message::Close(_) => break,
                    _ => Ok(None),
                };
                match reply {
                    Ok(Some(reply)) => { let _ = send(&mut sink, reply).await; }
                    Ok(None) => {}
                    Err(message) => {
                        refused += 1;
                        let _ = send(&mut sink, json!({"type": "error", "message": message})).await;
                        if refused >= MAX_REFUSED {
                            let _ = sink.send(Message::Close(Some((CloseCode::Policy, "too many malformed frames".into())))).await;
                            break;
                        }
                    }
                }
            }
            event = events.next() => {
                let Some(event) = event else { break };
                for message in on_event(&state, &session.id, &event).await {
                    let _ = send(&mut sink, message).await;
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() >= settings.timeout {
                    let _ = sink.send(Message::Close(Some((CloseCode::Away, "no message for too long".into())))).await;
                    break;
                }
                if sink.send(Message::Ping(Vec::new())).await.is_err() {
                    break;
                }
            }
        }
    }
    join(&session.id, -1);
}

/// Counts a connection to `session_id` in (`1`) or out (`-1`).
fn join(session_id: &str, change: isize) {
    let mut participants = PARTICIPANTS.lock().unwrap_or_else(|p| p.into_inner());
    let count = participants.entry(session_id.to_owned()).or_default();
    *count = count.saturating_add_signed(change);
    if *count == 0 {
        participants.remove(session_id);
    }
}

async fn send(sink: &mut (impl futures::Sink<Message> + Unpin), message: Value) -> Result<(), ()> {
    sink.send(Message::Text(message.to_string()))
        .await
        .map_err(|_| ())
}

/// The client's frame answered: a nudge, nothing, or why it was refused.
async fn answer(
    state: &AppState,
    settings: &LiveSettings,
    session_id: &str,
    frame: &[u8],
) -> Result<Option<Value>, String> {
    if frame.len() > MAX_FRAME {
        return Err(format!("a frame is at most {MAX_FRAME} bytes"));
    }
    let (speaking_rate, overlap_ratio) = feature_frame(frame)?;
    let (nudge_type, over, message) = if overlap_ratio > settings.overlap_ratio_threshold {
        (
            "LET_OTHER_SPEAK",
            overlap_ratio / settings.overlap_ratio_threshold,
            "You are talking over each other: let the other person finish.",
        )
    } else if speaking_rate > settings.speaking_rate_threshold {
        (
            "SLOW_DOWN",
            speaking_rate / settings.speaking_rate_threshold,
            "You are speaking fast: slow down a little.",
        )
    } else {
        return Ok(None);
    };
    // One nudge per session per period, whichever connection or replica asks.
    let key = format!("nudge:{session_id}");
    if let Decision::Limited { .. } = state.limiter.hit(&key, 1, settings.nudge_every).await {
        return Ok(None);
    }
    Ok(Some(json!({
        "type": "nudge",
        "nudge_type": nudge_type,
        "intensity": ((over - 1.0) * 2.0).clamp(0.1, 1.0),
        "message": message,
    })))
}

/// What a bus event about the user's records means on this session's channel.
async fn on_event(state: &AppState, session_id: &str, event: &Event) -> Vec<Value> {
    if event.kind != "session.state" || event.data["session_id"] != session_id {
        return Vec::new();
    }
    let status = event.data["status"].as_str().unwrap_or_default();
    let mut messages = Vec::new();
    if let Some(SessionStatus::Transcribing | SessionStatus::Extracting) =
        SessionStatus::parse(status)
    {
        messages.push(json!({
            "type": "session.progress", "session_id": session_id, "status": status,
        }));
    }
    messages.push(state_message(state, session_id).await);
    match SessionStatus::parse(status) {
        Some(SessionStatus::Processed) => {
            messages.push(json!({"type": "notes.ready", "session_id": session_id}))
        }
        Some(SessionStatus::Failed) => messages.push(json!({
            "type": "session.failed",
            "session_id": session_id,
            "failed_stage": event.data["failed_stage"],
            "error": event.data["error"],
        })),
        _ => {}
    }
    messages
}

/// `session.state`: the session as committed now, with what its paid calls cost so far and
/// how many are connected to it here.
async fn state_message(state: &AppState, session_id: &str) -> Value {
    let row = db::sessions::find(&state.db, session_id)
        .await
        .ok()
        .flatten();
    let usage = db::usage::of_session(&state.db, session_id)
        .await
        .unwrap_or_default();
    let participants = PARTICIPANTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(session_id)
        .copied()
        .unwrap_or(0);
    json!({
        "type": "session.state",
        "session_id": session_id,
        "status": row.as_ref().map(|r| r.status().as_str()),
        "failed_stage": row.as_ref().and_then(|r| r.failed_stage.clone()),
        "error": row.as_ref().and_then(|r| r.error.clone()),
        "chunks": row.as_ref().map_or(Value::Null, |r| {
            tend_shared::events::subjects::chunks(r.chunks_done, r.chunks_total)
        }),
        "usage": {
            "calls": usage.len(),
            "cost_usd": usage.iter().map(|u| u.cost_micro_usd).sum::<i64>() as f64 / 1e6,
        },
        "participants": participants,
    })
}
