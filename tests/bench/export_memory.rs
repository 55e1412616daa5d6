//! Memory of a worker building a personal data export with 1 GB of audio: the real
//! `tend-worker` release binary, a separate process, writes the ZIP of a practitioner with
//! `EXPORT_RECORDINGS` recordings of `EXPORT_RECORDING_MB` MB each (20 x 50 MB) stored in
//! the object store. The archive streams through a local file, so the peak RSS must stay
//! far below the audio's size. Prints the worker's RSS idle and at peak (VmHWM), the
//! archive's size and the time taken.
//!
//! `cargo build --release -p tend-worker && cargo bench -p tend-tests --bench export_memory`
//! (embedded backends; with `.ci/services`' variables exported, PostgreSQL + Redis + S3).

use std::time::{Duration, Instant};

use serde_json::Value;
use tend_shared::{db, sessions::SessionStatus};
use tend_tests::{AppOptions, env_or, fake_openai::FakeOpenAi, spawn_app_with, status_kib};

#[tokio::main]
async fn main() {
    let count: usize = env_or("EXPORT_RECORDINGS", 20);
    let mb: usize = env_or("EXPORT_RECORDING_MB", 50);
    let worker_bin = tend_tests::release_worker_bin();
    let fake = FakeOpenAi::start().await;
    let app = spawn_app_with(AppOptions {
        api_only: true,
        env: fake.env(),
    })
    .await;
    let mut worker = tend_tests::spawn_release_worker(&worker_bin, &app.env);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kib = status_kib(Some(worker.id()), "VmRSS");
    let user = app.signed_in_user().await;
    let patient = app.create_patient(&user.access_token, "Bench").await;

    // The recordings, written straight into the store and the sessions table.
    let store = app.store().await;
    for i in 0..count {
        let id = db::new_id().to_string();
        let key = format!("sessions/{}/{id}", user.id);
        let chunk = bytes::Bytes::from(
            (0..1_048_576u32)
                .map(|b| (b * 31 + i as u32) as u8)
                .collect::<Vec<u8>>(),
        );
        let body =
            futures::stream::iter((0..mb).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
        store
            .put(&key, "audio/mpeg", Box::pin(body), u64::MAX)
            .await
            .unwrap();
        let mut conn = app.db.acquire().await.unwrap();
        db::sessions::insert(
            &mut conn,
            &db::sessions::NewSession {
                id: &id,
                practitioner_id: &user.id,
                patient_id: &patient,
                status: SessionStatus::Failed,
                source: "audio",
                media_type: "audio/mpeg",
                object_key: Some(&key),
                size_bytes: (mb * 1_048_576) as i64,
                recorded_at: None,
                duration_ms: None,
                transcript: None,
                segments: None,
                job_id: &db::new_id().to_string(),
                idempotency_key: None,
                idempotency_fingerprint: None,
            },
        )
        .await
        .unwrap();
    }
    let audio_mb = count * mb;

    let started = Instant::now();
    let resp = app
        .post_empty("/api/v1/users/me/data-export", &user.access_token)
        .await;
    assert_eq!(resp.status(), 202);
    let export: Value = resp.json().await.unwrap();
    let id = export["id"].as_str().unwrap().to_owned();
    let mut sampled_peak = idle_kib;
    let export = loop {
        sampled_peak = sampled_peak.max(status_kib(Some(worker.id()), "VmRSS"));
        let view: Value = app
            .get(
                &format!("/api/v1/users/me/data-exports/{id}"),
                Some(&user.access_token),
            )
            .await
            .json()
            .await
            .unwrap();
        if view["status"] == "ready" || view["status"] == "failed" {
            break view;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "stuck: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = started.elapsed().as_secs_f64();
    let hwm_kib = status_kib(Some(worker.id()), "VmHWM");
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(export["status"], "ready", "{export}");
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "data export of {count} recordings, {audio_mb} MiB of audio, on {}",
        tend_tests::backends()
    );
    println!(
        "  archive {:.0} MiB, built and stored in {elapsed:.1} s",
        export["size_bytes"].as_f64().unwrap() / 1_048_576.0
    );
    println!(
        "  worker RSS: {:.1} MiB idle, {:.1} MiB peak (VmHWM; sampled peak {:.1} MiB)",
        mib(idle_kib),
        mib(hwm_kib),
        mib(sampled_peak)
    );
}
