//! Practice budgets through HTTP and the queue: a paid job that would start past its
//! practice's monthly budget is held with `budget_exceeded`, before any paid call; raising the
//! budget resumes it; the practitioner and admins see usage and what is left.

use std::time::Duration;

use serde_json::{Value, json};
use tend_shared::db;
use tend_tests::{TestApp, problem, spawn_app_with_fake};

/// An admin's `PUT /admin/practices/{id}/budget` with `body`.
async fn put_budget(app: &TestApp, admin: &str, practice: &str, body: Value) -> reqwest::Response {
    app.client
        .put(format!(
            "{}/api/v1/admin/practices/{practice}/budget",
            app.address
        ))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn work_past_the_budget_is_held_and_resumes_when_an_admin_raises_it() {
    let (app, fake) = spawn_app_with_fake().await;
    let admin = app.admin_token().await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let patient = app.create_patient(token, "Client").await;
    let budget_path = format!("/api/v1/admin/practices/{}/budget", user.id);

    // No limit by default; the first session is processed and its cost counted.
    let budget: Value = app
        .get(&budget_path, Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(budget["monthly_budget_usd"], Value::Null, "{budget}");
    assert_eq!(budget["source"], "default");
    let first = app.upload_transcript(token, &patient).await;
    let first_id = first["id"].as_str().unwrap();
    app.wait_for_session(first_id, token, &["processed"], Duration::from_secs(30))
        .await;
    let mine: Value = app
        .get("/api/v1/users/me/budget", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert!(mine["spent_usd"].as_f64().unwrap() > 0.0, "{mine}");
    assert_eq!(mine["paid_calls"], 1, "{mine}");
    assert_eq!(mine["exceeded"], false);

    // The admin sets a budget the practice has spent already.
    let resp = put_budget(&app, &admin, &user.id, json!({"monthly_budget_usd": 0.0})).await;
    assert_eq!(resp.status(), 200);
    let budget: Value = resp.json().await.unwrap();
    assert_eq!(
        (budget["monthly_budget_usd"].as_f64(), &budget["source"]),
        (Some(0.0), &json!("practice"))
    );
    assert_eq!(budget["remaining_usd"].as_f64(), Some(0.0));
    assert_eq!(budget["exceeded"], true);

    // The next session waits, before any paid call, and says why.
    let chats = fake.chats().len();
    let second = app.upload_transcript(token, &patient).await;
    let second_id = second["id"].as_str().unwrap();
    let job_id = second["job_id"].as_str().unwrap();
    let (session, _) = app
        .wait_for_session(
            second_id,
            token,
            &["budget_exceeded"],
            Duration::from_secs(30),
        )
        .await;
    let error = session["error"].as_str().unwrap_or_default();
    assert!(error.contains("monthly budget of $0.00"), "{session}");
    let job = app.wait_for_job(job_id, token, &["held"]).await;
    assert_eq!(job["attempts"], 0, "a hold is not an attempt: {job}");
    let detail: Value = app
        .get(&format!("/api/v1/admin/jobs/{job_id}"), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["job"]["held_reason"], "budget_exceeded", "{detail}");
    assert_eq!(fake.chats().len(), chats, "no paid call past the budget");
    let mine: Value = app
        .get("/api/v1/users/me/budget", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (mine["exceeded"].clone(), mine["held_jobs"].clone()),
        (json!(true), json!(1))
    );
    // The queue figures count it.
    let queues: Value = app
        .get("/api/v1/admin/queues", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let extraction = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "extraction")
        .unwrap();
    assert_eq!(extraction["held"], 1, "{extraction}");

    // Bad input changes nothing.
    let resp = put_budget(&app, &admin, &user.id, json!({"monthly_budget_usd": -5})).await;
    let body = problem(resp, 422).await;
    assert!(body["type"].is_string(), "{body}");
    let resp = put_budget(&app, &admin, "nobody", json!({"monthly_budget_usd": 10})).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        db::jobs::find(&app.db, job_id)
            .await
            .unwrap()
            .unwrap()
            .state
            .as_str(),
        "held"
    );

    // Raised: the held work resumes at once and finishes.
    let resp = put_budget(&app, &admin, &user.id, json!({"monthly_budget_usd": 25.0})).await;
    assert_eq!(resp.status(), 200);
    let budget: Value = resp.json().await.unwrap();
    assert_eq!(budget["held_jobs"], 0, "{budget}");
    let (session, _) = app
        .wait_for_session(second_id, token, &["processed"], Duration::from_secs(30))
        .await;
    assert!(session["error"].is_null(), "{session}");
    assert_eq!(fake.chats().len(), chats + 1);
    let audit: Value = app
        .get(
            "/api/v1/admin/audit-logs?action=budget_changed",
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["items"].as_array().unwrap().len(), 2, "{audit}");

    // Back to the default (no limit): the practice's own budget goes.
    let resp = app.delete_auth(&budget_path, &admin).await;
    let budget: Value = resp.json().await.unwrap();
    assert_eq!(budget["source"], "default", "{budget}");
    assert_eq!(budget["monthly_budget_usd"], Value::Null);
}

#[tokio::test]
async fn only_practitioners_have_a_budget_and_only_admins_set_one() {
    let (app, _fake) = spawn_app_with_fake().await;
    let user = app.signed_in_user().await;
    let patient = app.signed_in_as("patient").await;
    let resp = app
        .get("/api/v1/users/me/budget", Some(&patient.access_token))
        .await;
    assert_eq!(resp.status(), 403);
    let body = json!({"monthly_budget_usd": 100});
    let resp = put_budget(&app, &user.access_token, &user.id, body).await;
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn a_held_job_an_admin_kills_fails_its_session_rather_than_leaving_it_waiting() {
    let (app, _fake) = spawn_app_with_fake().await;
    let admin = app.admin_token().await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let patient = app.create_patient(token, "Client").await;
    let resp = put_budget(&app, &admin, &user.id, json!({"monthly_budget_usd": 0})).await;
    assert_eq!(resp.status(), 200);
    let session = app.upload_transcript(token, &patient).await;
    let id = session["id"].as_str().unwrap();
    let job_id = session["job_id"].as_str().unwrap();
    app.wait_for_session(id, token, &["budget_exceeded"], Duration::from_secs(30))
        .await;
    let resp = app
        .post_empty(&format!("/api/v1/admin/jobs/{job_id}/kill"), &admin)
        .await;
    assert_eq!(resp.status(), 202);
    let (session, _) = app
        .wait_for_session(id, token, &["failed"], Duration::from_secs(30))
        .await;
    assert_eq!(session["failed_stage"], "extraction", "{session}");
}
