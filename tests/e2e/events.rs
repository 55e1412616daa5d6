//! Live events through HTTP: `GET /api/v1/events` streams what the caller's sessions became,
//! in order, as Server-Sent Events; a client that reconnects with `Last-Event-ID` gets what it
//! missed first; nobody else's events reach it.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tend_tests::{TestApp, problem, spawn_app_with_fake};

/// One received event.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    kind: String,
    data: Value,
}

/// An open event stream.
struct Events {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl Events {
    async fn open(app: &TestApp, token: &str, last_event_id: Option<&str>) -> Self {
        let mut request = app
            .client
            .get(format!("{}/api/v1/events", app.address))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            body: resp.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or a failure after `within`.
    async fn next(&mut self, within: Duration) -> Received {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
                        .map(str::to_owned)
                };
                if let (Some(id), Some(kind), Some(data)) =
                    (field("id"), field("event"), field("data"))
                {
                    let data = serde_json::from_str(&data).unwrap();
                    return Received { id, kind, data };
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .expect("an event in time")
                .expect("the stream open")
                .unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The statuses of session `id`'s events until it reads `last`.
    async fn statuses_until(&mut self, id: &str, last: &str) -> (Vec<String>, String) {
        let mut statuses = Vec::new();
        loop {
            let event = self.next(Duration::from_secs(30)).await;
            if event.kind != "session.state" || event.data["session_id"] != id {
                continue;
            }
            let status = event.data["status"].as_str().unwrap().to_owned();
            statuses.push(status.clone());
            if status == last {
                return (statuses, event.id);
            }
        }
    }
}

#[tokio::test]
async fn a_client_follows_its_sessions_live_and_resumes_after_a_reconnect() {
    let (app, _fake) = spawn_app_with_fake().await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let patient = app.create_patient(token, "Client").await;

    let mut events = Events::open(&app, token, None).await;
    let first = app.upload_transcript(token, &patient).await;
    let first_id = first["id"].as_str().unwrap();
    let (statuses, last_id) = events.statuses_until(first_id, "processed").await;
    assert_eq!(
        statuses,
        ["extracting", "processed"],
        "in the order they happened"
    );
    drop(events);

    // Disconnected, the client misses a session's whole processing.
    let second = app.upload_transcript(token, &patient).await;
    let second_id = second["id"].as_str().unwrap();
    app.wait_for_session(second_id, token, &["processed"], Duration::from_secs(30))
        .await;
    let mut resumed = Events::open(&app, token, Some(&last_id)).await;
    let (statuses, _) = resumed.statuses_until(second_id, "processed").await;
    assert_eq!(
        statuses,
        ["extracting", "processed"],
        "replayed from the log"
    );

    // Nobody else's events: another user resuming from the start sees none of these.
    let other = app.signed_in_user().await;
    let mut theirs = Events::open(&app, &other.access_token, Some("0")).await;
    let mine = tokio::time::timeout(
        Duration::from_millis(500),
        theirs.next(Duration::from_secs(1)),
    )
    .await;
    assert!(mine.is_err(), "another user's stream stays quiet: {mine:?}");

    // A malformed Last-Event-ID is refused with a machine-readable body.
    let resp = app
        .client
        .get(format!("{}/api/v1/events", app.address))
        .bearer_auth(token)
        .header("Last-Event-ID", "not an id")
        .send()
        .await
        .unwrap();
    let body = problem(resp, 422).await;
    assert_eq!(body["errors"][0]["field"], "Last-Event-ID", "{body}");
    // Signed-out callers get no stream.
    let resp = app.get("/api/v1/events", None).await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn a_cancelled_session_is_reported_live() {
    let (app, fake) = spawn_app_with_fake().await;
    fake.on_chat([tend_tests::fake_openai::Reply::Slow(Duration::from_secs(
        20,
    ))]);
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let patient = app.create_patient(token, "Client").await;
    let mut events = Events::open(&app, token, None).await;
    let session = app.upload_transcript(token, &patient).await;
    let id = session["id"].as_str().unwrap();
    events.statuses_until(id, "extracting").await;
    let resp = app
        .post_empty(&format!("/api/v1/sessions/{id}/cancel"), token)
        .await;
    assert_eq!(resp.status(), 200);
    let (statuses, _) = events.statuses_until(id, "cancelled").await;
    assert_eq!(statuses.last().map(String::as_str), Some("cancelled"));
}
