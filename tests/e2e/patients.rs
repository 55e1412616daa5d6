//! Patients: ownership, pagination and search, linking a patient account, validation, and
//! uploads refused before anything is kept; deletion that removes stored audio; the cleanup of
//! what an abandoned upload left.

use serde_json::{Value, json};
use tend_shared::jobs::kinds::cleanup::Cleanup;
use tend_shared::{
    db,
    jobs::{JobOrigin, JobState},
};
use tend_tests::{TestApp, eventually, fake_openai, problem, spawn_app, spawn_app_with_env};

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.send(reqwest::Method::POST, path, Some(token), Some(&body))
        .await
}

#[tokio::test]
async fn patients_are_paginated_searched_and_private() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    for name in ["Ada Lovelace", "Alan Turing", "Grace Hopper"] {
        app.create_patient(token, name).await;
    }
    let resp = post(
        &app,
        token,
        "/api/v1/patients",
        json!({"display_name": "Edsger Dijkstra", "reference": "F-100%_x"}),
    )
    .await;
    assert_eq!(resp.status(), 201);

    let page1: Value = app
        .get("/api/v1/patients?limit=3", Some(token))
        .await
        .json()
        .await
        .unwrap();
    let items = page1["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["display_name"], "Edsger Dijkstra", "newest first");
    let cursor = page1["next_cursor"].as_str().expect("a second page");
    let page2: Value = app
        .get(
            &format!("/api/v1/patients?limit=3&cursor={cursor}"),
            Some(token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert_eq!(page2["items"][0]["display_name"], "Ada Lovelace");
    assert!(page2["next_cursor"].is_null());

    let found: Value = app
        .get("/api/v1/patients?q=HOPPER", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    // LIKE wildcards in the search match themselves.
    let literal: Value = app
        .get("/api/v1/patients?q=100%25_", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(literal["items"].as_array().unwrap().len(), 1, "{literal}");
    let none: Value = app
        .get("/api/v1/patients?q=%25z", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["items"].as_array().unwrap().len(), 0);

    for (query, field) in [
        ("limit=500", "limit"),
        ("limit=0", "limit"),
        ("cursor=nope", "cursor"),
    ] {
        let bad = app
            .get_problem(&format!("/api/v1/patients?{query}"), token, 422)
            .await;
        assert_eq!(bad["errors"][0]["field"], field, "{query}: {bad}");
    }
    // Not a number at all: 422 naming the parameter too, not a 400.
    let bad = app
        .get_problem("/api/v1/patients?limit=many", token, 422)
        .await;
    assert_eq!(bad["errors"][0]["field"], "limit", "{bad}");

    // Another practitioner sees an empty list and 404s.
    let stranger = app.signed_in_user().await;
    let theirs: Value = app
        .get("/api/v1/patients", Some(&stranger.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert!(theirs["items"].as_array().unwrap().is_empty());
    let id = items[0]["id"].as_str().unwrap();
    let path = format!("/api/v1/patients/{id}");
    problem(app.get(&path, Some(&stranger.access_token)).await, 404).await;
    problem(
        app.patch_auth(&path, &stranger.access_token, &json!({"display_name": "x"}))
            .await,
        404,
    )
    .await;
    problem(app.delete_auth(&path, &stranger.access_token).await, 404).await;
    problem(app.get(&path, None).await, 401).await;
}

#[tokio::test]
async fn a_patient_record_validates_its_fields() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let bad = problem(
        post(
            &app,
            token,
            "/api/v1/patients",
            json!({"display_name": " ", "reference": "r\u{202e}".repeat(3), "account_email": "Sam <sam@example.org>"}),
        )
        .await,
        422,
    )
    .await;
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["display_name", "reference", "account_email"],
        "{bad}"
    );
    // Names that look like another name: a zero-width space, a soft hyphen, a line separator.
    for name in ["Sam\u{200b}", "Sa\u{ad}m", "Sam\u{2028}Smith"] {
        let bad = problem(
            post(
                &app,
                token,
                "/api/v1/patients",
                json!({"display_name": name}),
            )
            .await,
            422,
        )
        .await;
        assert_eq!(bad["errors"][0]["field"], "display_name", "{bad}");
    }
    // Scripts that need a joiner keep it (Persian, with a zero-width non-joiner).
    let resp = post(
        &app,
        token,
        "/api/v1/patients",
        json!({"display_name": "می\u{200c}خواهم"}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    // A number where the schema says string, and a missing required field: 422, named.
    let bad = problem(
        post(&app, token, "/api/v1/patients", json!({"reference": 42})).await,
        422,
    )
    .await;
    let errors = bad["errors"].to_string();
    assert!(
        errors.contains("display_name") && errors.contains("is required"),
        "{bad}"
    );
    assert!(
        errors.contains("reference") && errors.contains("must be a string"),
        "{bad}"
    );
}

#[tokio::test]
async fn a_patient_account_is_linked_only_when_its_owner_accepts_the_invitation() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let patient_user = app.signed_in_as("patient").await;
    let stranger = app.signed_in_as("patient").await;

    let id = app.create_patient(token, "Sam").await;
    let path = format!("/api/v1/patients/{id}");
    let invited: Value = app
        .patch_auth(
            &path,
            token,
            &json!({"account_email": patient_user.email.to_uppercase(), "reference": "S-1"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(invited["link_status"], "invited", "{invited}");
    assert!(invited["linked_user_id"].is_null(), "nothing linked yet");
    assert_eq!(invited["invited_email"], patient_user.email.as_str());
    assert_eq!(invited["reference"], "S-1");
    assert_eq!(invited["display_name"], "Sam", "absent fields stay");

    // An address without an account gets exactly the same answer: nothing leaks.
    let other = app.create_patient(token, "Nobody").await;
    let resp = app
        .patch_auth(
            &format!("/api/v1/patients/{other}"),
            token,
            &json!({"account_email": tend_tests::unique_email()}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["link_status"],
        "invited"
    );

    // The invitation arrives at the address; another account cannot use it, nor can the
    // practitioner, and a made-up token is refused.
    let mail = app.wait_for_mail(&patient_user.email, "invitation").await;
    assert!(mail.text.contains("invites you"), "{}", mail.text);
    assert!(
        !mail.text.contains("Sam"),
        "the mail names nothing the practitioner typed"
    );
    let accept = |who: &str, token: String| {
        let who = who.to_owned();
        let app = &app;
        async move {
            app.send(
                reqwest::Method::POST,
                "/api/v1/invitations/accept",
                Some(&who),
                Some(&json!({ "token": token })),
            )
            .await
        }
    };
    problem(accept(&stranger.access_token, mail.link_token()).await, 403).await;
    problem(accept(token, mail.link_token()).await, 403).await;
    problem(
        accept(&patient_user.access_token, "made-up".into()).await,
        400,
    )
    .await;

    let resp = accept(&patient_user.access_token, mail.link_token()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["patient_id"],
        id.as_str()
    );
    let linked: Value = app.get(&path, Some(token)).await.json().await.unwrap();
    assert_eq!(linked["link_status"], "linked");
    assert_eq!(linked["linked_user_id"], patient_user.id.as_str());
    assert!(linked["invited_email"].is_null());
    // Single use.
    problem(
        accept(&patient_user.access_token, mail.link_token()).await,
        400,
    )
    .await;

    // The same account accepting for a second record of the same practitioner: conflict.
    let second = app.create_patient(token, "Sam again").await;
    app.patch_auth(
        &format!("/api/v1/patients/{second}"),
        token,
        &json!({"account_email": patient_user.email}),
    )
    .await;
    let invitations = || {
        app.mails_to(&patient_user.email)
            .into_iter()
            .filter(|m| m.subject.contains("invitation"))
            .count()
    };
    eventually(
        "the second invitation",
        std::time::Duration::from_secs(20),
        || async { Ok(invitations() >= 2) },
    )
    .await
    .unwrap();
    let second_mail = app.wait_for_mail(&patient_user.email, "invitation").await;
    problem(
        accept(&patient_user.access_token, second_mail.link_token()).await,
        409,
    )
    .await;

    // null unlinks.
    let cleared: Value = app
        .patch_auth(
            &path,
            token,
            &json!({"account_email": null, "reference": null}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        cleared["linked_user_id"].is_null() && cleared["reference"].is_null(),
        "{cleared}"
    );
    assert_eq!(cleared["link_status"], "none");
}

#[tokio::test]
async fn an_unverified_practitioner_cannot_invite() {
    let app = spawn_app().await;
    let email = tend_tests::unique_email();
    assert_eq!(
        app.register(&email, tend_tests::PASSWORD, "practitioner")
            .await
            .status(),
        201
    );
    let login: Value = app
        .login(&email, tend_tests::PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    let resp = post(
        &app,
        token,
        "/api/v1/patients",
        json!({"display_name": "Sam", "account_email": tend_tests::unique_email()}),
    )
    .await;
    problem(resp, 403).await;
    // Without an invitation, an unverified practitioner still keeps records.
    let resp = post(
        &app,
        token,
        "/api/v1/patients",
        json!({"display_name": "Sam"}),
    )
    .await;
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn uploads_are_refused_clearly_and_nothing_is_kept() {
    let app = spawn_app_with_env(&[("MAX_UPLOAD_BYTES", "200000")]).await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let patient = app.create_patient(token, "Pat").await;
    let store = app.store().await;

    // Not audio, not text: 415, whatever the name says.
    let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj".to_vec();
    let body = problem(
        app.upload_session(token, &patient, pdf, "session.mp3", &[])
            .await,
        415,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("application/pdf"),
        "{body}"
    );

    // Over MAX_UPLOAD_BYTES while streaming: 413 (chunked, so no length up front).
    let big = fake_openai::wav(10.0, 16_000, 1);
    assert!(big.len() > 200_000);
    problem(
        app.upload_session(token, &patient, big.clone(), "a.wav", &[])
            .await,
        413,
    )
    .await;
    // And by the declared length, before reading.
    let resp = app
        .client
        .post(format!("{}/api/v1/sessions", app.address))
        .bearer_auth(token)
        .header("content-type", "multipart/form-data; boundary=x")
        .header("content-length", "999999999")
        .body(vec![0u8; 10])
        .send()
        .await
        .expect("the 413 arrives before the missing body matters");
    problem(resp, 413).await;

    // Missing fields and a bad date: 422 naming each.
    let form = reqwest::multipart::Form::new().text("recorded_at", "yesterday");
    let resp = app
        .client
        .post(format!("{}/api/v1/sessions", app.address))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let body = problem(resp, 422).await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["patient_id", "recorded_at", "file"]);

    // Broken captions: 422 with the line.
    let body = problem(
        app.upload_session(
            token,
            &patient,
            b"WEBVTT\n\n00:01.000 -> 00:02.000\nhi\n".to_vec(),
            "t.vtt",
            &[],
        )
        .await,
        422,
    )
    .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("line 3"),
        "{body}"
    );

    // Someone else's (or no) patient: 404, and the streamed audio is removed again.
    let small = fake_openai::wav(1.0, 16_000, 1);
    let missing = uuid::Uuid::now_v7().to_string();
    problem(
        app.upload_session(token, &missing, small.clone(), "a.wav", &[])
            .await,
        404,
    )
    .await;
    // Not multipart at all.
    let resp = app
        .send(
            reqwest::Method::POST,
            "/api/v1/sessions",
            Some(token),
            Some(&json!({})),
        )
        .await;
    assert!(resp.status().is_client_error(), "{}", resp.status());

    assert!(store.list("").await.unwrap().is_empty(), "nothing was kept");
    let pending: Vec<(String,)> = sqlx::query_as("SELECT object_key FROM pending_uploads")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert!(
        pending.is_empty(),
        "nothing left for cleanup either: {pending:?}"
    );
    let sessions: Value = app
        .get("/api/v1/sessions", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert!(sessions["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn deleting_a_session_or_a_patient_removes_the_stored_audio() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let store = app.store().await;
    let patient = app.create_patient(token, "Pat").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let resp = app
            .upload_session(
                token,
                &patient,
                fake_openai::wav(1.0, 16_000, 1),
                "a.wav",
                &[],
            )
            .await;
        assert_eq!(resp.status(), 202);
        let body: Value = resp.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let keys = store.list("sessions/").await.unwrap();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys[0].ends_with("/recording"), "{keys:?}");

    let resp = app
        .delete_auth(&format!("/api/v1/sessions/{}", ids[0]), token)
        .await;
    assert_eq!(resp.status(), 204);
    app.get_problem(&format!("/api/v1/sessions/{}", ids[0]), token, 404)
        .await;
    assert_eq!(store.list("sessions/").await.unwrap().len(), 2);
    assert!(
        store
            .list(&format!("sessions/{}", ids[0]))
            .await
            .unwrap()
            .is_empty()
    );

    let resp = app
        .delete_auth(&format!("/api/v1/patients/{patient}"), token)
        .await;
    assert_eq!(resp.status(), 204);
    assert!(store.list("sessions/").await.unwrap().is_empty());
    app.get_problem(&format!("/api/v1/sessions/{}", ids[1]), token, 404)
        .await;
    app.get_problem(&format!("/api/v1/patients/{patient}"), token, 404)
        .await;

    // Deleting the account takes the rest.
    let other = app.create_patient(token, "Other").await;
    let resp = app
        .upload_session(
            token,
            &other,
            fake_openai::wav(1.0, 16_000, 1),
            "a.wav",
            &[],
        )
        .await;
    assert_eq!(resp.status(), 202);
    assert_eq!(store.list("sessions/").await.unwrap().len(), 1);
    assert_eq!(app.delete_me(&user).await.status(), 202);
    tend_tests::eventually(
        "the erasure job to remove the audio",
        std::time::Duration::from_secs(20),
        || async { Ok(store.list("sessions/").await?.is_empty()) },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_cleanup_job_removes_what_an_abandoned_upload_left() {
    let app = spawn_app().await;
    let store = app.store().await;
    let put = |key: &'static str| {
        let store = store.clone();
        async move {
            let body = futures::stream::iter([Ok(bytes::Bytes::from_static(b"RIFF....WAVE"))]);
            store.put(key, "audio/wav", body, 1_000_000).await.unwrap();
        }
    };
    // An API that died a day ago mid-upload, and an upload streaming right now.
    let (old, fresh) = ("sessions/old/recording", "sessions/fresh/recording");
    put(old).await;
    put(fresh).await;
    let day_ago = db::now_ms() - 25 * 3600 * 1000;
    sqlx::query("INSERT INTO pending_uploads (object_key, created_at) VALUES ($1, $2)")
        .bind(old)
        .bind(day_ago)
        .execute(&app.db)
        .await
        .unwrap();
    db::uploads::begin_upload(&app.db, fresh).await.unwrap();

    let mut tx = app.job_tx().await;
    let job = tx
        .enqueue(
            &Cleanup {
                scheduled_for: 1,
                dry_run: false,
            },
            &JobOrigin::default(),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    eventually(
        "the cleanup job",
        std::time::Duration::from_secs(20),
        || async {
            let job = db::jobs::find(&app.db, &job.id).await?.unwrap();
            Ok(job.state == JobState::Done)
        },
    )
    .await
    .unwrap();

    assert_eq!(store.list("sessions/").await.unwrap(), [fresh]);
    let pending: Vec<(String,)> = sqlx::query_as("SELECT object_key FROM pending_uploads")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(pending, [(fresh.to_owned(),)]);
}
