//! A burst of jobs through the whole engine: the ledger, the bounded relay, the transport and
//! the workers. Prints enqueue rate, drain time and throughput, and the largest number of jobs
//! the transport held at once (which must stay within `QUEUE_MAX_IN_FLIGHT`: apalis-redis
//! wedges from about 8,000 due jobs).
//!
//! `cargo bench -p tend-tests --bench burst` on the embedded backends;
//! `eval "$(.ci/services)"` first for PostgreSQL + Redis. `BURST_JOBS` sets the size (20,000).
//!
//! The jobs are `send_email` for an account that does not exist: the handler looks the account
//! up, finds nothing to send and succeeds, so the figures measure the engine, not SMTP.
//! The process's RSS (API, worker and the bench together) is printed before and after.

use std::time::{Duration, Instant};

use tend_shared::jobs::kinds::email::{EmailTemplate, SendEmail};
use tend_shared::{db, jobs::JobOrigin};
use tend_tests::{AppOptions, spawn_app_with, status_kib};

#[tokio::main]
async fn main() {
    let total: i64 = std::env::var("BURST_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let max_in_flight = 1000;
    let concurrency = std::env::var("BURST_CONCURRENCY").unwrap_or_else(|_| "16".into());
    let app = spawn_app_with(AppOptions {
        api_only: true,
        env: vec![
            ("QUEUE_MAX_IN_FLIGHT".into(), max_in_flight.to_string()),
            ("WORKER_CONCURRENCY".into(), concurrency.clone()),
            ("RUST_LOG".into(), "warn".into()),
        ],
    })
    .await;
    let backend = tend_tests::backends();

    let rss_before = status_kib(None, "VmRSS");
    let started = Instant::now();
    let mut tx = app.job_tx().await;
    for _ in 0..total {
        let payload = SendEmail {
            user_id: uuid::Uuid::now_v7(),
            template: EmailTemplate::PasswordChanged,
            subject_id: None,
        };
        tx.enqueue(&payload, &JobOrigin::default()).await.unwrap();
    }
    tx.commit().await.unwrap();
    let enqueue = started.elapsed();

    let started = Instant::now();
    let worker = app.spawn_worker(&[
        ("QUEUE_MAX_IN_FLIGHT", &max_in_flight.to_string()),
        ("WORKER_CONCURRENCY", &concurrency),
    ]);
    let mut peak_in_flight = 0;
    loop {
        let in_flight = db::jobs::in_flight(&app.db, "email").await.unwrap();
        peak_in_flight = peak_in_flight.max(in_flight);
        let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'done'")
            .fetch_one(&app.db)
            .await
            .unwrap();
        if done == total {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "stalled at {done}/{total}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = started.elapsed();
    worker.terminate().await;

    println!("burst of {total} jobs on {backend}, one worker process, concurrency {concurrency}");
    println!(
        "  enqueue (one transaction): {:.2} s, {:.0} jobs/s",
        enqueue.as_secs_f64(),
        total as f64 / enqueue.as_secs_f64()
    );
    println!(
        "  drain: {:.2} s, {:.0} jobs/s end to end",
        drain.as_secs_f64(),
        total as f64 / drain.as_secs_f64()
    );
    println!("  peak jobs in the transport at once: {peak_in_flight} (bound {max_in_flight})");
    println!(
        "  RSS of the process (API, worker and this bench): {:.1} MiB before the enqueue, \
         {:.1} MiB after the drain, {:.1} MiB peak",
        rss_before as f64 / 1024.0,
        status_kib(None, "VmRSS") as f64 / 1024.0,
        status_kib(None, "VmHWM") as f64 / 1024.0
    );
}
