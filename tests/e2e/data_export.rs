//! The personal data export over HTTP: a practitioner's ZIP holds the account, its audit
//! trail, patients, sessions with transcripts and notes, the uploaded files and rendered
//! documents, with a README; a patient account's holds what it may read; the owner is
//! mailed the link; replays, the 3-a-day limit, expiry, and erasure of the archives.

use std::{io::Read, time::Duration};

use serde_json::{Value, json};
use tend_tests::{TestApp, problem, spawn_app_with_fake};

const VTT: &str = "WEBVTT\n\n00:00:01.000 --> 00:00:04.500\n<v Therapist>How was your week, Åsa?\n\n00:00:05.000 --> 00:00:09.000\n<v Client>Better. I slept more.\n";

async fn request(app: &TestApp, token: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}/api/v1/users/me/data-export", app.address))
        .bearer_auth(token);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    req.send().await.unwrap()
}

async fn wait_ready(app: &TestApp, token: &str, id: &str) -> Value {
    let path = format!("/api/v1/users/me/data-exports/{id}");
    app.wait_for_status(&path, token, &["queued", "building"], &["ready"])
        .await
}

/// Asks for an export, waits, downloads it: the archive's files by name.
async fn exported(app: &TestApp, token: &str) -> (Value, Vec<(String, Vec<u8>)>) {
    let resp = request(app, token, None).await;
    assert_eq!(resp.status(), 202);
    let export: Value = resp.json().await.unwrap();
    let export = wait_ready(app, token, export["id"].as_str().unwrap()).await;
    let resp = app
        .get(export["download_url"].as_str().unwrap(), Some(token))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let bytes = resp.bytes().await.unwrap().to_vec();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a ZIP reader opens it");
    let mut files = Vec::new();
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).unwrap();
        let mut data = Vec::new();
        file.read_to_end(&mut data).unwrap();
        files.push((file.name().to_owned(), data));
    }
    (export, files)
}

fn json_file(files: &[(String, Vec<u8>)], name: &str) -> Value {
    let (_, data) = files
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} in the archive"));
    serde_json::from_slice(data).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

#[tokio::test]
async fn a_practitioner_gets_everything_in_one_zip_and_a_mail() {
    let (app, _fake) = spawn_app_with_fake().await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let patient = app.create_patient(token, "Åsa Öberg").await;
    let resp = app
        .upload_session(token, &patient, VTT.as_bytes().to_vec(), "t.vtt", &[])
        .await;
    let session: Value = resp.json().await.unwrap();
    let session = session["id"].as_str().unwrap().to_owned();
    app.wait_for_session(&session, token, &["processed"], Duration::from_secs(60))
        .await;
    // A recording: its audio is stored, and exported as uploaded.
    let audio = tend_tests::fake_openai::wav(2.0, 16_000, 1);
    let resp = app
        .upload_session(token, &patient, audio.clone(), "s.wav", &[])
        .await;
    let recorded: Value = resp.json().await.unwrap();
    let recorded = recorded["id"].as_str().unwrap().to_owned();
    app.wait_for_session(&recorded, token, &["processed"], Duration::from_secs(60))
        .await;
    let resp = app
        .post_auth(
            "/api/v1/exports",
            token,
            &json!({"type": "session_notes", "format": "pdf", "session_id": session}),
        )
        .await;
    let document: Value = resp.json().await.unwrap();
    let document_id = document["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/exports/{document_id}");
    app.wait_for_status(&path, token, &["queued", "rendering"], &["ready"])
        .await;

    // A replay answers the first request.
    let first = request(&app, token, Some("dx-1")).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let replay = request(&app, token, Some("dx-1")).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.json::<Value>().await.unwrap()["id"], first["id"]);
    let export = wait_ready(&app, token, first["id"].as_str().unwrap()).await;
    let mail = app.wait_for_mail(&user.email, "data export is ready").await;
    let link = format!(
        "/api/v1/users/me/data-exports/{}/download",
        export["id"].as_str().unwrap()
    );
    assert!(
        mail.text
            .split_whitespace()
            .any(|w| w.starts_with("http") && w.ends_with(&link)),
        "{}",
        mail.text
    );

    let (_, files) = exported(&app, token).await;
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "README.txt",
        "account.json",
        "audit_log.json",
        "patients.json",
        "sessions.json",
        "missions.json",
        "mission_drafts.json",
        "exports.json",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let account = json_file(&files, "account.json");
    assert_eq!(account[0]["email"], user.email.as_str());
    assert!(account[0].get("password_hash").is_none(), "no secrets");
    let audit = json_file(&files, "audit_log.json");
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "data_export_requested")
    );
    assert_eq!(
        json_file(&files, "patients.json")[0]["display_name"],
        "Åsa Öberg"
    );
    let sessions = json_file(&files, "sessions.json");
    let transcribed = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == session.as_str())
        .unwrap();
    assert!(
        transcribed["transcript"]
            .as_str()
            .unwrap()
            .contains("How was your week, Åsa?")
    );
    assert_eq!(transcribed["notes"]["session_mood"], "low", "notes as JSON");
    let recording = files
        .iter()
        .find(|(n, _)| n == &format!("recordings/{recorded}.wav"))
        .unwrap_or_else(|| panic!("the recording is not in {names:?}"));
    assert!(recording.1 == audio, "the audio as uploaded");
    let pdf = files
        .iter()
        .find(|(n, _)| n.starts_with(&format!("exports/{document_id}-")))
        .expect("the rendered document");
    assert!(pdf.1.starts_with(b"%PDF"));
    let readme = String::from_utf8(files[0].1.clone()).unwrap();
    assert!(readme.contains("sessions.json") && readme.contains("recordings/"));

    // Three a day.
    let third = request(&app, token, None).await;
    assert_eq!(third.status(), 202, "the third");
    let third: Value = third.json().await.unwrap();
    // Built before the erasure below, which must then find its archive.
    wait_ready(&app, token, third["id"].as_str().unwrap()).await;
    let resp = request(&app, token, None).await;
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        retry_after > 3600,
        "until the oldest is a day old: {retry_after}"
    );
    problem(resp, 429).await;

    // Expired: 410.
    sqlx::query("UPDATE data_exports SET expires_at = 1 WHERE id = $1")
        .bind(export["id"].as_str().unwrap())
        .execute(&app.db)
        .await
        .unwrap();
    let resp = app
        .get(export["download_url"].as_str().unwrap(), Some(token))
        .await;
    problem(resp, 410).await;

    // Erasure takes the archives and documents with the account.
    let store = app.store().await;
    assert!(!store.list("data-exports/").await.unwrap().is_empty());
    assert_eq!(app.delete_me(&user).await.status(), 202);
    app.wait_until_erased(&user.id).await;
    assert!(store.list("data-exports/").await.unwrap().is_empty());
    assert!(store.list("exports/").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_patient_account_gets_what_it_may_read() {
    let (app, _fake) = spawn_app_with_fake().await;
    let practitioner = app.signed_in_user().await;
    let record = app.create_patient(&practitioner.access_token, "Zoë").await;
    // The practitioner's private reference, which the patient's account cannot read.
    let resp = app
        .patch_auth(
            &format!("/api/v1/patients/{record}"),
            &practitioner.access_token,
            &serde_json::json!({"reference": "kept-private-7731"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = app
        .upload_session(
            &practitioner.access_token,
            &record,
            VTT.as_bytes().to_vec(),
            "t.vtt",
            &[],
        )
        .await;
    let session: Value = resp.json().await.unwrap();
    app.wait_for_session(
        session["id"].as_str().unwrap(),
        &practitioner.access_token,
        &["processed"],
        Duration::from_secs(60),
    )
    .await;
    let client = app.signed_in_as("patient").await;
    app.invite_and_accept(&practitioner.access_token, &record, &client)
        .await;

    let (_, files) = exported(&app, &client.access_token).await;
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        !names.iter().any(|n| n.starts_with("recordings/")),
        "{names:?}"
    );
    // What the API shows this account, and nothing of its practitioner's record.
    assert_eq!(
        names,
        [
            "README.txt",
            "account.json",
            "audit_log.json",
            "missions.json",
            "sessions.json"
        ]
    );
    for (name, data) in &files {
        let text = String::from_utf8_lossy(data);
        assert!(!text.contains("kept-private-7731"), "{name}");
        assert!(!text.contains("practitioner_id"), "{name}");
        assert!(!text.contains(&practitioner.id), "{name}");
    }
    let sessions = json_file(&files, "sessions.json");
    assert_eq!(sessions.as_array().unwrap().len(), 1);
    assert!(
        sessions[0]["patient_summary"]
            .as_str()
            .unwrap()
            .contains("You talked about")
    );
    assert!(sessions[0].get("transcript").is_none() && sessions[0].get("notes").is_none());
    // Someone else's export is not there for them.
    let audit = json_file(&files, "audit_log.json");
    let export_id = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "data_export_requested")
        .expect("the request is in the trail")["detail"]["data_export_id"]
        .clone();
    let resp = app
        .get(
            &format!(
                "/api/v1/users/me/data-exports/{}",
                export_id.as_str().unwrap()
            ),
            Some(&practitioner.access_token),
        )
        .await;
    problem(resp, 404).await;
}
