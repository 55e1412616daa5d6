//! One provider rate limit shared by many workers: 4 worker processes × concurrency 8 extract
//! notes against a fake provider that lets 60 requests a minute through and answers the rest
//! `429` with `Retry-After`, with `PROVIDER_LIMITS` set to the same 60. Prints the provider's
//! 429s (in all, and after the first minute) and the requests it answered per minute after
//! the first.
//!
//! Needs Redis (the limit is shared through it): `eval "$(.ci/services)"`, then
//! `cargo bench -p tend-tests --bench provider_limits`. `LIMITS_BENCH_SECS` sets the length
//! (180), `LIMITS_RPM` the limit (60).

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use tend_tests::{
    AppOptions,
    fake_openai::{CHAT_MODEL, FakeOpenAi},
    spawn_app_with,
};

#[tokio::main]
async fn main() {
    if std::env::var("TEST_REDIS_URL").is_err() {
        eprintln!("needs Redis: eval \"$(.ci/services)\" first (the limit is shared through it)");
        std::process::exit(2);
    }
    let secs = tend_tests::env_or("LIMITS_BENCH_SECS", 180);
    let rpm = tend_tests::env_or("LIMITS_RPM", 60);
    let fake = FakeOpenAi::start().await;
    let mut env = fake.env();
    env.push(("PROVIDER_LIMITS".into(), format!("{CHAT_MODEL}={rpm}")));
    env.push(("RUST_LOG".into(), "error".into()));
    // Uploads are limited per practitioner and hour (60 by default).
    env.push(("UPLOADS_PER_HOUR".into(), "1000000".into()));
    let app = std::sync::Arc::new(
        spawn_app_with(AppOptions {
            env,
            api_only: true,
        })
        .await,
    );
    let _mail = app.spawn_worker(&[("WORKER_QUEUES", "email")]);
    let user = app.signed_in_user().await;
    let patient = app.create_patient(&user.access_token, "Bench").await;
    // More work than the run can do at the limit.
    let backlog = (rpm * secs / 60 + rpm) as usize;
    let _: Vec<()> = stream::iter(0..backlog)
        .map(|_| {
            let (app, token, patient) = (app.clone(), user.access_token.clone(), patient.clone());
            async move {
                app.upload_transcript(&token, &patient).await;
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    fake.limit_per_minute(rpm as usize);

    let started = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|_| app.spawn_worker(&[("WORKER_QUEUES", "extraction"), ("WORKER_CONCURRENCY", "8")]))
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let ended = Instant::now();
    let minute = started + Duration::from_secs(60);
    let limited = fake.limited();
    let answered = fake.let_through();
    let late_429s = limited.iter().filter(|t| **t >= minute).count();
    let late_answers = answered
        .iter()
        .filter(|t| **t >= minute && **t < ended)
        .count();
    let late_minutes = ended.duration_since(minute).as_secs_f64() / 60.0;
    println!(
        "backends: {}; 4 worker processes x concurrency 8; provider and PROVIDER_LIMITS at {rpm} requests a minute; {secs} s",
        tend_tests::backends()
    );
    println!(
        "provider 429s: {} in all, {late_429s} after the first minute",
        limited.len()
    );
    println!(
        "answered after the first minute: {late_answers} in {late_minutes:.2} min = {:.1} a minute ({:.1}% of the limit)",
        late_answers as f64 / late_minutes,
        late_answers as f64 / late_minutes / rpm as f64 * 100.0
    );
    for worker in workers {
        worker.kill();
    }
}
