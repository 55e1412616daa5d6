//! Tenant fairness under a backlog: practice A has `FAIR_BACKLOG` (10,000) transcripts waiting
//! for extraction when the extraction worker starts; every 200 ms practice B uploads one more
//! while A's backlog drains. Prints how long B's jobs waited to start (p50, p99, max) and the
//! throughput of the whole drain, twice: once with B's uploads made under A's account (one
//! tenant: first-in first-out, the order before tenants took turns) and once as B.
//!
//! `cargo bench -p tend-tests --bench fairness` on the embedded backends; `eval
//! "$(.ci/services)"` first for PostgreSQL + Redis + S3. The provider is the zero-latency fake,
//! so the figures are Tend's own. `FAIR_BACKLOG` sets A's backlog, `WORKER_CONCURRENCY` the
//! extraction worker's slots (8).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use tend_shared::db;
use tend_tests::{AppOptions, TestApp, fake_openai::FakeOpenAi, spawn_app_with};

/// How often B uploads while A's backlog drains.
const B_EVERY: Duration = Duration::from_millis(200);

#[tokio::main]
async fn main() {
    let backlog = tend_tests::env_or("FAIR_BACKLOG", 10_000);
    let concurrency = tend_tests::env_or("WORKER_CONCURRENCY", 8);
    println!(
        "backends: {}; A's backlog {backlog} extraction jobs; worker concurrency {concurrency}",
        tend_tests::backends()
    );
    for b_is_a_tenant in [false, true] {
        let run = run(backlog, concurrency, b_is_a_tenant).await;
        let mode = if b_is_a_tenant {
            "tenants take turns      "
        } else {
            "one tenant (first in, first out)"
        };
        println!(
            "{mode}: B's {} jobs started after p50 {:.3} s, p99 {:.3} s, max {:.3} s; \
             drain {:.1} s, {:.0} jobs/s",
            run.waits.len(),
            percentile(&run.waits, 0.50),
            percentile(&run.waits, 0.99),
            percentile(&run.waits, 1.0),
            run.drain.as_secs_f64(),
            run.jobs as f64 / run.drain.as_secs_f64(),
        );
    }
}

struct Run {
    /// Seconds from each of B's jobs' enqueue to its start.
    waits: Vec<f64>,
    /// From the worker's start to the last job done.
    drain: Duration,
    /// Jobs run in that time.
    jobs: usize,
}

async fn run(backlog: usize, concurrency: usize, b_is_a_tenant: bool) -> Run {
    let fake = FakeOpenAi::start().await;
    let mut env = fake.env();
    env.push(("RUST_LOG".into(), "warn".into()));
    // Uploads are limited per practitioner and hour (60 by default).
    env.push(("UPLOADS_PER_HOUR".into(), "1000000".into()));
    let app = Arc::new(
        spawn_app_with(AppOptions {
            env,
            api_only: true,
        })
        .await,
    );
    let _mail = app.spawn_worker(&[("WORKER_QUEUES", "email")]);
    let a = app.signed_in_user().await;
    let b = if b_is_a_tenant {
        app.signed_in_user().await
    } else {
        a.clone()
    };
    let a_patient = app.create_patient(&a.access_token, "A's client").await;
    let b_patient = app.create_patient(&b.access_token, "B's client").await;

    // A's backlog, waiting: nothing serves extraction yet.
    let setup = Instant::now();
    let mut jobs: Vec<String> = stream::iter(0..backlog)
        .map(|_| upload(app.clone(), a.access_token.clone(), a_patient.clone()))
        .buffer_unordered(16)
        .collect()
        .await;
    eprintln!(
        "  {backlog} uploads in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let worker = app.spawn_worker(&[
        ("WORKER_QUEUES", "extraction"),
        ("WORKER_CONCURRENCY", &concurrency.to_string()),
    ]);
    // B uploads at a steady pace while A's backlog drains.
    let mut b_jobs = Vec::new();
    while done(&app).await < backlog && b_jobs.len() < 1000 {
        b_jobs.push(upload(app.clone(), b.access_token.clone(), b_patient.clone()).await);
        tokio::time::sleep(B_EVERY).await;
    }
    jobs.extend(b_jobs.iter().cloned());
    while done(&app).await < jobs.len() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drain = started.elapsed();
    let mut waits = Vec::new();
    for id in &b_jobs {
        let job = db::jobs::find(&app.db, id).await.unwrap().unwrap();
        let start = job.started_at.expect("started");
        waits.push((start - job.created_at) as f64 / 1000.0);
    }
    waits.sort_by(f64::total_cmp);
    worker.terminate().await;
    Run {
        waits,
        drain,
        jobs: jobs.len(),
    }
}

/// Uploads a transcript; returns its extraction job's id.
async fn upload(app: Arc<TestApp>, token: String, patient: String) -> String {
    let session = app.upload_transcript(&token, &patient).await;
    session["job_id"].as_str().unwrap().to_owned()
}

/// How many extraction jobs are done.
async fn done(app: &TestApp) -> usize {
    let done: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE kind = 'extract_notes' AND state = 'done'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    done as usize
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
