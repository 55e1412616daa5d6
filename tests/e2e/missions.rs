//! Mission drafts over HTTP with the fake chat provider: a good plan; a misfit then a fit
//! (the second request at temperature 0, told what was wrong); two misfits (the draft fails
//! and says why); a 429 with `Retry-After` (retried, then ready); each questionnaire rule's
//! 422; confirming (as drafted, and edited under the same rules), reading as the coach and
//! as the linked client, changing and deleting; mails to the requester.

use chrono::{Days, NaiveDate, Utc};
use serde_json::{Value, json};
use tend_shared::missions::{Day, Questionnaire};
use tend_tests::{TestApp, fake_openai::Reply, problem, spawn_app_with_fake};

pub(crate) fn questionnaire(patient_id: &str) -> Value {
    json!({
        "patient_id": patient_id,
        "event_name": "Unbound Gravel 200",
        "event_date": (Utc::now().date_naive() + Days::new(30)).to_string(),
        "mission_type": "gravel_ultra",
        "weekly_hours": {"min": 3, "max": 8},
        "current_ftp": 250,
        "preferred_training_days": ["tuesday", "thursday", "saturday", "sunday"],
        "constraints": "Knee surgery in 2024: no sprints out of the saddle.",
        "riding_style": "breakaway",
        "notification_preferences": {"morning_briefing": true, "weekly_review": true}
    })
}

/// A plan that keeps every rule of `q` as of today: 90 minutes on each training day.
pub(crate) fn good_plan(q: &Value) -> Value {
    let mut q = q.clone();
    q.as_object_mut().unwrap().remove("patient_id");
    let q: Questionnaire = serde_json::from_value(q).unwrap();
    let today = Utc::now().date_naive();
    let weeks: Vec<Value> = q
        .plan_weeks(today)
        .into_iter()
        .map(|monday: NaiveDate| {
            let sessions: Vec<Value> = q
                .training_days()
                .into_iter()
                .filter(|day: &Day| {
                    let date = monday + Days::new(day.offset());
                    date >= today && date <= q.event_date
                })
                .map(|day| {
                    json!({"day": day.as_str(), "kind": "endurance", "duration_minutes": 90,
                           "target_power_low_w": 150, "target_power_high_w": 190,
                           "description": "Steady zone 2, seated climbs."})
                })
                .collect();
            json!({"week_start": monday.to_string(), "focus": "aerobic base", "sessions": sessions})
        })
        .collect();
    json!({"weeks": weeks, "notes": "Fuel every 20 minutes on long rides."})
}

async fn post_draft(
    app: &TestApp,
    token: &str,
    body: &Value,
    key: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}/api/v1/missions/drafts", app.address))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    req.send().await.unwrap()
}

async fn wait_draft(app: &TestApp, token: &str, id: &str) -> Value {
    let path = format!("/api/v1/missions/drafts/{id}");
    app.wait_for_status(
        &path,
        token,
        &["queued", "generating"],
        &["ready", "failed"],
    )
    .await
}

pub(crate) async fn drafted(app: &TestApp, token: &str, body: &Value) -> Value {
    let resp = post_draft(app, token, body, None).await;
    let status = resp.status();
    let draft: Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{draft}");
    wait_draft(app, token, draft["id"].as_str().unwrap()).await
}

#[tokio::test]
async fn a_good_answer_becomes_a_draft_then_a_mission_the_client_reads() {
    let (app, fake) = spawn_app_with_fake().await;
    let coach = app.signed_in_user().await;
    let token = &coach.access_token;
    let client_id = app.create_patient(token, "Zoë Martin").await;
    let q = questionnaire(&client_id);
    fake.on_chat([Reply::Content(good_plan(&q).to_string())]);

    let resp = post_draft(&app, token, &q, Some("draft-1")).await;
    assert_eq!(resp.status(), 202);
    let first: Value = resp.json().await.unwrap();
    // The job may have started by the time the answer is read back.
    assert!(
        ["queued", "generating", "ready"].contains(&first["status"].as_str().unwrap()),
        "{first}"
    );
    let replay = post_draft(&app, token, &q, Some("draft-1")).await;
    assert_eq!(replay.status(), 200);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["id"], first["id"]);
    let draft = wait_draft(&app, token, first["id"].as_str().unwrap()).await;
    assert_eq!(draft["status"], "ready", "{draft}");
    assert_eq!(draft["model_used"], "gpt-4o-mini");
    assert!(draft["generated_at"].is_string());
    assert!(draft["prompt_tokens"].as_i64() > Some(0));
    assert_eq!(draft["completion_tokens"], 150);
    assert!(draft["cost_usd"].as_f64() > Some(0.0), "{draft}");
    assert_eq!(draft["questionnaire"]["riding_style"], "breakaway");
    assert_eq!(
        draft["draft"]["weeks"].as_array().unwrap().len(),
        good_plan(&q)["weeks"].as_array().unwrap().len()
    );

    let chats = fake.chats();
    assert_eq!(chats.len(), 1, "one request, no repeat");
    assert_eq!(chats[0]["temperature"], 0.7);
    assert_eq!(
        chats[0]["response_format"]["json_schema"]["name"],
        "training_mission"
    );
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    app.wait_for_mail(&coach.email, "draft is ready").await;
    // Jobs carry the draft's id only.
    let payload: String =
        sqlx::query_scalar("SELECT payload FROM jobs WHERE kind = 'draft_mission'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(
        !payload.contains("Unbound") && !payload.contains("Knee"),
        "{payload}"
    );

    // Confirmed as drafted.
    let resp = app
        .post_auth("/api/v1/missions", token, &json!({"draft_id": draft["id"]}))
        .await;
    assert_eq!(resp.status(), 201);
    let mission: Value = resp.json().await.unwrap();
    let id = mission["id"].as_str().unwrap().to_owned();
    assert_eq!(mission["plan"], draft["draft"]);
    // Once only: a second confirmation names the mission the first made.
    let again = problem(
        app.post_auth("/api/v1/missions", token, &json!({"draft_id": draft["id"]}))
            .await,
        409,
    )
    .await;
    assert_eq!(again["type"], "/problems/already-confirmed");
    assert!(again["detail"].as_str().unwrap().contains(&id), "{again}");

    // The linked client reads it; another coach does not find it.
    let client = app.signed_in_as("patient").await;
    app.invite_and_accept(token, &client_id, &client).await;
    let theirs: Value = app
        .get("/api/v1/missions", Some(&client.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["items"][0]["id"], id.as_str(), "{theirs}");
    let other = app.signed_in_user().await;
    problem(
        app.get(&format!("/api/v1/missions/{id}"), Some(&other.access_token))
            .await,
        404,
    )
    .await;
    problem(
        app.get(
            &format!("/api/v1/missions/drafts/{}", draft["id"].as_str().unwrap()),
            Some(&other.access_token),
        )
        .await,
        404,
    )
    .await;
    problem(
        app.delete_auth(&format!("/api/v1/missions/{id}"), &other.access_token)
            .await,
        404,
    )
    .await;
    // The client may not change it.
    let resp = app
        .patch_auth(
            &format!("/api/v1/missions/{id}"),
            &client.access_token,
            &json!({"plan": mission["plan"]}),
        )
        .await;
    problem(resp, 403).await;

    // An edit that breaks a rule is refused, naming the session; a good one is kept.
    let mut edited = mission["plan"].clone();
    let week = edited["weeks"].as_array().unwrap().len() - 2;
    edited["weeks"][week]["sessions"][0]["day"] = json!("monday");
    let resp = app
        .patch_auth(
            &format!("/api/v1/missions/{id}"),
            token,
            &json!({"plan": edited}),
        )
        .await;
    let body = problem(resp, 422).await;
    assert_eq!(
        body["errors"][0]["field"],
        format!("plan.weeks[{week}].sessions[0].day"),
        "{body}"
    );
    let mut edited = mission["plan"].clone();
    edited["notes"] = json!("Rest the day before.");
    let resp = app
        .patch_auth(
            &format!("/api/v1/missions/{id}"),
            token,
            &json!({"plan": edited}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let changed: Value = resp.json().await.unwrap();
    assert_eq!(changed["plan"]["notes"], "Rest the day before.");

    assert_eq!(
        app.delete_auth(&format!("/api/v1/missions/{id}"), token)
            .await
            .status(),
        204
    );
    problem(
        app.get(&format!("/api/v1/missions/{id}"), Some(token))
            .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn a_misfit_is_asked_again_at_temperature_zero_then_fits() {
    let (app, fake) = spawn_app_with_fake().await;
    let coach = app.signed_in_user().await;
    let client_id = app.create_patient(&coach.access_token, "Sam").await;
    let q = questionnaire(&client_id);
    let mut misfit = good_plan(&q);
    misfit["weeks"][1]["sessions"][0]["target_power_high_w"] = json!(500);
    fake.on_chat([
        Reply::Content(misfit.to_string()),
        Reply::Content(good_plan(&q).to_string()),
    ]);
    let draft = drafted(&app, &coach.access_token, &q).await;
    assert_eq!(draft["status"], "ready", "{draft}");
    let chats = fake.chats();
    assert_eq!(chats.len(), 2);
    assert_eq!(chats[0]["temperature"], 0.7);
    assert_eq!(chats[1]["temperature"], 0.0);
    let correction = chats[1]["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        correction.contains("weeks[1].sessions[0].target_power_low_w"),
        "{correction}"
    );
    assert!(correction.contains("100-375 W"), "{correction}");
    assert_eq!(draft["completion_tokens"], 300, "both calls are counted");
}

#[tokio::test]
async fn two_misfits_fail_the_draft_with_the_reason_and_a_mail() {
    let (app, fake) = spawn_app_with_fake().await;
    let coach = app.signed_in_user().await;
    let client_id = app.create_patient(&coach.access_token, "Sam").await;
    let q = questionnaire(&client_id);
    let mut off_day = good_plan(&q);
    off_day["weeks"][1]["sessions"][0]["day"] = json!("monday");
    fake.on_chat([
        Reply::Content(json!({"weeks": []}).to_string()),
        Reply::Content(off_day.to_string()),
    ]);
    let draft = drafted(&app, &coach.access_token, &q).await;
    assert_eq!(draft["status"], "failed", "{draft}");
    let error = draft["error"].as_str().unwrap();
    assert!(
        error.contains("did not fit the questionnaire, twice"),
        "{error}"
    );
    assert!(
        error.contains("monday is not one of the client's training days"),
        "{error}"
    );
    assert!(draft["draft"].is_null());
    assert_eq!(fake.chats().len(), 2);
    // Both calls were paid for, and the failed draft says what they cost.
    assert!(draft["prompt_tokens"].as_i64() > Some(0), "{draft}");
    assert!(draft["cost_usd"].as_f64() > Some(0.0), "{draft}");
    assert!(draft["model_used"].is_string(), "{draft}");
    app.wait_for_mail(&coach.email, "could not be drafted")
        .await;
    let resp = app
        .post_auth(
            "/api/v1/missions",
            &coach.access_token,
            &json!({"draft_id": draft["id"]}),
        )
        .await;
    problem(resp, 409).await;
}

#[tokio::test]
async fn an_oversized_answer_is_a_misfit_asked_again_then_a_clear_failure() {
    let (app, fake) = spawn_app_with_fake().await;
    let coach = app.signed_in_user().await;
    let client_id = app.create_patient(&coach.access_token, "Sam").await;
    let q = questionnaire(&client_id);
    let mut huge = good_plan(&q);
    huge["notes"] = json!("ride ".repeat(80_000));
    huge["weeks"][0]["focus"] = json!("base".repeat(100));
    fake.on_chat([
        Reply::Content(huge.to_string()),
        Reply::Content(huge.to_string()),
    ]);
    let draft = drafted(&app, &coach.access_token, &q).await;
    assert_eq!(draft["status"], "failed", "{}", &draft.to_string()[..300]);
    let error = draft["error"].as_str().unwrap();
    assert!(
        error.contains("notes must be at most 4000 characters"),
        "{error}"
    );
    assert!(
        error.len() < 2_000,
        "the reason names rules, not the answer"
    );
    assert!(draft["draft"].is_null());
    let chats = fake.chats();
    assert_eq!(chats[1]["temperature"], 0.0);

    // An edited plan is held to the same limits.
    fake.on_chat([Reply::Content(good_plan(&q).to_string())]);
    let ready = drafted(&app, &coach.access_token, &q).await;
    let mut plan = ready["draft"].clone();
    plan["notes"] = json!("x".repeat(900_000));
    let resp = app
        .post_auth(
            "/api/v1/missions",
            &coach.access_token,
            &json!({"draft_id": ready["id"], "plan": plan}),
        )
        .await;
    let refused = problem(resp, 422).await;
    assert_eq!(refused["errors"][0]["field"], "plan.notes", "{refused}");
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_then_drafted() {
    let (app, fake) = spawn_app_with_fake().await;
    let coach = app.signed_in_user().await;
    let client_id = app.create_patient(&coach.access_token, "Sam").await;
    let q = questionnaire(&client_id);
    fake.on_chat([
        Reply::Status(429, Some(1)),
        Reply::Content(good_plan(&q).to_string()),
    ]);
    let draft = drafted(&app, &coach.access_token, &q).await;
    assert_eq!(draft["status"], "ready", "{draft}");
    let job = app
        .wait_for_job(
            draft["job_id"].as_str().unwrap(),
            &coach.access_token,
            &["done"],
        )
        .await;
    assert_eq!(job["attempts"], 2, "{job}");
}

#[tokio::test]
async fn each_questionnaire_rule_is_a_422_naming_its_field() {
    let (app, _fake) = spawn_app_with_fake().await;
    let coach = app.signed_in_user().await;
    let token = &coach.access_token;
    let client_id = app.create_patient(token, "Sam").await;
    let q = questionnaire(&client_id);
    let yesterday = (Utc::now().date_naive() - Days::new(1)).to_string();
    let far = (Utc::now().date_naive() + Days::new(400)).to_string();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("event_name", json!(""), "event_name"),
        ("event_name", json!("x".repeat(256)), "event_name"),
        // One line, nothing hidden: NUL, a line break, a bidi override, a zero-width space.
        ("event_name", json!("Tour\u{0}"), "event_name"),
        ("event_name", json!("Tour\r\nX-Injected: 1"), "event_name"),
        ("event_name", json!("Tour \u{202e}edirtS"), "event_name"),
        ("event_name", json!("Tour\u{200b}"), "event_name"),
        ("constraints", json!("knee\u{2028}"), "constraints"),
        ("event_date", json!(yesterday), "event_date"),
        ("event_date", json!(far), "event_date"),
        ("mission_type", json!("time_trial"), "mission_type"),
        (
            "weekly_hours",
            json!({"min": 0, "max": 5}),
            "weekly_hours.min",
        ),
        (
            "weekly_hours",
            json!({"min": 2, "max": 41}),
            "weekly_hours.max",
        ),
        ("weekly_hours", json!({"min": 9, "max": 5}), "weekly_hours"),
        ("current_ftp", json!(49), "current_ftp"),
        ("current_ftp", json!(501), "current_ftp"),
        (
            "preferred_training_days",
            json!(["monday", "funday"]),
            "preferred_training_days[1]",
        ),
        (
            "preferred_training_days",
            json!(["monday", "monday"]),
            "preferred_training_days",
        ),
        ("constraints", json!("x".repeat(1001)), "constraints"),
        ("riding_style", json!("wild"), "riding_style"),
    ];
    for (field, value, named) in cases {
        let mut body = q.clone();
        body[field] = value;
        let resp = post_draft(&app, token, &body, None).await;
        let problem = problem(resp, 422).await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [named], "{field}: {problem}");
    }
    // Several at once are named together.
    let mut body = q.clone();
    body["current_ftp"] = json!(10);
    body["event_name"] = json!("");
    let resp = post_draft(&app, token, &body, None).await;
    assert_eq!(
        problem(resp, 422).await["errors"].as_array().unwrap().len(),
        2
    );
    // A schema violation (an FTP of 900) does not hide the rules' (a minimum above its
    // maximum, a past date): one 422 names all three.
    let mut body = q.clone();
    body["weekly_hours"] = json!({"min": 9, "max": 5});
    body["current_ftp"] = json!(900);
    body["event_date"] = json!(yesterday);
    let problem_doc = problem(post_draft(&app, token, &body, None).await, 422).await;
    let mut named: Vec<&str> = problem_doc["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    named.sort_unstable();
    assert_eq!(
        named,
        ["current_ftp", "event_date", "weekly_hours"],
        "{problem_doc}"
    );
    let mut body = q.clone();
    body.as_object_mut().unwrap().remove("riding_style");
    body.as_object_mut()
        .unwrap()
        .remove("preferred_training_days");
    assert_eq!(
        post_draft(&app, token, &body, None).await.status(),
        202,
        "optional fields"
    );

    // A client account drafts for its own record only.
    let client = app.signed_in_as("patient").await;
    problem(post_draft(&app, &client.access_token, &q, None).await, 404).await;
    app.invite_and_accept(token, &client_id, &client).await;
    assert_eq!(
        post_draft(&app, &client.access_token, &q, None)
            .await
            .status(),
        202
    );
}
