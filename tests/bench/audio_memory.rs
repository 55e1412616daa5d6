//! Memory of a worker chunking a long recording: the real `tend-worker` release binary, a
//! separate process, transcribes an 8-hour (about 460 MB) MP3 through the fake provider.
//! Decoding, resampling and cutting stream from the file into chunk files, so the worker's
//! peak RSS must not grow with the recording. Prints the worker's RSS before, its peak (VmHWM),
//! the chunks sent and the time taken.
//!
//! `cargo build --release -p tend-worker && cargo bench -p tend-tests --bench audio_memory`
//! (embedded backends; with `.ci/services`' variables exported, PostgreSQL + Redis + S3).
//! `AUDIO_HOURS` sets the length (8). The worker binary is built first because `cargo bench`
//! holds the build directory while the bench runs.

use std::time::{Duration, Instant};

use serde_json::Value;
use tend_tests::{AppOptions, fake_openai, fake_openai::FakeOpenAi, spawn_app_with, status_kib};

#[tokio::main]
async fn main() {
    let hours: f64 = std::env::var("AUDIO_HOURS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8.0);
    let worker_bin = tend_tests::release_worker_bin();
    let fake = FakeOpenAi::start().await;
    let app = spawn_app_with(AppOptions {
        api_only: true,
        env: fake.env(),
    })
    .await;
    // The worker process runs every job, the sign-up mail included.
    let mut worker = tend_tests::spawn_release_worker(&worker_bin, &app.env);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kib = status_kib(Some(worker.id()), "VmRSS");
    let user = app.signed_in_user().await;
    let patient = app.create_patient(&user.access_token, "Bench").await;
    let audio = fake_openai::silent_mp3(hours * 3600.0);
    let audio_mb = audio.len() as f64 / 1e6;
    let resp = app
        .upload_session(&user.access_token, &patient, audio, "day.mp3", &[])
        .await;
    assert_eq!(resp.status(), 202);
    let session: Value = resp.json().await.unwrap();
    let id = session["id"].as_str().unwrap().to_owned();

    let started = Instant::now();
    let mut sampled_peak = idle_kib;
    let status = loop {
        sampled_peak = sampled_peak.max(status_kib(Some(worker.id()), "VmRSS"));
        let resp = app
            .get(&format!("/api/v1/sessions/{id}"), Some(&user.access_token))
            .await;
        let view: Value = resp.json().await.unwrap();
        let status = view["status"].as_str().unwrap_or_default().to_owned();
        if status == "processed" || status == "failed" {
            break view;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "stuck: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let hwm_kib = status_kib(Some(worker.id()), "VmHWM");
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(status["status"], "processed", "{status}");

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "worker chunking a {hours}-hour MP3 ({audio_mb:.0} MB) on {}",
        tend_tests::backends()
    );
    println!(
        "  {} chunks sent, upload to processed in {:.0} s",
        fake.transcriptions().len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "  worker RSS: {:.1} MiB idle, {:.1} MiB peak (VmHWM; sampled peak {:.1} MiB)",
        mib(idle_kib),
        mib(hwm_kib),
        mib(sampled_peak)
    );
}
