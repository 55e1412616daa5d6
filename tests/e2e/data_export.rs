//! The personal data export over HTTP: a practitioner's ZIP holds the account, its audit
//! trail, patients, sessions, transcripts and notes, drafts, missions and exports, the
//! uploaded files and rendered documents, with a README; a patient account's holds what it
//! may read. For each role, every record is compared field for field with what the API
//! answers that account at the record's `GET`, and every record the API lists is there. The
//! owner is mailed the link; replays, the 3-a-day limit, expiry, and erasure of the archives.

use std::{io::Read, time::Duration};

use serde_json::{Value, json};
use tend_tests::{
    TestApp,
    fake_openai::{FakeOpenAi, Reply},
    problem, spawn_app_with_fake,
};

use crate::missions::{drafted, good_plan, questionnaire};

/// A mission drafted for `patient` (the fake provider writes a plan that keeps the rules)
/// and confirmed by `token`'s practitioner.
async fn confirmed_mission(app: &TestApp, fake: &FakeOpenAi, token: &str, patient: &str) -> Value {
    let q = questionnaire(patient);
    fake.on_chat([Reply::Content(good_plan(&q).to_string())]);
    let draft = drafted(app, token, &q).await;
    assert_eq!(draft["status"], "ready", "{draft}");
    let resp = app
        .post_auth("/api/v1/missions", token, &json!({"draft_id": draft["id"]}))
        .await;
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

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

/// Every id the API lists at `path` (a paged list) for `token`.
async fn listed(app: &TestApp, token: &str, path: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{path}?limit=100");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = app.get(&url, Some(token)).await.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
}

/// `name` holds, field for field, what the API answers `token` at `path` (with `{id}` the
/// record's `key` field), one record for each of `ids` and no other.
async fn as_the_api_reads(
    app: &TestApp,
    token: &str,
    files: &[(String, Vec<u8>)],
    name: &str,
    key: &str,
    path: &str,
    ids: &[String],
) {
    let records = json_file(files, name);
    let records = records.as_array().unwrap();
    let mut exported: Vec<&str> = records.iter().map(|r| r[key].as_str().unwrap()).collect();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    exported.sort_unstable();
    expected.sort_unstable();
    assert_eq!(exported, expected, "the records of {name}");
    assert!(!records.is_empty(), "{name} is empty: nothing was compared");
    for record in records {
        let url = path.replace("{id}", record[key].as_str().unwrap());
        let resp = app.get(&url, Some(token)).await;
        assert_eq!(resp.status(), 200, "{url}");
        let read: Value = resp.json().await.unwrap();
        assert_eq!(record, &read, "{name}: the export and {url} differ");
    }
}

/// The account and audit trail are what the API shows `token`'s account: the account as
/// `GET /users/me`, each event as the same event of `GET /users/me/audit-log` (which has more
/// by now: the download, at least).
async fn account_as_the_api_reads(app: &TestApp, token: &str, files: &[(String, Vec<u8>)]) {
    let me: Value = app
        .get("/api/v1/users/me", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(json_file(files, "account.json"), me);
    let mut trail = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = "/api/v1/users/me/audit-log?limit=100".to_owned();
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = app.get(&url, Some(token)).await.json().await.unwrap();
        trail.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert!(
        trail.iter().all(|e| e["user_id"] == me["id"]),
        "the trail holds this account's events only"
    );
    let exported = json_file(files, "audit_log.json");
    assert!(!exported.as_array().unwrap().is_empty());
    for event in exported.as_array().unwrap() {
        assert!(trail.contains(event), "{event} is not in the API's trail");
    }
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
    let (app, fake) = spawn_app_with_fake().await;
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
    let mission = confirmed_mission(&app, &fake, token, &patient).await;

    // A replay answers the first request.
    let first = request(&app, token, Some("dx-1")).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let replay = request(&app, token, Some("dx-1")).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.json::<Value>().await.unwrap()["id"], first["id"]);
    let export = wait_ready(&app, token, first["id"].as_str().unwrap()).await;
    let mail = app.wait_for_mail(&user.email, "data export is ready").await;
    // The link opens a page that signs its reader in and downloads (not the API's URL, which
    // needs a token a mail client does not have).
    let link = mail.link();
    assert_eq!(link.path(), "/data-export");
    assert_eq!(
        link.query_pairs().find(|(k, _)| k == "id").unwrap().1,
        export["id"].as_str().unwrap()
    );
    assert_eq!(app.get("/data-export", None).await.status(), 200);

    let (_, files) = exported(&app, token).await;
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "README.txt",
        "account.json",
        "audit_log.json",
        "patients.json",
        "sessions.json",
        "transcripts.json",
        "notes.json",
        "mission_drafts.json",
        "missions.json",
        "exports.json",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    // Field for field what the API answers this account, and every record it lists.
    account_as_the_api_reads(&app, token, &files).await;
    let audit = json_file(&files, "audit_log.json");
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "data_export_requested")
    );
    let patients = listed(&app, token, "/api/v1/patients").await;
    as_the_api_reads(
        &app,
        token,
        &files,
        "patients.json",
        "id",
        "/api/v1/patients/{id}",
        &patients,
    )
    .await;
    let sessions = listed(&app, token, "/api/v1/sessions").await;
    assert_eq!(sessions.len(), 2);
    as_the_api_reads(
        &app,
        token,
        &files,
        "sessions.json",
        "id",
        "/api/v1/sessions/{id}",
        &sessions,
    )
    .await;
    as_the_api_reads(
        &app,
        token,
        &files,
        "transcripts.json",
        "session_id",
        "/api/v1/sessions/{id}/transcript",
        &sessions,
    )
    .await;
    as_the_api_reads(
        &app,
        token,
        &files,
        "notes.json",
        "session_id",
        "/api/v1/sessions/{id}/notes",
        &sessions,
    )
    .await;
    let draft = mission["draft_id"].as_str().unwrap().to_owned();
    as_the_api_reads(
        &app,
        token,
        &files,
        "mission_drafts.json",
        "id",
        "/api/v1/missions/drafts/{id}",
        &[draft],
    )
    .await;
    let missions = listed(&app, token, "/api/v1/missions").await;
    as_the_api_reads(
        &app,
        token,
        &files,
        "missions.json",
        "id",
        "/api/v1/missions/{id}",
        &missions,
    )
    .await;
    let exports = listed(&app, token, "/api/v1/exports").await;
    as_the_api_reads(
        &app,
        token,
        &files,
        "exports.json",
        "id",
        "/api/v1/exports/{id}",
        &exports,
    )
    .await;
    for (name, data) in &files {
        let text = String::from_utf8_lossy(data);
        for internal in [
            "password_hash",
            "object_key",
            "idempotency_key",
            "practitioner_id",
        ] {
            assert!(!text.contains(internal), "{internal} in {name}");
        }
    }
    let transcripts = json_file(&files, "transcripts.json");
    let transcribed = transcripts
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["session_id"] == session.as_str())
        .unwrap();
    assert!(
        transcribed["text"]
            .as_str()
            .unwrap()
            .contains("How was your week, Åsa?")
    );
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
    let (app, fake) = spawn_app_with_fake().await;
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
    let mission = confirmed_mission(&app, &fake, &practitioner.access_token, &record).await;

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
            "sessions.json",
            "notes.json",
            "mission_drafts.json",
            "missions.json"
        ]
    );
    for (name, data) in &files {
        let text = String::from_utf8_lossy(data);
        assert!(!text.contains("kept-private-7731"), "{name}");
        assert!(!text.contains("practitioner_id"), "{name}");
        assert!(!text.contains(&practitioner.id), "{name}");
    }
    let token = &client.access_token;
    account_as_the_api_reads(&app, token, &files).await;
    let sessions = listed(&app, token, "/api/v1/sessions").await;
    assert_eq!(sessions.len(), 1);
    as_the_api_reads(
        &app,
        token,
        &files,
        "sessions.json",
        "id",
        "/api/v1/sessions/{id}",
        &sessions,
    )
    .await;
    as_the_api_reads(
        &app,
        token,
        &files,
        "notes.json",
        "session_id",
        "/api/v1/sessions/{id}/notes",
        &sessions,
    )
    .await;
    let notes = json_file(&files, "notes.json");
    assert!(
        notes[0]["patient_summary"]
            .as_str()
            .unwrap()
            .contains("You talked about")
    );
    assert!(notes[0].get("therapist_notes").is_none(), "{notes}");
    let draft = mission["draft_id"].as_str().unwrap().to_owned();
    as_the_api_reads(
        &app,
        token,
        &files,
        "mission_drafts.json",
        "id",
        "/api/v1/missions/drafts/{id}",
        &[draft],
    )
    .await;
    let missions = listed(&app, token, "/api/v1/missions").await;
    as_the_api_reads(
        &app,
        token,
        &files,
        "missions.json",
        "id",
        "/api/v1/missions/{id}",
        &missions,
    )
    .await;
    // The record itself is the practitioner's: 403 through the API, absent from the export.
    let resp = app
        .get(&format!("/api/v1/patients/{record}"), Some(token))
        .await;
    assert_eq!(resp.status(), 403);
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

/// Five requests at once with one `Idempotency-Key`: the first to insert makes the export,
/// the others (past the replay check before any of them committed) meet the key's unique
/// index, roll back their job and audit line, and answer the same export. One job, one
/// export, one quota slot spent.
#[tokio::test]
async fn requests_racing_with_one_key_make_one_export_and_one_job() {
    let app = tend_tests::spawn_app().await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let answers =
        futures::future::join_all((0..5).map(|_| request(&app, token, Some("race-1")))).await;
    let mut statuses = Vec::new();
    let mut ids = Vec::new();
    for resp in answers {
        statuses.push(resp.status().as_u16());
        let body: Value = resp.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 202]);
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    let list: Value = app
        .get("/api/v1/users/me/data-exports", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    // The quota counts one request: two more fit in the day.
    for key in ["race-2", "race-3"] {
        assert_eq!(request(&app, token, Some(key)).await.status(), 202);
    }
    let resp = request(&app, token, Some("race-4")).await;
    assert_eq!(resp.status(), 429);
    // One audit line per export made, none for the replays.
    let trail: Value = app
        .get("/api/v1/users/me/audit-log", Some(token))
        .await
        .json()
        .await
        .unwrap();
    let requested = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "data_export_requested")
        .count();
    assert_eq!(requested, 3, "{trail}");
}
