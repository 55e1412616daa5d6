//! Cancellation through HTTP and the queue: a practitioner stops a session mid-transcription
//! (the running attempt stops, nothing more is paid for), a queued export never renders, and
//! an admin cancels one job or every job of a practice.

use std::time::Duration;

use serde_json::{Value, json};
use tend_shared::db;
use tend_tests::{
    AppOptions, TestApp, eventually,
    fake_openai::{self, FakeOpenAi, Reply},
    problem, spawn_app_with,
};

/// The app on the fake provider: embedded (every queue), or the API with a worker for
/// `queues` only.
async fn app(fake: &FakeOpenAi, api_only: bool) -> TestApp {
    spawn_app_with(AppOptions {
        env: fake.env(),
        api_only,
    })
    .await
}

/// The ledger's state of job `id`.
async fn job_state(app: &TestApp, id: &str) -> String {
    let job = db::jobs::find(&app.db, id).await.unwrap().expect("the job");
    job.state.as_str().to_owned()
}

#[tokio::test]
async fn a_session_cancelled_mid_transcription_stops_its_attempt_and_pays_for_nothing_more() {
    let fake = FakeOpenAi::start().await;
    // The provider takes its time: the attempt is running when the practitioner cancels.
    fake.on_transcription([Reply::Slow(Duration::from_secs(20))]);
    let app = app(&fake, false).await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let patient = app.create_patient(token, "Client").await;
    let resp = app
        .upload_session(
            token,
            &patient,
            fake_openai::wav(5.0, 16_000, 1),
            "a.wav",
            &[],
        )
        .await;
    assert_eq!(resp.status(), 202);
    let accepted: Value = resp.json().await.unwrap();
    let id = accepted["id"].as_str().unwrap().to_owned();
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    app.wait_for_session(&id, token, &["transcribing"], Duration::from_secs(20))
        .await;
    eventually("the provider called", Duration::from_secs(10), || async {
        Ok(!fake.transcriptions().is_empty())
    })
    .await
    .unwrap();

    let resp = app
        .post_empty(&format!("/api/v1/sessions/{id}/cancel"), token)
        .await;
    assert_eq!(resp.status(), 200);
    let session: Value = resp.json().await.unwrap();
    assert_eq!(session["status"], "cancelled", "{session}");
    assert_eq!(session["error"], "cancelled by its owner", "{session}");

    // The worker stops the attempt at its next lease renewal and records the job cancelled.
    let job = app.wait_for_job(&job_id, token, &["cancelled"]).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    let row = db::jobs::find(&app.db, &job_id).await.unwrap().unwrap();
    assert_eq!(row.cancelled_by.as_deref(), Some(user.id.as_str()));
    let attempts = db::job_admin::attempts(&app.db, &job_id).await.unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| a.outcome.as_str())
            .collect::<Vec<_>>(),
        ["cancelled"],
        "the stopped attempt is in the history"
    );
    // Nothing kept of partial work, nothing more asked of the provider.
    let chunks: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM transcription_chunks WHERE session_id = $1")
            .bind(&id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(chunks, 0);
    // The session's next stage is enqueued only by a finished transcription: none came.
    assert!(fake.chats().is_empty(), "no extraction after a cancel");
    assert_eq!(fake.transcriptions().len(), 1, "no second attempt");
    let session: Value = app
        .get(&format!("/api/v1/sessions/{id}"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["status"], "cancelled", "{session}");

    // Cancelled once: a second cancel is a 409 with a machine-readable body.
    let again = app
        .post_empty(&format!("/api/v1/sessions/{id}/cancel"), token)
        .await;
    let body = problem(again, 409).await;
    assert_eq!(body["type"], "/problems/not-cancellable", "{body}");
    // Another practitioner's session is not found, not cancelled.
    let other = app.signed_in_user().await;
    let resp = app
        .post_empty(
            &format!("/api/v1/sessions/{id}/cancel"),
            &other.access_token,
        )
        .await;
    assert_eq!(resp.status(), 404);
    let admin = app.admin_token().await;
    let audit: Value = app
        .get(
            "/api/v1/admin/audit-logs?action=work_cancelled",
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
}

#[tokio::test]
async fn a_queued_export_cancelled_never_renders() {
    let fake = FakeOpenAi::start().await;
    let app = app(&fake, true).await;
    // Mail and the session's stages run; documents wait for a worker.
    let _worker = app.spawn_worker(&[("WORKER_QUEUES", "email,transcription,extraction")]);
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let patient = app.create_patient(token, "Client").await;
    let session = app.upload_transcript(token, &patient).await;
    let session_id = session["id"].as_str().unwrap();
    app.wait_for_session(session_id, token, &["processed"], Duration::from_secs(30))
        .await;
    let resp = app
        .post_auth(
            "/api/v1/exports",
            token,
            &json!({"type": "session_notes", "format": "pdf", "session_id": session_id}),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let export: Value = resp.json().await.unwrap();
    let id = export["id"].as_str().unwrap();
    let job_id = export["job_id"].as_str().unwrap().to_owned();

    let resp = app
        .post_empty(&format!("/api/v1/exports/{id}/cancel"), token)
        .await;
    assert_eq!(resp.status(), 200);
    let cancelled: Value = resp.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    // A waiting job ends at once, without a worker.
    assert_eq!(job_state(&app, &job_id).await, "cancelled");

    // A documents worker comes and renders a later export: the cancelled one, ahead of it in
    // the queue, never ran.
    let _documents = app.spawn_worker(&[("WORKER_QUEUES", "documents")]);
    let resp = app
        .post_auth(
            "/api/v1/exports",
            token,
            &json!({"type": "session_notes", "format": "docx", "session_id": session_id}),
        )
        .await;
    let later: Value = resp.json().await.unwrap();
    let later_path = format!("/api/v1/exports/{}", later["id"].as_str().unwrap());
    app.wait_for_status(&later_path, token, &["queued", "rendering"], &["ready"])
        .await;
    let job = db::jobs::find(&app.db, &job_id).await.unwrap().unwrap();
    assert_eq!((job.state.as_str(), job.attempts), ("cancelled", 0));
    let export: Value = app
        .get(&format!("/api/v1/exports/{id}"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(export["status"], "cancelled", "{export}");
    assert!(export["download_url"].is_null());
}

#[tokio::test]
async fn an_admin_cancels_one_job_or_every_job_of_a_practice() {
    let fake = FakeOpenAi::start().await;
    // Only mail is served: the practice's extractions wait in the ledger.
    let app = app(&fake, true).await;
    let _mail = app.spawn_worker(&[("WORKER_QUEUES", "email")]);
    let admin = app.admin_token().await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let patient = app.create_patient(token, "Client").await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let accepted = app.upload_transcript(token, &patient).await;
        sessions.push((
            accepted["id"].as_str().unwrap().to_owned(),
            accepted["job_id"].as_str().unwrap().to_owned(),
        ));
    }

    // One job: its session reads cancelled.
    let (first, first_job) = &sessions[0];
    let resp = app
        .post_empty(&format!("/api/v1/admin/jobs/{first_job}/cancel"), &admin)
        .await;
    assert_eq!(resp.status(), 200);
    let job: Value = resp.json().await.unwrap();
    assert_eq!(job["state"], "cancelled", "{job}");
    let session: Value = app
        .get(&format!("/api/v1/sessions/{first}"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["status"], "cancelled", "{session}");
    let body = problem(
        app.post_empty(&format!("/api/v1/admin/jobs/{first_job}/cancel"), &admin)
            .await,
        409,
    )
    .await;
    assert_eq!(body["type"], "/problems/job-not-cancellable");

    // Every job of the practice: the two others.
    let resp = app
        .post_empty(
            &format!("/api/v1/admin/practices/{}/cancel-jobs", user.id),
            &admin,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let done: Value = resp.json().await.unwrap();
    assert_eq!(done, json!({"cancelled": 2, "stopping": 0}));
    for (session, job) in &sessions[1..] {
        assert_eq!(job_state(&app, job).await, "cancelled");
        let view: Value = app
            .get(&format!("/api/v1/sessions/{session}"), Some(token))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(view["status"], "cancelled", "{view}");
    }
    // Admins find them by state; an id that is no practice is a 404.
    let listed: Value = app
        .get(
            &format!("/api/v1/admin/jobs?tenant={}&state=cancelled", user.id),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 3, "{listed}");
    let resp = app
        .post_empty("/api/v1/admin/practices/nobody/cancel-jobs", &admin)
        .await;
    assert_eq!(resp.status(), 404);
    // The extraction worker starts and processes a later session: the cancelled ones, ahead
    // of it, never ran and cost nothing.
    let _worker = app.spawn_worker(&[("WORKER_QUEUES", "extraction")]);
    let later = app.upload_transcript(token, &patient).await;
    let later_id = later["id"].as_str().unwrap();
    app.wait_for_session(later_id, token, &["processed"], Duration::from_secs(30))
        .await;
    assert_eq!(fake.chats().len(), 1, "only the later session's extraction");
}
