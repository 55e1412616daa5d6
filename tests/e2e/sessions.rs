//! Recorded sessions end to end, over HTTP, against a fake OpenAI-compatible provider: upload,
//! transcription (chunked when large), extraction, reading, retries, failures, deletion.

use std::time::Duration;

use serde_json::Value;
use tend_shared::db;
use tend_tests::{
    TestApp, TestUser,
    fake_openai::{self, FakeOpenAi, Reply},
    problem, spawn_app_with_env,
};

const PIPELINE_TIMEOUT: Duration = Duration::from_secs(60);

async fn app_with(fake: &FakeOpenAi, extra: &[(&str, &str)]) -> TestApp {
    let mut env: Vec<(String, String)> = fake.env();
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_app_with_env(&pairs).await
}

async fn practitioner_with_patient(app: &TestApp) -> (TestUser, String) {
    let user = app.signed_in_user().await;
    let patient = app.create_patient(&user.access_token, "Alex Example").await;
    (user, patient)
}

async fn upload_ok(app: &TestApp, token: &str, patient: &str, file: Vec<u8>, name: &str) -> Value {
    let resp = app.upload_session(token, patient, file, name, &[]).await;
    let status = resp.status();
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        location.as_deref(),
        Some(format!("/api/v1/sessions/{}", body["id"].as_str().unwrap()).as_str())
    );
    body
}

async fn get_json(app: &TestApp, path: &str, token: &str) -> Value {
    let resp = app.get(path, Some(token)).await;
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn a_recorded_session_goes_from_upload_to_notes() {
    let fake = FakeOpenAi::start().await;
    let app = app_with(&fake, &[]).await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;

    let audio = fake_openai::wav(75.0, 16_000, 1);
    let size = audio.len() as i64;
    let accepted = upload_ok(&app, token, &patient, audio, "session.wav").await;
    assert_eq!(accepted["status"], "uploaded");
    assert_eq!(accepted["source"], "audio");
    assert_eq!(accepted["media_type"], "audio/wav");
    assert_eq!(accepted["size_bytes"], size);
    let id = accepted["id"].as_str().unwrap();

    let (session, seen) = app
        .wait_for_session(id, token, &["processed", "failed"], PIPELINE_TIMEOUT)
        .await;
    assert_eq!(session["status"], "processed", "{session}");
    let order = [
        "uploaded",
        "transcribing",
        "transcribed",
        "extracting",
        "processed",
    ];
    let positions: Vec<usize> = seen
        .iter()
        .map(|s| order.iter().position(|o| o == s).expect("a pipeline status"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "statuses in order: {seen:?}");

    // Stage timings, duration, usage and cost.
    assert!((session["duration_seconds"].as_f64().unwrap() - 75.0).abs() < 0.1, "{session}");
    for stage in ["transcription", "extraction"] {
        let timing = &session["stages"][stage];
        assert!(timing["started_at"].is_string() && timing["finished_at"].is_string(), "{session}");
        assert!(timing["duration_ms"].as_i64().unwrap() >= 0);
    }
    let usage = &session["usage"];
    let calls = usage["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{usage}");
    assert_eq!(calls[0]["stage"], "transcription");
    assert_eq!(calls[0]["model"], fake_openai::TRANSCRIPTION_MODEL);
    assert!((calls[0]["audio_seconds"].as_f64().unwrap() - 75.0).abs() < 0.1);
    assert_eq!(calls[1]["stage"], "extraction");
    assert_eq!(calls[1]["model"], fake_openai::CHAT_MODEL);
    assert_eq!(calls[1]["completion_tokens"], 150);
    // 1.25 audio minutes at $0.006, plus tokens at $0.15 / $0.60 per million.
    let expected = 1.25 * 0.006
        + calls[1]["prompt_tokens"].as_f64().unwrap() * 0.15e-6
        + 150.0 * 0.60e-6;
    assert!((usage["estimated_cost_usd"].as_f64().unwrap() - expected).abs() < 2e-6, "{usage}");

    // The transcript, with timestamps.
    let transcript = get_json(&app, &format!("/api/v1/sessions/{id}/transcript"), token).await;
    let segments = transcript["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 3, "{transcript}");
    assert_eq!(segments[1]["start_ms"], 30_000);
    assert_eq!(segments[2]["end_ms"], 75_000);
    assert!(transcript["text"].as_str().unwrap().contains("segment 2"));

    // The notes.
    let notes = get_json(&app, &format!("/api/v1/sessions/{id}/notes"), token).await;
    let expected_notes = fake_openai::sample_notes();
    for key in expected_notes.as_object().unwrap().keys() {
        assert_eq!(notes[key], expected_notes[key], "{key}");
    }

    // The metrics row for analytics.
    let metrics = db::sessions::metrics(&app.db, id).await.unwrap().expect("metrics row");
    assert_eq!(metrics.mood_score, 2);
    assert_eq!(metrics.mood_trajectory, "improving");
    assert_eq!(metrics.action_item_count, 3);
    assert_eq!(metrics.strategy_count, 2);
    assert_eq!(metrics.risk_flag_count, 0);
    assert_eq!(metrics.duration_ms, Some(75_000));

    // What the provider saw: the key, the model, the fields, the schema; one audio upload
    // under its original form.
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    let calls = fake.transcriptions();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].file_name, "session.wav");
    let chats = fake.chats();
    assert_eq!(chats.len(), 1);
    let prompt = chats[0]["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.starts_with("[00:00] session.wav segment 0."), "{prompt}");

    // The session is listed, and filterable.
    let list = get_json(&app, &format!("/api/v1/sessions?patient_id={patient}&status=processed"), token).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let none = get_json(&app, "/api/v1/sessions?status=failed", token).await;
    assert!(none["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_fifty_minute_mp3_is_cut_into_chunks_and_merged_in_order() {
    let fake = FakeOpenAi::start().await;
    let app = app_with(&fake, &[]).await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;

    // About 50 MB at 128 kbit/s: twice OpenAI's 25 MB limit, so it must be chunked.
    let mp3 = fake_openai::silent_mp3(52.0 * 60.0);
    assert!(mp3.len() > 45_000_000);
    let accepted = upload_ok(&app, token, &patient, mp3, "long.mp3").await;
    assert_eq!(accepted["media_type"], "audio/mpeg");
    let id = accepted["id"].as_str().unwrap();
    let (session, _) = app
        .wait_for_session(id, token, &["processed", "failed"], Duration::from_secs(240))
        .await;
    assert_eq!(session["status"], "processed", "{session}");

    let calls = fake.transcriptions();
    assert!(calls.len() >= 6, "10-minute chunks: {}", calls.len());
    let mut total = 0.0;
    for (i, call) in calls.iter().enumerate() {
        assert_eq!(call.file_name, format!("chunk-{i:04}.wav"));
        assert!(call.size <= 25 * 1024 * 1024, "chunk {i} is {} bytes", call.size);
        total += call.wav_seconds.expect("chunks are WAV");
    }
    assert!((total - 52.0 * 60.0).abs() < 1.0, "chunks cover the recording: {total}");

    // Segments are in order, and each chunk's segments start at the chunk's offset.
    let transcript = get_json(&app, &format!("/api/v1/sessions/{id}/transcript"), token).await;
    let segments = transcript["segments"].as_array().unwrap();
    let mut offset_ms = 0i64;
    let mut last_end = 0i64;
    for (i, call) in calls.iter().enumerate() {
        let first = segments
            .iter()
            .find(|s| s["text"].as_str().unwrap().starts_with(&format!("chunk-{i:04}.wav segment 0")))
            .expect("the chunk's first segment");
        assert_eq!(first["start_ms"].as_i64().unwrap(), offset_ms, "chunk {i}");
        offset_ms += (call.wav_seconds.unwrap() * 1000.0).round() as i64;
    }
    for s in segments {
        let (start, end) = (s["start_ms"].as_i64().unwrap(), s["end_ms"].as_i64().unwrap());
        assert!(start >= last_end - 1 && end >= start, "ordered: {s}");
        last_end = end;
    }
    assert!((session["duration_seconds"].as_f64().unwrap() - 52.0 * 60.0).abs() < 1.0);
    let usage_seconds = session["usage"]["audio_seconds"].as_f64().unwrap();
    assert!((usage_seconds - 52.0 * 60.0).abs() < 1.0, "{usage_seconds}");
}
