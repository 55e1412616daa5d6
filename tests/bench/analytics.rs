//! Analytics at scale: seeds 200 practitioners, 5,000 patients and 100,000 processed sessions
//! (with their metrics rows and provider calls, spread over the last year), computes the
//! rollups, then prints each analytics endpoint's p50 and p99 over HTTP, and the time of one
//! day's stats and one week's snapshot. Targets: p99 under 50 ms, a day under 5 s.
//!
//! `cargo bench -p tend-tests --bench analytics` on SQLite; `eval "$(.ci/services)"` first for
//! PostgreSQL. `ANALYTICS_SESSIONS` (100,000) and `ANALYTICS_REQUESTS` (200 per endpoint)
//! set the size.

use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use serde_json::Value;
use tend_shared::db::{
    self,
    stats::{self, Week},
};
use tend_tests::{AppOptions, PASSWORD, TestApp, env_or, spawn_app_with, unique_email};

const PRACTITIONERS: usize = 200;
const PATIENTS: usize = 5_000;
const DAY_MS: i64 = 86_400_000;
const TOPICS: [&str; 8] = [
    "Sleep",
    "sleep",
    "work stress",
    "Family",
    "families",
    "anxiety",
    "exercise",
    "grief",
];
const TRAJECTORIES: [&str; 4] = ["improving", "declining", "stable", "fluctuating"];

/// Inserts `rows` (each a list of SQL literals) into `table` in statements of 500 rows.
async fn insert_rows(app: &TestApp, table: &str, columns: &str, rows: &[String]) {
    let mut tx = app.db.begin().await.unwrap();
    for chunk in rows.chunks(500) {
        let sql = format!(
            "INSERT INTO {table} ({columns}) VALUES {}",
            chunk.join(", ")
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn timed_get(app: &TestApp, path: &str, token: &str, requests: usize) -> (f64, f64) {
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        let resp = app.get(path, Some(token)).await;
        let status = resp.status();
        let body = resp.bytes().await.unwrap();
        times.push(started.elapsed());
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| ms(times[((times.len() as f64 * q).ceil() as usize).max(1) - 1]);
    (p(0.50), p(0.99))
}

#[tokio::main]
async fn main() {
    let sessions = env_or::<usize>("ANALYTICS_SESSIONS", 100_000);
    let requests = env_or::<usize>("ANALYTICS_REQUESTS", 200);
    // Workers run (the sign-in needs its verification mail); no other jobs are started.
    let app = spawn_app_with(AppOptions {
        api_only: false,
        env: vec![
            ("RUST_LOG".into(), "warn".into()),
            ("API_RATE_LIMIT_PER_MINUTE".into(), "1000000".into()),
        ],
    })
    .await;
    let backend = tend_tests::backends();

    // One practitioner signs in for real; the other 199 are rows.
    let me = app.signed_in_user().await;
    let admin_email = unique_email();
    tend_api::commands::create_admin(&app.db, &admin_email, PASSWORD)
        .await
        .unwrap();
    let login: Value = app
        .login(&admin_email, PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let admin = login["access_token"].as_str().unwrap().to_owned();

    let seeding = Instant::now();
    let now = db::now_ms();
    let year_ago = now - 365 * DAY_MS;
    let mut practitioners = vec![me.id.clone()];
    let mut users = Vec::new();
    for i in 1..PRACTITIONERS {
        let id = db::new_id().to_string();
        users.push(format!(
            "('{id}', 'seed{i}-{id}@example.org', 'x', 'practitioner', {year_ago}, {year_ago})"
        ));
        practitioners.push(id);
    }
    insert_rows(
        &app,
        "users",
        "id, email, password_hash, role, created_at, updated_at",
        &users,
    )
    .await;
    let mut patients = Vec::new();
    let mut patient_rows = Vec::new();
    for i in 0..PATIENTS {
        let id = db::new_id().to_string();
        let owner = &practitioners[i % PRACTITIONERS];
        let created = year_ago + (i as i64 * 365 * DAY_MS) / PATIENTS as i64;
        patient_rows.push(format!(
            "('{id}', '{owner}', 'Patient {i}', {created}, {created})"
        ));
        patients.push((id, owner.clone()));
    }
    insert_rows(
        &app,
        "patients",
        "id, practitioner_id, display_name, created_at, updated_at",
        &patient_rows,
    )
    .await;
    let (mut session_rows, mut metric_rows, mut usage_rows) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..sessions {
        let id = db::new_id().to_string();
        let (patient, owner) = &patients[i % PATIENTS];
        let at = year_ago + (i as i64 * 365 * DAY_MS) / sessions as i64;
        let done = at + 120_000;
        session_rows.push(format!(
            "('{id}', '{owner}', '{patient}', 'processed', 'audio', 'audio/mpeg', 1000000, {at}, \
             2700000, {at}, {done}, {at}, {done}, {at}, {done})"
        ));
        let topics = format!(
            "[\"{}\", \"{}\"]",
            TOPICS[i % TOPICS.len()],
            TOPICS[(i / 3) % TOPICS.len()]
        );
        metric_rows.push(format!(
            "('{id}', '{owner}', '{patient}', {at}, 2700000, {}, '{}', '{topics}', 2, 3, {}, {done})",
            1 + i % 5,
            TRAJECTORIES[i % 4],
            i % 7 / 6,
        ));
        usage_rows.push(format!(
            "('{}', '{}', '{id}', 'transcription', 'whisper-1', 2700000, 0, 0, 270000, {done})",
            db::new_id(),
            db::new_id()
        ));
    }
    insert_rows(
        &app,
        "sessions",
        "id, practitioner_id, patient_id, status, source, media_type, size_bytes, recorded_at, \
         duration_ms, transcription_started_at, transcription_finished_at, \
         extraction_started_at, extraction_finished_at, created_at, updated_at",
        &session_rows,
    )
    .await;
    insert_rows(
        &app,
        "session_metrics",
        "session_id, practitioner_id, patient_id, session_date, duration_ms, mood_score, \
         mood_trajectory, topics, strategy_count, action_item_count, risk_flag_count, created_at",
        &metric_rows,
    )
    .await;
    insert_rows(
        &app,
        "provider_usage",
        "id, job_id, session_id, stage, model, audio_ms, prompt_tokens, completion_tokens, \
         cost_micro_usd, created_at",
        &usage_rows,
    )
    .await;
    let seeded = seeding.elapsed();

    // The rollups: one day (timed), then the last 60 days and 12 weeks (for the reads).
    let today = Utc::now().date_naive();
    let day = today - Days::new(1);
    let started = Instant::now();
    let summary = stats::compute_day(&app.db, day).await.unwrap();
    let one_day = started.elapsed();
    let started = Instant::now();
    let patients_in_week = stats::snapshot_week(&app.db, Week::of(today).previous())
        .await
        .unwrap();
    let one_week = started.elapsed();
    tend_api::commands::backfill_stats(&app.db, today - Days::new(60), today)
        .await
        .unwrap();

    let my_patient = &patients[0].0;
    let endpoints = [
        (
            "overview",
            "/api/v1/analytics/overview".to_owned(),
            &me.access_token,
        ),
        (
            "patient progress (12 weeks)",
            format!("/api/v1/analytics/patients/{my_patient}/progress?weeks=12"),
            &me.access_token,
        ),
        (
            "session trends 30d/day",
            "/api/v1/analytics/session-trends".to_owned(),
            &me.access_token,
        ),
        (
            "session trends 1y/week",
            "/api/v1/analytics/session-trends?period=1y&granularity=week".to_owned(),
            &me.access_token,
        ),
        (
            "common topics (12 weeks)",
            "/api/v1/analytics/common-topics".to_owned(),
            &me.access_token,
        ),
        ("admin stats", "/api/v1/admin/stats".to_owned(), &admin),
    ];
    println!(
        "analytics on {backend}: {PRACTITIONERS} practitioners, {PATIENTS} patients, \
         {sessions} processed sessions (seeded in {:.1} s); {requests} requests per endpoint",
        seeded.as_secs_f64()
    );
    println!(
        "one day's stats ({day}, {} practitioners, {} sessions held): {:.0} ms",
        summary.practitioners,
        summary.platform.mood_count,
        one_day.as_secs_f64() * 1000.0
    );
    println!(
        "one week's snapshot ({} patients): {:.0} ms",
        patients_in_week,
        one_week.as_secs_f64() * 1000.0
    );
    println!("{:<30} {:>8} {:>8}", "endpoint", "p50 ms", "p99 ms");
    for (name, path, token) in endpoints {
        let (p50, p99) = timed_get(&app, &path, token, requests).await;
        println!("{name:<30} {p50:>8.1} {p99:>8.1}");
    }
}
