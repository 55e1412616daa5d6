//! Exports over HTTP: a session's notes and a patient's progress report rendered as PDF and
//! DOCX by the render_export job, downloaded (streamed, audited) and read back: the PDF's
//! text and the DOCX's XML hold the notes' sentences and the accented names; replays, limits,
//! scoping, expiry (410, then the cleanup removes the file) and deletion.

use std::{io::Read, time::Duration};

use serde_json::{Value, json};
use tend_tests::{
    TestApp, TestUser,
    fake_openai::{Reply, sample_notes},
    problem, spawn_app_with_fake,
};

use tend_tests::VTT;
const SENTENCE: &str = "Hélène Françoise, her sister, came to the second half of the session and described the weeks before the move.";

/// A practitioner named "Zoë Lindqvist" with the patient "Åsa Öberg".
async fn practitioner_with_patient(app: &TestApp) -> (TestUser, String) {
    let user = app.signed_in_user().await;
    let resp = app
        .patch_auth(
            "/api/v1/users/me",
            &user.access_token,
            &json!({"display_name": "Zoë Lindqvist"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let patient = app.create_patient(&user.access_token, "Åsa Öberg").await;
    (user, patient)
}

/// Long notes (they run over several pages) with a risk flag.
fn long_notes() -> Value {
    let mut notes = sample_notes();
    notes["therapist_notes"] = json!(
        (0..60)
            .map(|i| format!("Observation {i}. {SENTENCE}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    notes["risk_flags"] = json!(["Mentioned not wanting to wake up some mornings"]);
    notes
}

async fn processed_session(app: &TestApp, token: &str, patient: &str) -> String {
    let resp = app
        .upload_session(token, patient, VTT.as_bytes().to_vec(), "t.vtt", &[])
        .await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    let (session, _) = app
        .wait_for_session(
            &id,
            token,
            &["processed", "failed"],
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(session["status"], "processed", "{session}");
    id
}

async fn request_export(
    app: &TestApp,
    token: &str,
    body: &Value,
    key: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}/api/v1/exports", app.address))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    req.send().await.unwrap()
}

/// Requests an export and waits until it is ready; returns the export.
async fn ready_export(app: &TestApp, token: &str, body: &Value) -> Value {
    let resp = request_export(app, token, body, None).await;
    let status = resp.status();
    let export: Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{export}");
    wait_ready(app, token, export["id"].as_str().unwrap()).await
}

async fn wait_ready(app: &TestApp, token: &str, id: &str) -> Value {
    let path = format!("/api/v1/exports/{id}");
    app.wait_for_status(&path, token, &["queued", "rendering"], &["ready"])
        .await
}

async fn download(app: &TestApp, token: &str, export: &Value) -> (String, String, Vec<u8>) {
    let resp = app
        .client
        .get(format!(
            "{}{}",
            app.address,
            export["download_url"].as_str().unwrap()
        ))
        .bearer_auth(token)
        .header("User-Agent", "export-test/1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    let bytes = resp.bytes().await.unwrap().to_vec();
    (content_type, disposition, bytes)
}

fn pdf_text(pdf: &[u8]) -> (String, usize) {
    let doc = lopdf::Document::load_mem(pdf).expect("a PDF parser opens it");
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    let text = doc.extract_text(&pages).expect("its text extracts");
    (
        text.split_whitespace().collect::<Vec<_>>().join(" "),
        pages.len(),
    )
}

fn docx_parts(docx: &[u8]) -> (String, Vec<String>) {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(docx)).expect("a ZIP reader opens it");
    let mut xml = String::new();
    zip.by_name("word/document.xml")
        .expect("a Word document")
        .read_to_string(&mut xml)
        .unwrap();
    let media = zip
        .file_names()
        .filter(|n| n.starts_with("word/media/") && n.ends_with(".png"))
        .map(str::to_owned)
        .collect();
    (xml, media)
}

#[tokio::test]
async fn session_notes_render_as_pdf_and_docx_that_read_back() {
    let (app, fake) = spawn_app_with_fake().await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    fake.on_chat([Reply::Content(long_notes().to_string())]);
    let session = processed_session(&app, token, &patient).await;

    // The first request, then its replay: the same export, nothing new started.
    let body = json!({"type": "session_notes", "format": "pdf", "session_id": session});
    let first = request_export(&app, token, &body, Some("notes-pdf-1")).await;
    assert_eq!(first.status(), 202);
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    let first: Value = first.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/exports/{}", first["id"].as_str().unwrap())
    );
    // The job may have started by the time the answer is read back.
    assert!(
        ["queued", "rendering", "ready"].contains(&first["status"].as_str().unwrap()),
        "{first}"
    );
    assert_eq!(first["type"], "session_notes");
    assert!(first["job_id"].is_string());
    let replay = request_export(&app, token, &body, Some("notes-pdf-1")).await;
    assert_eq!(replay.status(), 200);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["id"], first["id"]);
    // The same key for another request is refused, naming the key; the same request with its
    // fields in another order is the same request.
    let other = json!({"type": "session_notes", "format": "docx", "session_id": session});
    let clash = problem(
        request_export(&app, token, &other, Some("notes-pdf-1")).await,
        422,
    )
    .await;
    assert_eq!(clash["errors"][0]["field"], "Idempotency-Key", "{clash}");
    let reordered = json!({"session_id": session, "format": "pdf", "type": "session_notes"});
    let replay = request_export(&app, token, &reordered, Some("notes-pdf-1")).await;
    assert_eq!(replay.status(), 200);
    let export = wait_ready(&app, token, first["id"].as_str().unwrap()).await;
    assert!(export["expires_at"].is_string() && export["size_bytes"].as_i64() > Some(1000));

    let (content_type, disposition, pdf) = download(&app, token, &export).await;
    assert_eq!(content_type, "application/pdf");
    assert!(
        disposition.starts_with("attachment; filename=\"session-notes-"),
        "{disposition}"
    );
    assert!(disposition.contains(".pdf"), "{disposition}");
    let (text, pages) = pdf_text(&pdf);
    for expected in [
        "Session notes",
        "Åsa Öberg",
        "Zoë Lindqvist",
        "Hélène Françoise, her sister, came to the second half of the session",
        "Observation 59.",
        "Risk flags",
        "Mentioned not wanting to wake up some mornings",
        "keep a sleep diary",
        "You talked about your sleep and work.",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from the PDF text"
        );
    }
    assert!(pages >= 2, "long notes wrap onto more pages ({pages})");
    assert!(text.contains(&format!("Page {pages} of {pages}")));

    // The download is in the audit log with where it came from.
    let audit: Vec<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT ip, user_agent, detail FROM audit_logs WHERE action = 'export_downloaded' AND user_id = $1",
    )
    .bind(&user.id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(audit.len(), 1);
    assert!(
        audit[0]
            .0
            .as_deref()
            .is_some_and(|ip| ip.contains("127.0.0.1")),
        "{audit:?}"
    );
    assert_eq!(audit[0].1.as_deref(), Some("export-test/1.0"));
    assert!(
        audit[0]
            .2
            .as_deref()
            .unwrap()
            .contains(export["id"].as_str().unwrap())
    );

    // The same notes as DOCX.
    let export = ready_export(
        &app,
        token,
        &json!({"type": "session_notes", "format": "docx", "session_id": session}),
    )
    .await;
    let (content_type, disposition, docx) = download(&app, token, &export).await;
    assert_eq!(
        content_type,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    );
    assert!(disposition.contains(".docx"), "{disposition}");
    let (xml, _) = docx_parts(&docx);
    for expected in [
        "Åsa Öberg",
        "Zoë Lindqvist",
        "Hélène Françoise, her sister, came to the second half of the session",
        "Mentioned not wanting to wake up some mornings",
    ] {
        assert!(xml.contains(expected), "{expected:?} missing from the DOCX");
    }

    // Listed newest first; patient text never reached a job payload.
    let list: Value = app
        .get("/api/v1/exports", Some(token))
        .await
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["format"], "docx");
    let payloads: Vec<String> =
        sqlx::query_scalar("SELECT payload FROM jobs WHERE kind = 'render_export'")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(payloads.len(), 2);
    assert!(
        payloads
            .iter()
            .all(|p| !p.contains("Hélène") && !p.contains("Åsa"))
    );
}

#[tokio::test]
async fn a_progress_report_has_the_sessions_table_and_the_mood_chart_in_both_formats() {
    let (app, _fake) = spawn_app_with_fake().await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    processed_session(&app, token, &patient).await;
    processed_session(&app, token, &patient).await;

    let export = ready_export(
        &app,
        token,
        &json!({"type": "progress_report", "format": "pdf", "patient_id": patient, "weeks": 4}),
    )
    .await;
    assert_eq!(export["weeks"], 4);
    let (_, _, pdf) = download(&app, token, &export).await;
    let (text, _) = pdf_text(&pdf);
    for expected in [
        "Progress report",
        "Åsa Öberg",
        "Mood over time",
        "Key topics",
        "work stress",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from {text:.600}"
        );
    }
    assert!(text.contains("(4 weeks)"), "{text:.600}");
    let doc = lopdf::Document::load_mem(&pdf).unwrap();
    let images = doc
        .objects
        .values()
        .filter(|o| {
            o.as_stream().is_ok_and(|s| {
                s.dict.get(b"Subtype").and_then(|t| t.as_name()).ok() == Some(b"Image".as_slice())
            })
        })
        .count();
    assert!(images >= 1, "the chart is an image in the PDF");

    let export = ready_export(
        &app,
        token,
        &json!({"type": "progress_report", "format": "docx", "patient_id": patient}),
    )
    .await;
    assert_eq!(export["weeks"], 12, "twelve weeks by default");
    let (_, _, docx) = download(&app, token, &export).await;
    let (xml, media) = docx_parts(&docx);
    assert!(xml.contains("Åsa Öberg") && xml.contains("work stress") && xml.contains("<w:tbl>"));
    assert_eq!(
        media.len(),
        1,
        "the chart is an image in the DOCX: {media:?}"
    );
}

#[tokio::test]
async fn exports_are_refused_clearly_and_scoped_to_their_practitioner() {
    let (app, fake) = spawn_app_with_fake().await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    // A session whose extraction fails for good has no notes.
    fake.on_chat([Reply::Status(400, None)]);
    let resp = app
        .upload_session(token, &patient, VTT.as_bytes().to_vec(), "t.vtt", &[])
        .await;
    let failed: Value = resp.json().await.unwrap();
    let failed = failed["id"].as_str().unwrap().to_owned();
    app.wait_for_session(&failed, token, &["failed"], Duration::from_secs(60))
        .await;
    let resp = request_export(
        &app,
        token,
        &json!({"type": "session_notes", "format": "pdf", "session_id": failed}),
        None,
    )
    .await;
    let body = problem(resp, 422).await;
    assert_eq!(body["errors"][0]["field"], "session_id", "{body}");

    for (bad, field) in [
        (
            json!({"type": "session_notes", "format": "pdf"}),
            "session_id",
        ),
        (
            json!({"type": "progress_report", "format": "pdf", "patient_id": patient, "weeks": 53}),
            "weeks",
        ),
        (
            json!({"type": "progress_report", "format": "pdf", "patient_id": patient, "weeks": 0}),
            "weeks",
        ),
        (
            json!({"type": "progress_report", "format": "odt", "patient_id": patient}),
            "format",
        ),
        (json!({"type": "invoice", "format": "pdf"}), "type"),
        (json!({"format": "pdf"}), "type"),
    ] {
        let resp = request_export(&app, token, &bad, None).await;
        let body = problem(resp, 422).await;
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [field], "{bad} -> {body}");
    }

    // Another practitioner sees none of it.
    let other = app.signed_in_user().await;
    let resp = request_export(
        &app,
        &other.access_token,
        &json!({"type": "progress_report", "format": "pdf", "patient_id": patient}),
        None,
    )
    .await;
    problem(resp, 404).await;
    let mine = ready_export(
        &app,
        token,
        &json!({"type": "progress_report", "format": "pdf", "patient_id": patient, "weeks": 1}),
    )
    .await;
    let id = mine["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/exports/{id}"),
        format!("/api/v1/exports/{id}/download"),
    ] {
        problem(app.get(&path, Some(&other.access_token)).await, 404).await;
    }
    problem(
        app.delete_auth(&format!("/api/v1/exports/{id}"), &other.access_token)
            .await,
        404,
    )
    .await;
    // A patient account cannot export.
    let patient_user = app.signed_in_as("patient").await;
    let resp = request_export(
        &app,
        &patient_user.access_token,
        &json!({"type": "progress_report", "format": "pdf", "patient_id": patient}),
        None,
    )
    .await;
    problem(resp, 403).await;

    // Deleting removes the file.
    let store = app.store().await;
    let key: String = sqlx::query_scalar("SELECT object_key FROM exports WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(store.size(&key).await.unwrap().is_some());
    let resp = app
        .delete_auth(&format!("/api/v1/exports/{id}"), token)
        .await;
    assert_eq!(resp.status(), 204);
    assert!(store.size(&key).await.unwrap().is_none());
    problem(
        app.get(&format!("/api/v1/exports/{id}"), Some(token)).await,
        404,
    )
    .await;
}

#[tokio::test]
async fn twenty_exports_an_hour_then_429_with_retry_after() {
    let (app, _fake) = spawn_app_with_fake().await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let body =
        json!({"type": "progress_report", "format": "pdf", "patient_id": patient, "weeks": 1});
    for i in 0..20 {
        let resp = request_export(&app, &user.access_token, &body, None).await;
        assert_eq!(resp.status(), 202, "request {i}");
    }
    let resp = request_export(&app, &user.access_token, &body, None).await;
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after));
    problem(resp, 429).await;
    // Another account has its own budget.
    let (other, other_patient) = practitioner_with_patient(&app).await;
    let body = json!({"type": "progress_report", "format": "pdf", "patient_id": other_patient});
    assert_eq!(
        request_export(&app, &other.access_token, &body, None)
            .await
            .status(),
        202
    );
}

#[tokio::test]
async fn an_expired_export_answers_410_and_the_cleanup_removes_its_file() {
    let (app, _fake) = spawn_app_with_fake().await;
    let (user, patient) = practitioner_with_patient(&app).await;
    let token = &user.access_token;
    let export = ready_export(
        &app,
        token,
        &json!({"type": "progress_report", "format": "docx", "patient_id": patient, "weeks": 2}),
    )
    .await;
    let id = export["id"].as_str().unwrap();
    let key: String = sqlx::query_scalar("SELECT object_key FROM exports WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    // Eight days on.
    sqlx::query(
        "UPDATE exports SET ready_at = ready_at - $2, expires_at = expires_at - $2 WHERE id = $1",
    )
    .bind(id)
    .bind(8 * 86_400_000_i64)
    .execute(&app.db)
    .await
    .unwrap();
    let resp = app
        .get(&format!("/api/v1/exports/{id}/download"), Some(token))
        .await;
    let body = problem(resp, 410).await;
    assert_eq!(body["type"], "/problems/expired");
    // Before the cleanup has run, the export already reads as its download answers.
    let before: Value = app
        .get(&format!("/api/v1/exports/{id}"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before["status"], "expired", "{before}");
    assert!(before["download_url"].is_null(), "{before}");

    let admin = app.admin_token().await;
    let report = crate::cleanup::cleanup(&app, &admin, true).await;
    assert_eq!(crate::cleanup::category(&report, "expired_exports").0, 1);
    let store = app.store().await;
    assert!(
        store.size(&key).await.unwrap().is_some(),
        "a dry run keeps it"
    );
    let report = crate::cleanup::cleanup(&app, &admin, false).await;
    assert_eq!(crate::cleanup::category(&report, "expired_exports").0, 1);
    assert!(store.size(&key).await.unwrap().is_none());
    let export: Value = app
        .get(&format!("/api/v1/exports/{id}"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(export["status"], "expired", "the row stays: {export}");
    assert!(export["download_url"].is_null());
    problem(
        app.get(&format!("/api/v1/exports/{id}/download"), Some(token))
            .await,
        410,
    )
    .await;
}
