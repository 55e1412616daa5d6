//! Recorded sessions end to end, over HTTP, against a fake OpenAI-compatible provider: upload,
//! transcription (chunked when large), extraction, reading, retries, failures, deletion.

use std::time::Duration;

use serde_json::Value;
use tend_shared::db;
use tend_tests::{
    TestApp, TestUser, VTT,
    fake_openai::{self, FakeOpenAi, Reply},
    problem, spawn_app_with_env,
};

const PIPELINE_TIMEOUT: Duration = Duration::from_secs(60);

async fn app_with(fake: &FakeOpenAi, extra: &[(&str, &str)]) -> TestApp {
    let mut env: Vec<(String, String)> = fake.env();
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
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

/// Uploads, then waits until the session is processed or failed; returns its id and view.
async fn upload_and_wait(
    app: &TestApp,
    token: &str,
    patient: &str,
    file: Vec<u8>,
    name: &str,
) -> (String, Value) {
    let accepted = upload_ok(app, token, patient, file, name).await;
    let id = accepted["id"].as_str().unwrap().to_owned();
    let (session, _) = app
        .wait_for_session(&id, token, &["processed", "failed"], PIPELINE_TIMEOUT)
        .await;
    (id, session)
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
    // As stored; the relay's own pass may already have handed the job to a worker.
    assert!(
        ["uploaded", "transcribing"].contains(&accepted["status"].as_str().unwrap()),
        "{accepted}"
    );
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
        .map(|s| {
            order
                .iter()
                .position(|o| o == s)
                .expect("a pipeline status")
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "statuses in order: {seen:?}"
    );

    // Stage timings, duration, usage and cost.
    assert!(
        (session["duration_seconds"].as_f64().unwrap() - 75.0).abs() < 0.1,
        "{session}"
    );
    for stage in ["transcription", "extraction"] {
        let timing = &session["stages"][stage];
        assert!(
            timing["started_at"].is_string() && timing["finished_at"].is_string(),
            "{session}"
        );
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
    let expected =
        1.25 * 0.006 + calls[1]["prompt_tokens"].as_f64().unwrap() * 0.15e-6 + 150.0 * 0.60e-6;
    assert!(
        (usage["estimated_cost_usd"].as_f64().unwrap() - expected).abs() < 2e-6,
        "{usage}"
    );

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
    let metrics = db::metrics::find(&app.db, id)
        .await
        .unwrap()
        .expect("metrics row");
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
    assert!(
        prompt.starts_with("[00:00] session.wav segment 0."),
        "{prompt}"
    );

    // The jobs carry the session id and nothing else: no patient text in the queue.
    let payloads: Vec<(String,)> = sqlx::query_as(
        "SELECT payload FROM jobs WHERE kind IN ('transcribe_session', 'extract_notes')",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(payloads.len(), 2);
    for (payload,) in payloads {
        let payload: Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(payload, serde_json::json!({"session_id": id}));
    }

    // The session owns its recording: nothing is left for the abandoned-upload sweep.
    let pending: Vec<(String,)> = sqlx::query_as("SELECT object_key FROM pending_uploads")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");

    // The session is listed, and filterable.
    let list = get_json(
        &app,
        &format!("/api/v1/sessions?patient_id={patient}&status=processed"),
        token,
    )
    .await;
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
        .wait_for_session(
            id,
            token,
            &["processed", "failed"],
            Duration::from_secs(240),
        )
        .await;
    assert_eq!(session["status"], "processed", "{session}");

    let calls = fake.transcriptions();
    assert!(calls.len() >= 6, "10-minute chunks: {}", calls.len());
    // The session shows its chunks' progress: all of them done.
    let chunks = calls.len() as i64;
    assert_eq!(
        session["chunks"],
        serde_json::json!({"done": chunks, "total": chunks}),
        "{session}"
    );
    let mut total = 0.0;
    for (i, call) in calls.iter().enumerate() {
        assert_eq!(call.file_name, format!("chunk-{i:04}.wav"));
        assert!(
            call.size <= 25 * 1024 * 1024,
            "chunk {i} is {} bytes",
            call.size
        );
        total += call.wav_seconds.expect("chunks are WAV");
    }
    assert!(
        (total - 52.0 * 60.0).abs() < 1.0,
        "chunks cover the recording: {total}"
    );

    // Segments are in order, and each chunk's segments start at the chunk's offset.
    let transcript = get_json(&app, &format!("/api/v1/sessions/{id}/transcript"), token).await;
    let segments = transcript["segments"].as_array().unwrap();
    let mut offset_ms = 0i64;
    let mut last_end = 0i64;
    for (i, call) in calls.iter().enumerate() {
        let first = segments
            .iter()
            .find(|s| {
                s["text"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("chunk-{i:04}.wav segment 0"))
            })
            .expect("the chunk's first segment");
        assert_eq!(first["start_ms"].as_i64().unwrap(), offset_ms, "chunk {i}");
        offset_ms += (call.wav_seconds.unwrap() * 1000.0).round() as i64;
    }
    for s in segments {
        let (start, end) = (
            s["start_ms"].as_i64().unwrap(),
            s["end_ms"].as_i64().unwrap(),
        );
        assert!(start >= last_end - 1 && end >= start, "ordered: {s}");
        last_end = end;
    }
    assert!((session["duration_seconds"].as_f64().unwrap() - 52.0 * 60.0).abs() < 1.0);
    let usage_seconds = session["usage"]["audio_seconds"].as_f64().unwrap();
    assert!((usage_seconds - 52.0 * 60.0).abs() < 1.0, "{usage_seconds}");
}

#[tokio::test]
async fn an_uploaded_transcript_skips_transcription() {
    let fake = FakeOpenAi::start().await;
    let app = app_with(&fake, &[]).await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    let resp = app
        .upload_session(
            token,
            &patient,
            VTT.as_bytes().to_vec(),
            "notes.txt",
            &[("recorded_at", "2026-11-20T14:00:00+01:00")],
        )
        .await;
    let accepted: Value = resp.json().await.unwrap();
    assert!(
        ["transcribed", "extracting"].contains(&accepted["status"].as_str().unwrap()),
        "{accepted}"
    );
    assert_eq!(accepted["source"], "transcript");
    assert_eq!(accepted["media_type"], "text/vtt");
    assert_eq!(accepted["recorded_at"], "2026-11-20T13:00:00+00:00");
    let id = accepted["id"].as_str().unwrap();
    let (session, _) = app
        .wait_for_session(id, token, &["processed", "failed"], PIPELINE_TIMEOUT)
        .await;
    assert_eq!(session["status"], "processed", "{session}");
    assert!(fake.transcriptions().is_empty(), "no audio was transcribed");
    assert_eq!(session["duration_seconds"], 9.0);
    // The transcription stage happened at upload: it has a start as well as an end.
    let stage = &session["stages"]["transcription"];
    assert!(
        stage["started_at"].is_string() && stage["started_at"] == stage["finished_at"],
        "{session}"
    );

    let transcript = get_json(&app, &format!("/api/v1/sessions/{id}/transcript"), token).await;
    assert_eq!(transcript["segments"][0]["start_ms"], 1000);
    assert_eq!(
        transcript["segments"][0]["text"],
        "Therapist: How was your week?"
    );
    assert_eq!(transcript["segments"][1]["end_ms"], 9000);
    let metrics = db::metrics::find(&app.db, id).await.unwrap().unwrap();
    assert_eq!(
        metrics.session_date,
        chrono::DateTime::parse_from_rfc3339("2026-11-20T13:00:00Z")
            .unwrap()
            .timestamp_millis()
    );
}

#[tokio::test]
async fn a_patient_account_reads_only_the_summaries_of_its_own_sessions() {
    let fake = FakeOpenAi::start().await;
    let app = app_with(&fake, &[]).await;
    let (practitioner, _) = practitioner_with_patient(&app).await;
    let token = &practitioner.access_token;
    let patient_user = app.signed_in_as("patient").await;
    // The practitioner invites the patient's account to a patient record; the patient accepts.
    let sam = &app.create_patient(token, "Sam").await;
    app.invite_and_accept(token, sam, &patient_user).await;
    let other = app.create_patient(token, "Someone Else").await;

    let mine = upload_ok(&app, token, sam, VTT.as_bytes().to_vec(), "t.vtt").await;
    let theirs = upload_ok(&app, token, &other, VTT.as_bytes().to_vec(), "t.vtt").await;
    let mine_id = mine["id"].as_str().unwrap();
    let theirs_id = theirs["id"].as_str().unwrap();
    app.wait_for_session(mine_id, token, &["processed"], PIPELINE_TIMEOUT)
        .await;
    app.wait_for_session(theirs_id, token, &["processed"], PIPELINE_TIMEOUT)
        .await;

    let pt = &patient_user.access_token;
    let list = get_json(&app, "/api/v1/sessions", pt).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["id"], mine_id);
    assert!(items[0]["usage"].is_null() && items[0]["job_id"].is_null());

    let notes = get_json(&app, &format!("/api/v1/sessions/{mine_id}/notes"), pt).await;
    assert_eq!(
        notes["patient_summary"],
        fake_openai::sample_notes()["patient_summary"]
    );
    let keys: Vec<&String> = notes.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["patient_summary", "session_id"], "{notes}");

    // The transcript, another patient's session, and every write are not theirs.
    app.get_problem(&format!("/api/v1/sessions/{mine_id}/transcript"), pt, 403)
        .await;
    app.get_problem(&format!("/api/v1/sessions/{theirs_id}/notes"), pt, 404)
        .await;
    app.get_problem(&format!("/api/v1/sessions/{theirs_id}"), pt, 404)
        .await;
    problem(
        app.delete_auth(&format!("/api/v1/sessions/{mine_id}"), pt)
            .await,
        403,
    )
    .await;
    app.get_problem("/api/v1/patients", pt, 403).await;
    let upload = app
        .upload_session(pt, sam, VTT.as_bytes().to_vec(), "t.vtt", &[])
        .await;
    problem(upload, 403).await;

    // Another practitioner sees none of it: 404, not 403.
    let stranger = app.signed_in_user().await;
    let st = &stranger.access_token;
    app.get_problem(&format!("/api/v1/sessions/{mine_id}"), st, 404)
        .await;
    app.get_problem(&format!("/api/v1/sessions/{mine_id}/notes"), st, 404)
        .await;
    app.get_problem(&format!("/api/v1/patients/{sam}"), st, 404)
        .await;
    problem(
        app.delete_auth(&format!("/api/v1/sessions/{mine_id}"), st)
            .await,
        404,
    )
    .await;
    let resp = app
        .post_empty(&format!("/api/v1/sessions/{mine_id}/retry"), st)
        .await;
    problem(resp, 404).await;
    let upload = app
        .upload_session(st, sam, VTT.as_bytes().to_vec(), "t.vtt", &[])
        .await;
    problem(upload, 404).await;
    assert!(
        get_json(&app, "/api/v1/sessions", st).await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_rate_limited_transcription_waits_for_retry_after_then_succeeds() {
    let fake = FakeOpenAi::start().await;
    fake.on_transcription([Reply::Status(429, Some(1))]);
    let app = app_with(&fake, &[]).await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    let accepted = upload_ok(
        &app,
        token,
        &patient,
        fake_openai::wav(5.0, 16_000, 1),
        "a.wav",
    )
    .await;
    let id = accepted["id"].as_str().unwrap();
    let job_id = accepted["job_id"].as_str().unwrap();

    let (session, _) = app
        .wait_for_session(id, token, &["processed", "failed"], PIPELINE_TIMEOUT)
        .await;
    assert_eq!(session["status"], "processed", "{session}");
    assert!(
        session["error"].is_null(),
        "the error clears on success: {session}"
    );
    let job = db::jobs::find(&app.db, job_id).await.unwrap().unwrap();
    assert_eq!(job.attempts, 2, "{job:?}");
    // Retry-After: 1 is honoured instead of the 30 s backoff.
    let calls = fake.transcriptions();
    assert_eq!(calls.len(), 2);
    let gap = calls[1].received_at - calls[0].received_at;
    assert!(
        gap >= Duration::from_millis(900) && gap < Duration::from_secs(10),
        "retried after {gap:?}"
    );
}

#[tokio::test]
async fn a_provider_outage_is_retried_with_backoff_and_shown_on_the_session() {
    let fake = FakeOpenAi::start().await;
    fake.on_chat([Reply::Status(500, None)]);
    let app = app_with(&fake, &[]).await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    let accepted = upload_ok(&app, token, &patient, VTT.as_bytes().to_vec(), "t.vtt").await;
    let id = accepted["id"].as_str().unwrap();
    let job = app
        .wait_for_job(
            accepted["job_id"].as_str().unwrap(),
            token,
            &["failed", "done"],
        )
        .await;
    assert_eq!(job["state"], "failed", "{job}");
    let run_at = chrono::DateTime::parse_from_rfc3339(job["run_at"].as_str().unwrap()).unwrap();
    let wait = run_at
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!(wait >= 15, "backed off about 30 s: {wait} s");
    let session = get_json(&app, &format!("/api/v1/sessions/{id}"), token).await;
    assert_eq!(
        session["status"], "extracting",
        "still in its stage while retried: {session}"
    );
    assert!(
        session["error"].as_str().unwrap().contains("500"),
        "{session}"
    );
}

#[tokio::test]
async fn a_refused_key_fails_the_stage_at_once_and_retry_resumes_it() {
    let fake = FakeOpenAi::start().await;
    fake.on_transcription([Reply::Status(401, None)]);
    let app = app_with(&fake, &[]).await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    let (id, session) = upload_and_wait(
        &app,
        token,
        &patient,
        fake_openai::wav(5.0, 16_000, 1),
        "a.wav",
    )
    .await;
    let id = id.as_str();
    assert_eq!(session["status"], "failed");
    assert_eq!(session["failed_stage"], "transcription");
    let error = session["error"].as_str().unwrap();
    assert!(
        error.contains("OPENAI_API_KEY") && error.contains("401"),
        "{error}"
    );
    let job = app
        .wait_for_job(session["job_id"].as_str().unwrap(), token, &["dead"])
        .await;
    assert_eq!(job["attempts"], 1, "not retried: {job}");

    // Extraction cannot be re-run before there is a transcript.
    let resp = app
        .post_empty(&format!("/api/v1/sessions/{id}/extract-notes"), token)
        .await;
    problem(resp, 409).await;
    // Retry resumes from transcription.
    let resp = app
        .post_empty(&format!("/api/v1/sessions/{id}/retry"), token)
        .await;
    assert_eq!(resp.status(), 202);
    let queued: Value = resp.json().await.unwrap();
    assert_eq!(queued["status"], "uploaded");
    assert_ne!(queued["job_id"], session["job_id"]);
    let (session, _) = app
        .wait_for_session(id, token, &["failed", "processed"], PIPELINE_TIMEOUT)
        .await;
    assert_eq!(session["status"], "processed", "{session}");
    assert!(session["failed_stage"].is_null() && session["error"].is_null());
    // A processed session is not "failed": retrying it is a conflict.
    let resp = app
        .post_empty(&format!("/api/v1/sessions/{id}/retry"), token)
        .await;
    problem(resp, 409).await;
}

#[tokio::test]
async fn notes_that_miss_the_schema_get_one_corrective_retry_at_temperature_zero() {
    let fake = FakeOpenAi::start().await;
    fake.on_chat([Reply::InvalidNotes]);
    let app = app_with(&fake, &[]).await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    let (id, session) =
        upload_and_wait(&app, token, &patient, VTT.as_bytes().to_vec(), "t.vtt").await;
    let id = id.as_str();
    assert_eq!(session["status"], "processed", "{session}");
    let chats = fake.chats();
    assert_eq!(chats.len(), 2);
    assert_eq!(chats[0]["temperature"], 0.2);
    assert_eq!(chats[1]["temperature"], 0.0);
    let messages = chats[1]["messages"].as_array().unwrap();
    let last = messages.last().unwrap()["content"].as_str().unwrap();
    assert!(
        last.contains("not valid") && last.contains("key_topics"),
        "{last}"
    );
    assert_eq!(
        session["usage"]["calls"].as_array().unwrap().len(),
        2,
        "both calls are billed"
    );

    // Twice wrong: the stage fails for good, and says why.
    fake.on_chat([Reply::InvalidNotes, Reply::InvalidNotes]);
    let resp = app
        .post_empty(&format!("/api/v1/sessions/{id}/extract-notes"), token)
        .await;
    assert_eq!(resp.status(), 202);
    let (session, _) = app
        .wait_for_session(id, token, &["failed"], PIPELINE_TIMEOUT)
        .await;
    assert_eq!(session["failed_stage"], "extraction");
    assert!(
        session["error"]
            .as_str()
            .unwrap()
            .contains("did not match the notes schema, twice")
    );
    // The earlier notes stay readable.
    let notes = get_json(&app, &format!("/api/v1/sessions/{id}/notes"), token).await;
    assert!(notes["key_topics"].is_array());
    // And it can be retried from extraction.
    let resp = app
        .post_empty(&format!("/api/v1/sessions/{id}/retry"), token)
        .await;
    let queued: Value = resp.json().await.unwrap();
    assert_eq!(queued["status"], "transcribed");
    let (session, _) = app
        .wait_for_session(id, token, &["failed", "processed"], PIPELINE_TIMEOUT)
        .await;
    assert_eq!(session["status"], "processed");
}

#[tokio::test]
async fn a_broken_answer_and_a_slow_provider_are_transient() {
    let fake = FakeOpenAi::start().await;
    fake.on_transcription([Reply::BrokenBody]);
    fake.on_chat([Reply::Slow(Duration::from_secs(3))]);
    let app = app_with(&fake, &[("OPENAI_TIMEOUT_SECS", "1")]).await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    let accepted = upload_ok(
        &app,
        token,
        &patient,
        fake_openai::wav(5.0, 16_000, 1),
        "a.wav",
    )
    .await;
    let job = app
        .wait_for_job(
            accepted["job_id"].as_str().unwrap(),
            token,
            &["failed", "done", "dead"],
        )
        .await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap()
            .contains("not the expected JSON"),
        "{job}"
    );

    let resp = app
        .upload_session(token, &patient, VTT.as_bytes().to_vec(), "t.vtt", &[])
        .await;
    let accepted: Value = resp.json().await.unwrap();
    let job = app
        .wait_for_job(
            accepted["job_id"].as_str().unwrap(),
            token,
            &["failed", "done", "dead"],
        )
        .await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap()
            .contains("did not answer in time"),
        "{job}"
    );
}

#[tokio::test]
async fn audio_the_provider_refuses_as_too_large_fails_with_a_clear_message() {
    // The provider's real limit is lower than the one Tend was told.
    let fake = FakeOpenAi::start_with_limit(100_000).await;
    let app = app_with(&fake, &[]).await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    let (_, session) = upload_and_wait(
        &app,
        token,
        &patient,
        fake_openai::wav(10.0, 16_000, 1),
        "a.wav",
    )
    .await;
    assert_eq!(session["status"], "failed");
    let error = session["error"].as_str().unwrap();
    assert!(
        error.contains("413") && error.contains("TRANSCRIPTION_MAX_UPLOAD_BYTES"),
        "{error}"
    );

    // Told the real limit, Tend chunks the same audio and succeeds.
    let app = app_with(&fake, &[("TRANSCRIPTION_MAX_UPLOAD_BYTES", "100000")]).await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    let (_, session) = upload_and_wait(
        &app,
        token,
        &patient,
        fake_openai::wav(10.0, 16_000, 1),
        "a.wav",
    )
    .await;
    assert_eq!(session["status"], "processed", "{session}");
}

#[tokio::test]
async fn without_an_api_key_paid_stages_fail_clearly() {
    let app = spawn_app_with_env(&[]).await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    let (_, session) = upload_and_wait(
        &app,
        token,
        &patient,
        fake_openai::wav(2.0, 16_000, 1),
        "a.wav",
    )
    .await;
    assert_eq!(session["status"], "failed");
    assert!(
        session["error"]
            .as_str()
            .unwrap()
            .contains("OPENAI_API_KEY is not set"),
        "{session}"
    );
}

#[tokio::test]
async fn a_local_provider_needs_no_api_key() {
    let fake = FakeOpenAi::start().await;
    fake.needs_no_key();
    let app = app_with(&fake, &[]).await;
    assert!(!app.env.contains_key("OPENAI_API_KEY"));
    let (user, patient) = practitioner_with_patient(&app).await;
    let (_, session) = upload_and_wait(
        &app,
        &user.access_token,
        &patient,
        fake_openai::wav(2.0, 16_000, 1),
        "a.wav",
    )
    .await;
    assert_eq!(session["status"], "processed", "{session}");
}

#[tokio::test]
async fn a_long_transcript_is_extracted_in_parts_and_combined() {
    let fake = FakeOpenAi::start().await;
    let app = app_with(&fake, &[("EXTRACTION_CONTEXT_TOKENS", "1000")]).await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    // About 10,000 characters: five parts of at most 2,000 (500 tokens each).
    let text: String = (0..200)
        .map(|i| format!("Line {i:03}: we talked about sleep and work again.\n"))
        .collect();
    let accepted = upload_ok(&app, token, &patient, text.into_bytes(), "t.txt").await;
    assert_eq!(accepted["media_type"], "text/plain");
    let id = accepted["id"].as_str().unwrap();
    let (session, _) = app
        .wait_for_session(id, token, &["failed", "processed"], PIPELINE_TIMEOUT)
        .await;
    assert_eq!(session["status"], "processed", "{session}");
    let chats = fake.chats();
    let parts: Vec<&Value> = chats
        .iter()
        .filter(|c| {
            c["messages"][1]["content"]
                .as_str()
                .unwrap()
                .contains("holds part")
        })
        .collect();
    assert!(parts.len() >= 5, "{} parts", parts.len());
    let mut seen = String::new();
    for part in &parts {
        seen.push_str(part["messages"][2]["content"].as_str().unwrap());
        seen.push('\n');
    }
    for i in [0, 99, 199] {
        assert!(seen.contains(&format!("Line {i:03}:")), "line {i} was sent");
    }
    let combines = chats
        .iter()
        .filter(|c| {
            c["messages"][1]["content"]
                .as_str()
                .unwrap()
                .contains("Combine them")
        })
        .count();
    assert!(combines >= 1, "the parts were combined");
}

#[tokio::test]
async fn notes_can_be_extracted_again_and_replace_the_metrics() {
    let fake = FakeOpenAi::start().await;
    let app = app_with(&fake, &[]).await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    let accepted = upload_ok(&app, token, &patient, VTT.as_bytes().to_vec(), "t.vtt").await;
    let id = accepted["id"].as_str().unwrap();
    app.wait_for_session(id, token, &["processed"], PIPELINE_TIMEOUT)
        .await;
    let first = db::metrics::find(&app.db, id).await.unwrap().unwrap();

    let resp = app
        .post_empty(&format!("/api/v1/sessions/{id}/extract-notes"), token)
        .await;
    assert_eq!(resp.status(), 202);
    let queued: Value = resp.json().await.unwrap();
    assert_eq!(queued["status"], "transcribed");
    let job = app
        .wait_for_job(queued["job_id"].as_str().unwrap(), token, &["done", "dead"])
        .await;
    assert_eq!(job["state"], "done");
    let session = get_json(&app, &format!("/api/v1/sessions/{id}"), token).await;
    assert_eq!(session["status"], "processed");
    let stages: Vec<&str> = session["usage"]["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["extraction", "extraction"]);
    let second = db::metrics::find(&app.db, id).await.unwrap().unwrap();
    assert_eq!(second.mood_score, first.mood_score);
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT COUNT(*) FROM session_metrics WHERE session_id = $1")
            .bind(id)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(rows[0].0, 1, "one metrics row per session");
}

#[tokio::test]
async fn an_upload_retried_with_its_idempotency_key_makes_one_session() {
    let app = spawn_app_with_env(&[]).await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    let send = |key: &'static str| {
        let form = reqwest::multipart::Form::new()
            .text("patient_id", patient.clone())
            .part(
                "file",
                reqwest::multipart::Part::bytes(fake_openai::wav(1.0, 16_000, 1)),
            );
        app.client
            .post(format!("{}/api/v1/sessions", app.address))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .multipart(form)
            .send()
    };
    let first = send("upload-7f3c").await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = send("upload-7f3c").await.unwrap();
    assert_eq!(again.status(), 200, "a replay");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    let other = send("upload-8a1d").await.unwrap();
    assert_eq!(other.status(), 202);

    let list = get_json(&app, "/api/v1/sessions", token).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(app.store().await.list("sessions/").await.unwrap().len(), 2);
    // Another practitioner's identical key is theirs alone.
    let stranger = app.signed_in_user().await;
    let theirs = app.create_patient(&stranger.access_token, "Theirs").await;
    let form = reqwest::multipart::Form::new()
        .text("patient_id", theirs)
        .part(
            "file",
            reqwest::multipart::Part::bytes(VTT.as_bytes().to_vec()),
        );
    let resp = app
        .client
        .post(format!("{}/api/v1/sessions", app.address))
        .bearer_auth(&stranger.access_token)
        .header("idempotency-key", "upload-7f3c")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);

    let bad = problem(send("has space").await.unwrap(), 422).await;
    assert_eq!(bad["errors"][0]["field"], "Idempotency-Key");
    // The same key with another recording is a mistake the client must hear of.
    let longer = reqwest::multipart::Form::new()
        .text("patient_id", patient.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(fake_openai::wav(2.0, 16_000, 1)),
        );
    let clash = app
        .client
        .post(format!("{}/api/v1/sessions", app.address))
        .bearer_auth(token)
        .header("idempotency-key", "upload-7f3c")
        .multipart(longer)
        .send()
        .await
        .unwrap();
    let clash = problem(clash, 422).await;
    assert_eq!(clash["errors"][0]["field"], "Idempotency-Key", "{clash}");
    // Keys outside the documented form are refused, never ignored.
    let too_long = "k".repeat(256);
    let non_ascii = reqwest::header::HeaderValue::from_bytes("clé-1".as_bytes()).unwrap();
    for key in [
        reqwest::header::HeaderValue::from_str(&too_long).unwrap(),
        non_ascii,
    ] {
        let resp = app
            .client
            .post(format!("{}/api/v1/sessions", app.address))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .multipart(reqwest::multipart::Form::new().text("patient_id", patient.clone()))
            .send()
            .await
            .unwrap();
        let bad = problem(resp, 422).await;
        assert_eq!(bad["errors"][0]["field"], "Idempotency-Key", "{bad}");
    }
    // Neither the replay's nor the clash's copy was kept.
    assert_eq!(app.store().await.list("sessions/").await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_retried_transcription_sends_only_the_chunks_it_lacks() {
    let fake = FakeOpenAi::start().await;
    // The third chunk is rate limited once.
    fake.on_transcription([Reply::Ok, Reply::Ok, Reply::Status(429, Some(1))]);
    let app = app_with(&fake, &[("TRANSCRIPTION_MAX_UPLOAD_BYTES", "100000")]).await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    let (id, session) = upload_and_wait(
        &app,
        token,
        &patient,
        fake_openai::wav(12.0, 16_000, 1),
        "a.wav",
    )
    .await;
    let id = id.as_str();
    assert_eq!(session["status"], "processed", "{session}");

    let names: Vec<String> = fake
        .transcriptions()
        .into_iter()
        .map(|c| c.file_name)
        .collect();
    let chunks = names
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert!(chunks >= 4, "{names:?}");
    assert_eq!(
        names.len(),
        chunks + 1,
        "only the refused chunk was sent twice: {names:?}"
    );
    assert_eq!(names[2], names[3]);
    // Billed once per chunk: twelve seconds in all.
    let billed = session["usage"]["audio_seconds"].as_f64().unwrap();
    assert!((billed - 12.0).abs() < 0.01, "{billed}");
    // The kept chunks are gone once the transcript is stored.
    let kept: Vec<(i64,)> = sqlx::query_as("SELECT COUNT(*) FROM transcription_chunks")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(kept[0].0, 0);
    let transcript = get_json(&app, &format!("/api/v1/sessions/{id}/transcript"), token).await;
    let ends: Vec<i64> = transcript["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["end_ms"].as_i64().unwrap())
        .collect();
    assert!(ends.windows(2).all(|w| w[0] <= w[1]), "{ends:?}");
    assert_eq!(*ends.last().unwrap(), 12_000);
}

#[tokio::test]
async fn a_session_whose_last_attempt_is_lost_with_its_worker_says_failed_and_can_be_retried() {
    let fake = FakeOpenAi::start().await;
    // The first worker's transcription hangs until that worker dies.
    fake.on_transcription([Reply::Slow(Duration::from_secs(3600))]);
    let app = tend_tests::spawn_app_with(tend_tests::AppOptions {
        api_only: true,
        env: fake.env(),
    })
    .await;
    let doomed = app.spawn_worker(&[]);
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    let accepted = upload_ok(
        &app,
        token,
        &patient,
        fake_openai::wav(5.0, 16_000, 1),
        "a.wav",
    )
    .await;
    let id = accepted["id"].as_str().unwrap();
    let job_id = accepted["job_id"].as_str().unwrap();
    tend_tests::eventually(
        "the provider to receive the audio",
        PIPELINE_TIMEOUT,
        || async { Ok(fake.transcriptions().len() == 1) },
    )
    .await
    .unwrap();
    // This attempt is the job's last one.
    sqlx::query("UPDATE jobs SET max_attempts = attempts WHERE id = $1")
        .bind(job_id)
        .execute(&app.db)
        .await
        .unwrap();

    doomed.kill();
    let survivor = app.spawn_worker(&[]);
    let (session, _) = app
        .wait_for_session(id, token, &["failed", "processed"], PIPELINE_TIMEOUT)
        .await;
    assert_eq!(session["status"], "failed", "{session}");
    assert_eq!(session["failed_stage"], "transcription");
    let error = session["error"].as_str().unwrap();
    assert!(error.contains("workers were lost"), "{error}");
    let job = app.wait_for_job(job_id, token, &["dead"]).await;
    assert_eq!(
        job["attempts"], 1,
        "only the attempt that ran counts: {job}"
    );
    assert_eq!(
        fake.transcriptions().len(),
        1,
        "the lost job was not run again"
    );

    // The practitioner can retry it, and it goes through.
    let resp = app
        .post_empty(&format!("/api/v1/sessions/{id}/retry"), token)
        .await;
    assert_eq!(resp.status(), 202);
    let (session, _) = app
        .wait_for_session(id, token, &["failed", "processed"], PIPELINE_TIMEOUT)
        .await;
    assert_eq!(session["status"], "processed", "{session}");
    survivor.terminate().await;
}

/// The README's "Try it" uploads the files in `examples/`: both go through the pipeline.
#[tokio::test]
async fn the_sample_recording_and_transcript_in_examples_are_processed() {
    let fake = FakeOpenAi::start().await;
    let app = app_with(&fake, &[]).await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for (file, source) in [("session.ogg", "audio"), ("session.vtt", "transcript")] {
        let bytes = std::fs::read(examples.join(file)).unwrap();
        let accepted = upload_ok(&app, token, &patient, bytes, file).await;
        assert_eq!(accepted["source"], source, "{accepted}");
        let id = accepted["id"].as_str().unwrap();
        let (session, _) = app
            .wait_for_session(id, token, &["processed", "failed"], PIPELINE_TIMEOUT)
            .await;
        assert_eq!(session["status"], "processed", "{file}: {session}");
    }
    assert_eq!(
        fake.transcriptions().len(),
        1,
        "only the recording is transcribed"
    );
}
