//! The provider's rate limit is one budget for every worker replica (issue 22, item 3): two
//! worker processes on Redis share a model's requests per minute, and a `429` with
//! `Retry-After` met by one pauses both.

use std::time::Duration;

use tend_tests::{
    AppOptions,
    fake_openai::{CHAT_MODEL, FakeOpenAi, Reply},
    spawn_app_with,
};

/// Sessions whose notes are extracted.
const SESSIONS: usize = 16;

#[tokio::test]
#[ignore = "needs redis-server: eval \"$(.ci/services)\", then cargo test -- --include-ignored"]
async fn two_worker_processes_share_one_rate_limit_and_one_pause() {
    assert!(
        std::env::var("TEST_REDIS_URL").is_ok(),
        "the limit is shared through Redis: set TEST_REDIS_URL"
    );
    let fake = FakeOpenAi::start().await;
    let mut env = fake.env();
    // Two requests a second, a burst of two.
    env.push(("PROVIDER_LIMITS".into(), format!("{CHAT_MODEL}=120")));
    let app = spawn_app_with(AppOptions {
        env,
        api_only: true,
    })
    .await;
    let _mail = app.spawn_worker(&[("WORKER_QUEUES", "email")]);
    let user = app.signed_in_user().await;
    let patient = app.create_patient(&user.access_token, "Limited").await;
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS {
        let body = app.upload_transcript(&user.access_token, &patient).await;
        sessions.push(body["id"].as_str().unwrap().to_owned());
    }
    // The fake records when each request arrives (its own limit is far away), and answers
    // the first one 429 with Retry-After: 2.
    fake.limit_per_minute(10_000);
    fake.on_chat([Reply::Status(429, Some(2))]);

    let workers: Vec<_> = (0..2)
        .map(|_| app.spawn_worker(&[("WORKER_QUEUES", "extraction"), ("WORKER_CONCURRENCY", "4")]))
        .collect();
    for id in &sessions {
        app.wait_for_session(
            id,
            &user.access_token,
            &["processed"],
            Duration::from_secs(60),
        )
        .await;
    }
    let mut calls = fake.let_through();
    calls.sort();
    assert_eq!(
        calls.len(),
        SESSIONS + 1,
        "an answer each and the one refused"
    );
    let refused = calls[0];
    let since = |t: &std::time::Instant| t.duration_since(refused).as_secs_f64();
    // The pause held both processes: nothing was sent during the two seconds but what was
    // already on its way with the refused request (the burst of two).
    let during: Vec<f64> = calls
        .iter()
        .map(since)
        .filter(|s| *s > 0.1 && *s < 1.9)
        .collect();
    assert!(during.is_empty(), "requests {during:?} s after the 429");
    // Then two a second across both processes (eight slots waiting): each request at least
    // half a second after the one before, less the timer's slack and a burst of two. Two
    // unshared limits would have gone at four a second.
    let after: Vec<f64> = calls.iter().map(since).filter(|s| *s >= 1.9).collect();
    assert!(after.len() >= SESSIONS - 1, "{after:?}");
    let span = after[after.len() - 1] - after[0];
    let least = (after.len() - 3) as f64 * 0.5 * 0.9;
    assert!(
        span >= least,
        "{} requests in {span:.2} s (at least {least:.2} s at two a second): the limit was not shared",
        after.len()
    );
    for worker in workers {
        worker.terminate().await;
    }
}
