//! Sessions through the whole pipeline with a zero-latency fake provider: upload, transcription
//! job, extraction job, processed. Prints upload rate and sessions processed per minute, so the
//! figure is Tend's own overhead (store, ledger, queue, workers), not the provider's.
//!
//! `cargo bench -p tend-tests --bench pipeline` on the embedded backends; `eval
//! "$(.ci/services)"` first for PostgreSQL + Redis + S3. `PIPELINE_SESSIONS` sets the count
//! (200), `PIPELINE_AUDIO_SECS` each recording's length (60), `WORKER_CONCURRENCY` the
//! workers per queue (4).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use serde_json::Value;
use tend_tests::{AppOptions, fake_openai, fake_openai::FakeOpenAi, spawn_app_with};

#[tokio::main]
async fn main() {
    let total = tend_tests::env_or("PIPELINE_SESSIONS", 200);
    let audio_secs = tend_tests::env_or("PIPELINE_AUDIO_SECS", 60);
    let concurrency = tend_tests::env_or("WORKER_CONCURRENCY", 4);
    let fake = FakeOpenAi::start().await;
    let mut env = fake.env();
    env.push(("WORKER_CONCURRENCY".into(), concurrency.to_string()));
    let app = Arc::new(
        spawn_app_with(AppOptions {
            env,
            api_only: false,
        })
        .await,
    );
    let backend = tend_tests::backends();
    let user = app.signed_in_user().await;
    let patient = app.create_patient(&user.access_token, "Bench").await;
    let audio = fake_openai::wav(audio_secs as f64, 16_000, 1);

    let started = Instant::now();
    let ids: Vec<String> = stream::iter(0..total)
        .map(|_| {
            let (app, token, patient, audio) = (
                app.clone(),
                user.access_token.clone(),
                patient.clone(),
                audio.clone(),
            );
            async move {
                let resp = app
                    .upload_session(&token, &patient, audio, "s.wav", &[])
                    .await;
                assert_eq!(resp.status(), 202);
                let body: Value = resp.json().await.unwrap();
                body["id"].as_str().unwrap().to_owned()
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let uploaded = started.elapsed();

    loop {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM sessions GROUP BY status")
                .fetch_all(&app.db)
                .await
                .unwrap();
        let done: i64 = rows
            .iter()
            .filter(|(s, _)| s == "processed" || s == "failed")
            .map(|(_, n)| n)
            .sum();
        if done as usize >= ids.len() {
            let failed = rows
                .iter()
                .find(|(s, _)| s == "failed")
                .map_or(0, |(_, n)| *n);
            assert_eq!(failed, 0, "sessions failed: {rows:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    println!("backends: {backend}; worker concurrency {concurrency} per queue");
    println!(
        "{total} sessions of {audio_secs} s audio ({:.1} MB each): uploaded in {:.1} s ({:.0}/s)",
        audio.len() as f64 / 1e6,
        uploaded.as_secs_f64(),
        total as f64 / uploaded.as_secs_f64()
    );
    println!(
        "all processed in {:.1} s: {:.0} sessions per minute ({} transcription + {} chat calls)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64() * 60.0,
        fake.transcriptions().len(),
        fake.chats().len()
    );
}
