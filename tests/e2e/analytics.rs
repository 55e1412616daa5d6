//! Analytics over HTTP: a practitioner's overview, a patient's weekly progress (live, then
//! from the weekly snapshot), session trends and common topics, from sessions processed by
//! the real pipeline against the fake provider; the daily rollup is idempotent and admins read
//! it; bad parameters are 422, other practitioners' patients 404.

use std::time::Duration;

use chrono::{Days, Utc};
use serde_json::{Value, json};
use tend_tests::{TestApp, fake_openai::FakeOpenAi, problem, spawn_app_with_env};

use tend_tests::VTT;

async fn get_json(app: &TestApp, path: &str, token: &str) -> Value {
    let resp = app.get(path, Some(token)).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Uploads a transcript recorded at `recorded_at` and waits for its notes.
async fn processed_session(app: &TestApp, token: &str, patient: &str, recorded_at: &str) -> String {
    let resp = app
        .upload_session(
            token,
            patient,
            VTT.as_bytes().to_vec(),
            "t.vtt",
            &[("recorded_at", recorded_at)],
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    let id = body["id"].as_str().expect("an accepted upload").to_owned();
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

/// A `daily_stats` row: practitioner, day, then its counts.
type RollupRow = (String, String, i64, i64, i64, i64, i64, i64);

async fn rollup_rows(app: &TestApp) -> Vec<Value> {
    let rows: Vec<RollupRow> = sqlx::query_as(
        "SELECT practitioner_id, day, recordings_uploaded, recordings_processed, new_patients, \
         mood_sum, mood_count, cost_micro_usd FROM daily_stats ORDER BY practitioner_id, day",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    rows.into_iter().map(|r| json!(r)).collect()
}

#[tokio::test]
async fn practitioners_see_their_figures_from_the_analytics_tables() {
    let fake = FakeOpenAi::start().await;
    let env: Vec<(String, String)> = fake.env();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with_env(&pairs).await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let alex = app.create_patient(token, "Alex Example").await;
    let sam = app.create_patient(token, "Sam Example").await;
    let now = Utc::now();
    let week_ago = (now - chrono::Duration::days(7)).to_rfc3339();
    processed_session(&app, token, &alex, &now.to_rfc3339()).await;
    processed_session(&app, token, &alex, &week_ago).await;
    processed_session(&app, token, &sam, &now.to_rfc3339()).await;
    let mood: i64 = sqlx::query_scalar("SELECT mood_score FROM session_metrics LIMIT 1")
        .fetch_one(&app.db)
        .await
        .unwrap();

    let overview = get_json(&app, "/api/v1/analytics/overview", token).await;
    assert_eq!(overview["patients"], 2, "{overview}");
    assert_eq!(overview["active_patients"], 2);
    assert_eq!(overview["sessions_this_week"], 2);
    assert_eq!(overview["sessions_last_week"], 1);
    assert_eq!(overview["average_mood"].as_f64(), Some(mood as f64));
    // The month's cost is what the sessions' own views say they cost (a session recorded
    // last week was still paid for today).
    let mut session_costs = 0.0;
    let sessions = get_json(&app, "/api/v1/sessions?limit=10", token).await;
    for s in sessions["items"].as_array().unwrap() {
        let one = get_json(
            &app,
            &format!("/api/v1/sessions/{}", s["id"].as_str().unwrap()),
            token,
        )
        .await;
        session_costs += one["usage"]["estimated_cost_usd"].as_f64().unwrap_or(0.0);
    }
    let cost = overview["cost_this_month_usd"].as_f64().unwrap();
    assert!(
        cost > 0.0 && (cost - session_costs).abs() < 1e-9,
        "{cost} vs {session_costs}"
    );

    // Progress: both weeks live at first.
    let path = format!("/api/v1/analytics/patients/{alex}/progress?weeks=2");
    let live = get_json(&app, &path, token).await;
    let weeks = live["weeks"].as_array().unwrap();
    assert_eq!(weeks.len(), 2, "{live}");
    for week in weeks {
        assert_eq!(week["sessions"], 1, "{week}");
        assert_eq!(week["source"], "live");
        assert_eq!(week["trajectories"]["improving"], 1);
        assert_eq!(week["action_items"], 3);
        assert_eq!(week["top_topics"][0]["sessions"], 1);
    }
    assert_eq!(
        weeks[1]["mood_trend"].as_f64(),
        Some(0.0),
        "same mood as the week before"
    );
    assert!(weeks[0]["mood_trend"].is_null(), "nothing before it");

    // The weekly snapshot (and the daily rollup) over the last week: last week now reads from
    // the snapshot, with the same figures; the current week stays live.
    let today = now.date_naive();
    tend_api::commands::backfill_stats(&app.db, today - Days::new(7), today)
        .await
        .unwrap();
    let snap = get_json(&app, &path, token).await;
    assert_eq!(snap["weeks"][0]["source"], "snapshot", "{snap}");
    assert_eq!(snap["weeks"][1]["source"], "live");
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("source");
        v
    };
    assert_eq!(strip(snap["weeks"][0].clone()), strip(weeks[0].clone()));

    // Running the rollup again gives the same rows.
    let first = rollup_rows(&app).await;
    assert!(!first.is_empty());
    tend_api::commands::backfill_stats(&app.db, today - Days::new(7), today)
        .await
        .unwrap();
    let second = rollup_rows(&app).await;
    assert_eq!(first, second);
    let today_row = first
        .iter()
        .find(|r| r[1] == today.to_string())
        .expect("a row for today");
    assert_eq!(today_row[2], 3, "three uploads today: {today_row}");
    assert_eq!(today_row[4], 2, "two new patients");

    // Trends: 7 daily buckets (the session of a week ago falls just outside), then months.
    let trends = get_json(&app, "/api/v1/analytics/session-trends?period=7d", token).await;
    let buckets = trends["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 7, "{trends}");
    let total: i64 = buckets
        .iter()
        .map(|b| b["sessions"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 2);
    assert_eq!(buckets[6]["start"], today.to_string());
    assert_eq!(buckets[6]["sessions"], 2);
    assert!(
        buckets[0]["average_mood"].is_null(),
        "empty buckets are there, without a mood"
    );
    let months = get_json(
        &app,
        "/api/v1/analytics/session-trends?period=90d&granularity=month",
        token,
    )
    .await;
    let total: i64 = months["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["sessions"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 3, "{months}");
    let weeks = get_json(
        &app,
        "/api/v1/analytics/session-trends?period=30d&granularity=week",
        token,
    )
    .await;
    for bucket in weeks["buckets"].as_array().unwrap() {
        let start: chrono::NaiveDate = bucket["start"].as_str().unwrap().parse().unwrap();
        assert_eq!(chrono::Datelike::weekday(&start), chrono::Weekday::Mon);
    }

    let topics = get_json(&app, "/api/v1/analytics/common-topics?limit=2", token).await;
    assert_eq!(topics["sessions"], 3, "{topics}");
    assert_eq!(topics["items"].as_array().unwrap().len(), 2);
    assert_eq!(topics["items"][0]["sessions"], 3);

    // Bad parameters name themselves.
    for (query, field) in [
        ("session-trends?period=2d", "period"),
        ("session-trends?granularity=hour", "granularity"),
        ("common-topics?limit=500", "limit"),
        ("common-topics?weeks=0", "weeks"),
    ] {
        let body = problem(
            app.get(&format!("/api/v1/analytics/{query}"), Some(token))
                .await,
            422,
        )
        .await;
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    let body = problem(
        app.get(
            &format!("/api/v1/analytics/patients/{alex}/progress?weeks=53"),
            Some(token),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "weeks");

    // Someone else's patient is not found; a patient account has no analytics.
    let other = app.signed_in_user().await;
    problem(app.get(&path, Some(&other.access_token)).await, 404).await;
    let other_overview = get_json(&app, "/api/v1/analytics/overview", &other.access_token).await;
    assert_eq!(other_overview["patients"], 0);
    let patient = app.signed_in_as("patient").await;
    problem(
        app.get("/api/v1/analytics/overview", Some(&patient.access_token))
            .await,
        403,
    )
    .await;

    // Admins read the platform-wide rollup.
    let admin = &app.admin_token().await;
    let stats = get_json(&app, "/api/v1/admin/stats", admin).await;
    assert_eq!(stats["days"][0]["day"], today.to_string(), "{stats}");
    assert_eq!(stats["days"][0]["recordings_uploaded"], 3);
    assert_eq!(stats["practitioners"], 2);
    assert!(
        stats["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["kind"] == "extract_notes" && j["done"].as_i64() >= Some(3)),
        "{stats}"
    );
    problem(app.get("/api/v1/admin/stats", Some(token)).await, 403).await;
}
