//! The live session channel over a real WebSocket: a client sees a processed upload's states
//! in order, ending in `notes.ready`; nudges follow the thresholds and the rate limit; a
//! foreign session is a 404; malformed frames are refused, the fifth closes the connection
//! with 1008, and other connections carry on.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tend_tests::{
    TestApp,
    fake_openai::{FakeOpenAi, Reply},
    spawn_app_with_env,
};
use tokio_tungstenite::tungstenite::{
    Message, client::IntoClientRequest, http::HeaderValue, protocol::frame::coding::CloseCode,
};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to `id`'s channel with `token` as a bearer header.
async fn connect(app: &TestApp, id: &str, token: &str) -> Result<Socket, u16> {
    let url = format!(
        "{}/api/v1/sessions/{id}/live",
        app.address.replace("http", "ws")
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(err) => panic!("connecting: {err}"),
    }
}

/// The next JSON message (pings skipped).
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a message in time")
            .expect("the socket open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

async fn frame(socket: &mut Socket, speaking_rate: f64, overlap_ratio: f64) {
    let frame = json!({
        "type": "feature_frame",
        "timestamp_ms": 1000,
        "speaking_rate": speaking_rate,
        "overlap_ratio": overlap_ratio,
    });
    socket.send(Message::text(frame.to_string())).await.unwrap();
}

#[tokio::test]
async fn a_client_sees_its_session_processed_and_gets_nudges_within_the_limits() {
    let fake = FakeOpenAi::start().await;
    // The extraction waits, so the client connects while it is under way.
    fake.on_chat([Reply::Slow(Duration::from_secs(2))]);
    let mut env = fake.env();
    env.push(("NUDGE_RATE_LIMIT_SECONDS".into(), "3600".into()));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with_env(&pairs).await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let patient = app.create_patient(token, "Client").await;
    let session = app.upload_transcript(token, &patient).await;
    let id = session["id"].as_str().unwrap();

    let mut socket = connect(&app, id, token).await.expect("connected");
    let first = next(&mut socket).await;
    assert_eq!(first["type"], "session.state", "{first}");
    assert_eq!(first["participants"], 1, "{first}");
    // Its states as they change, to the notes.
    let mut seen = vec![first["status"].as_str().unwrap().to_owned()];
    loop {
        let message = next(&mut socket).await;
        if message["type"] == "session.state" {
            let status = message["status"].as_str().unwrap().to_owned();
            if seen.last() != Some(&status) {
                seen.push(status);
            }
        }
        if message["type"] == "notes.ready" {
            break;
        }
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("processed"),
        "{seen:?}"
    );
    let order = ["transcribed", "extracting", "processed"];
    let positions: Vec<usize> = seen
        .iter()
        .filter_map(|s| order.iter().position(|o| o == s))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "in order: {seen:?}"
    );

    // Below the thresholds: nothing (the next answer is the error for a malformed frame);
    // above: one nudge, then none within the period (again the error comes first).
    frame(&mut socket, 2.0, 0.1).await;
    socket.send(Message::text("{not json")).await.unwrap();
    let error = next(&mut socket).await;
    assert_eq!(
        error["type"], "error",
        "no nudge below the thresholds: {error}"
    );
    frame(&mut socket, 4.5, 0.1).await;
    let nudge = next(&mut socket).await;
    assert_eq!(
        (&nudge["type"], &nudge["nudge_type"]),
        (&json!("nudge"), &json!("SLOW_DOWN")),
        "{nudge}"
    );
    frame(&mut socket, 0.5, 0.9).await;
    socket.send(Message::text("{not json")).await.unwrap();
    let error = next(&mut socket).await;
    assert_eq!(error["type"], "error", "one nudge per period: {error}");
}

#[tokio::test]
async fn foreign_sessions_are_404_and_malformed_frames_close_only_their_connection() {
    let fake = FakeOpenAi::start().await;
    let pairs: Vec<(String, String)> = fake.env();
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let app = spawn_app_with_env(&pairs).await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let patient = app.create_patient(token, "Client").await;
    let session = app.upload_transcript(token, &patient).await;
    let id = session["id"].as_str().unwrap();

    let other = app.signed_in_user().await;
    assert_eq!(
        connect(&app, id, &other.access_token).await.err(),
        Some(404)
    );
    assert_eq!(connect(&app, id, "not-a-token").await.err(), Some(401));

    let mut bad = connect(&app, id, token).await.unwrap();
    let mut good = connect(&app, id, token).await.unwrap();
    next(&mut bad).await;
    next(&mut good).await;
    let oversized = format!(
        "{{\"type\":\"feature_frame\",\"pad\":\"{}\"}}",
        "x".repeat(8000)
    );
    bad.send(Message::text(oversized)).await.unwrap();
    assert_eq!(next(&mut bad).await["type"], "error");
    for _ in 0..4 {
        bad.send(Message::text("[1,2")).await.unwrap();
    }
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), bad.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close: {other:?}"),
        }
    };
    assert_eq!(closed.map(|f| f.code), Some(CloseCode::Policy));
    // The other connection still answers.
    frame(&mut good, 9.0, 0.0).await;
    assert_eq!(next(&mut good).await["type"], "nudge");
}
