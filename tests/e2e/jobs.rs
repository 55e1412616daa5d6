//! The job engine: ownership, retries, permanent failures, a killed worker's job taken over,
//! a graceful drain, the bounded relay, deduplicated schedules.

use std::time::Duration;

use serde_json::Value;
use tend_shared::jobs::kinds::cleanup::Cleanup;
use tend_shared::{
    db,
    jobs::{JobOrigin, JobState},
};
use tend_tests::{
    AppOptions, PASSWORD, eventually, problem, smtp::SlowSmtp, spawn_api_only, spawn_app,
    spawn_app_with, spawn_app_with_env, unique_email,
};

async fn register(app: &tend_tests::TestApp) -> (String, String, String) {
    let email = unique_email();
    let body: Value = app
        .register(&email, PASSWORD, "practitioner")
        .await
        .json()
        .await
        .unwrap();
    let job_id = body["verification_email_job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let login: Value = app.login(&email, PASSWORD).await.json().await.unwrap();
    (
        email,
        job_id,
        login["access_token"].as_str().unwrap().to_owned(),
    )
}

async fn job_state(app: &tend_tests::TestApp, id: &str) -> db::jobs::JobRow {
    db::jobs::find(&app.db, id).await.unwrap().expect("job row")
}

#[tokio::test]
async fn users_see_only_their_own_jobs() {
    let app = spawn_app().await;
    let (_, job_id, _) = register(&app).await;
    let stranger = app.signed_in_user().await;
    let resp = app
        .get(
            &format!("/api/v1/jobs/{job_id}"),
            Some(&stranger.access_token),
        )
        .await;
    problem(resp, 404).await;
}

#[tokio::test]
async fn an_unreachable_smtp_server_fails_the_job_visibly_and_schedules_a_retry() {
    // Port 1 on loopback: connection refused, a transient failure.
    let app = spawn_app_with_env(&[("SMTP_URL", "smtp://127.0.0.1:1")]).await;
    let (_, job_id, token) = register(&app).await;
    let job = app.wait_for_job(&job_id, &token, &["failed"]).await;
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["max_attempts"], 10);
    assert!(
        job["last_error"].as_str().unwrap().contains("SMTP"),
        "{job}"
    );
    let run_at = chrono::DateTime::parse_from_rfc3339(job["run_at"].as_str().unwrap()).unwrap();
    let wait = run_at
        .signed_duration_since(chrono::Utc::now())
        .num_milliseconds();
    assert!(
        wait > 3_000,
        "the retry is backed off (~10 s), not immediate: {wait} ms"
    );
}

#[tokio::test]
async fn a_permanent_failure_is_dead_at_once_without_retries() {
    let app = spawn_app_with_env(&[("EMAIL_FROM", "not an address")]).await;
    let (_, job_id, token) = register(&app).await;
    let job = app.wait_for_job(&job_id, &token, &["dead"]).await;
    assert_eq!(job["attempts"], 1);
    assert!(job["last_error"].as_str().unwrap().contains("EMAIL_FROM"));
}

#[tokio::test]
async fn a_killed_workers_job_is_taken_over_by_another_worker() {
    // The first worker's SMTP server never answers: its job hangs until the worker is killed.
    let black_hole = SlowSmtp::start(Duration::from_secs(3600)).await;
    let app = spawn_api_only().await;
    let doomed = app.spawn_worker(&[("SMTP_URL", &black_hole.url)]);
    let (email, job_id, _) = register(&app).await;
    eventually(
        "the first worker to start the job",
        Duration::from_secs(20),
        || async { Ok(job_state(&app, &job_id).await.state == JobState::Running) },
    )
    .await
    .unwrap();
    assert_eq!(
        job_state(&app, &job_id).await.worker.as_deref(),
        Some(doomed.instance.as_str())
    );

    let killed_at = std::time::Instant::now();
    doomed.kill();
    let survivor = app.spawn_worker(&[("SMTP_URL", "")]);
    eventually(
        "the job to finish on the other worker",
        Duration::from_secs(30),
        || async { Ok(job_state(&app, &job_id).await.state == JobState::Done) },
    )
    .await
    .unwrap();
    let taken_over_in = killed_at.elapsed();
    let job = job_state(&app, &job_id).await;
    assert_eq!(job.worker.as_deref(), Some(survivor.instance.as_str()));
    assert_eq!(job.attempts, 2);
    // Lease is 3 s in tests; the relay looks every 250 ms.
    assert!(taken_over_in < Duration::from_secs(30), "{taken_over_in:?}");
    // Embedded-style mail from the survivor (SMTP_URL empty means .eml files).
    if std::env::var("TEST_SMTP_URL").is_err() {
        app.wait_for_mail(&email, "Confirm").await;
    }
    survivor.terminate().await;
}

#[tokio::test]
async fn sigterm_lets_running_jobs_finish_before_the_worker_exits() {
    let slow = SlowSmtp::start(Duration::from_millis(1500)).await;
    let app = spawn_api_only().await;
    let worker = app.spawn_worker(&[("SMTP_URL", &slow.url)]);
    let (_, job_id, _) = register(&app).await;
    eventually("the job to start", Duration::from_secs(20), || async {
        Ok(job_state(&app, &job_id).await.state == JobState::Running)
    })
    .await
    .unwrap();
    worker.terminate().await;
    // Once terminate returns, the worker has drained: the job finished, it was not abandoned.
    let job = job_state(&app, &job_id).await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert_eq!(job.attempts, 1);
    assert_eq!(slow.received.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_relay_hands_the_queue_no_more_than_its_in_flight_bound() {
    let app = spawn_app_with(AppOptions {
        api_only: true,
        env: vec![("QUEUE_MAX_IN_FLIGHT".into(), "10".into())],
    })
    .await;
    let mut tx = app.job_tx().await;
    for i in 0..50 {
        tx.enqueue(
            &Cleanup {
                scheduled_for: i,
                dry_run: false,
            },
            &JobOrigin::default(),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    // No live worker serves the queue: everything waits in the ledger, in order.
    assert_eq!(
        db::jobs::in_flight(&app.db, "maintenance").await.unwrap(),
        0
    );
    // A live worker process with 100 slots that claims nothing (busy): the relay fills the
    // transport up to the bound, no further.
    let now = db::now_ms();
    db::workers::register(
        &app.db,
        &db::workers::WorkerRow {
            name: "busy-elsewhere".into(),
            host: "test".into(),
            pid: 1,
            version: "test".into(),
            queues: "maintenance=100".into(),
            started_at: now,
            heartbeat_at: now,
            running: 0,
            stopped_at: None,
        },
    )
    .await
    .unwrap();
    let relay = app.relay();
    assert_eq!(relay.pass().await.unwrap(), 10);
    assert_eq!(
        relay.pass().await.unwrap(),
        0,
        "nothing more while 10 are in flight"
    );
    assert_eq!(
        db::jobs::in_flight(&app.db, "maintenance").await.unwrap(),
        10
    );

    // With workers running, everything drains.
    let worker = app.spawn_worker(&[("QUEUE_MAX_IN_FLIGHT", "10")]);
    eventually("50 jobs done", Duration::from_secs(60), || async {
        let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'done'")
            .fetch_one(&app.db)
            .await?;
        Ok(done == 50)
    })
    .await
    .unwrap();
    worker.terminate().await;
}

#[tokio::test]
async fn a_new_installation_has_no_missed_run_to_catch_up() {
    let app = spawn_api_only().await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let scheduler = tend_scheduler::start(app.relay(), &app.settings.schedules, shutdown.clone())
        .await
        .unwrap();
    shutdown.cancel();
    let _ = scheduler.await;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing was due before the installation started");
}

#[tokio::test]
async fn two_schedulers_enqueue_each_tick_once() {
    let app = spawn_api_only().await;
    // An installation that has run for a week, its scheduler down since the last tick.
    sqlx::query("INSERT INTO installation (id, first_started_at) VALUES (1, $1)")
        .bind(tend_shared::db::now_ms() - 7 * 24 * 3600 * 1000)
        .execute(&app.db)
        .await
        .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let a = tend_scheduler::start(app.relay(), &app.settings.schedules, shutdown.clone())
        .await
        .unwrap();
    let b = tend_scheduler::start(app.relay(), &app.settings.schedules, shutdown.clone())
        .await
        .unwrap();
    shutdown.cancel();
    let _ = (a.await, b.await);
    let now = chrono::Utc::now();
    for schedule in &app.settings.schedules {
        let name = schedule.spec.name;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE dedup_key LIKE $1")
            .bind(tend_shared::schedules::job_key_prefix(name) + "%")
            .fetch_one(&app.db)
            .await
            .unwrap();
        // A start catches up the latest tick within its window (a week): every daily and
        // weekly schedule has one; the monthly key rotation only in the month's first week.
        let missed = tend_scheduler::last_tick(schedule, now)
            .is_some_and(|tick| tick > now - chrono::Duration::days(7));
        assert_eq!(
            count,
            i64::from(missed),
            "{name}: the missed tick is caught up once, not twice"
        );
    }
}

#[tokio::test]
async fn finished_deliveries_are_vacuumed_from_the_transport() {
    let app = spawn_app().await;
    let (_, job_id, token) = register(&app).await;
    app.wait_for_job(&job_id, &token, &["done"]).await;
    let transport = tend_shared::queue::Transport::connect(&app.settings)
        .await
        .unwrap();
    // apalis records the delivery as done a moment after the handler returns.
    let removed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    eventually(
        "the finished delivery to be vacuumed",
        Duration::from_secs(10),
        || {
            let (transport, removed) = (transport.clone(), removed.clone());
            async move {
                let now = transport.vacuum(Duration::ZERO).await?;
                let total = removed.fetch_add(now, std::sync::atomic::Ordering::SeqCst) + now;
                Ok(total >= 1)
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(
        transport.vacuum(Duration::ZERO).await.unwrap(),
        0,
        "nothing left the second time"
    );
}

/// A Redis server of the test's own, so the test can stop it.
struct OwnRedis {
    child: std::process::Child,
}

impl OwnRedis {
    fn start(port: u16) -> Option<Self> {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Self { child });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
#[ignore = "needs redis-server: eval \"$(.ci/services)\", then cargo test -- --include-ignored"]
async fn a_job_accepted_while_redis_is_down_runs_once_it_is_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis = OwnRedis::start(port).expect("redis-server: run `.ci/services` first");
    let app = spawn_app_with_env(&[("QUEUE_URL", &format!("redis://127.0.0.1:{port}"))]).await;
    drop(redis); // The queue goes down.

    let started = std::time::Instant::now();
    let (_, job_id, token) = register(&app).await; // Still 201: the job is in the ledger.
    // Register and sign-in do not hang on the dead queue (dispatch and rate limits give up fast).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let ready = app.get("/ready", None).await;
    assert_eq!(ready.status(), 503);
    let job = app
        .get(&format!("/api/v1/jobs/{job_id}"), Some(&token))
        .await;
    assert_eq!(job.json::<Value>().await.unwrap()["state"], "pending");

    let _redis = OwnRedis::start(port).expect("redis restarts");
    let job = app.wait_for_job(&job_id, &token, &["done"]).await;
    assert_eq!(job["attempts"], 1);
}

#[tokio::test]
async fn a_worker_serves_only_the_queues_it_is_given() {
    let app = spawn_api_only().await;
    let maintenance_only = app.spawn_worker(&[("WORKER_QUEUES", "maintenance")]);
    let (_, job_id, _) = register(&app).await;
    // A maintenance job committed after the mail: once the replica has run it, it has had
    // every chance at the mail, and left it (it does not serve the email queue).
    let mut tx = app.job_tx().await;
    let later = tx
        .enqueue(
            &Cleanup {
                scheduled_for: 1,
                dry_run: true,
            },
            &JobOrigin::default(),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    eventually(
        "the maintenance replica to run its job",
        Duration::from_secs(20),
        || async { Ok(job_state(&app, &later.id).await.state == JobState::Done) },
    )
    .await
    .unwrap();
    assert_eq!(
        job_state(&app, &later.id).await.worker.as_deref(),
        Some(maintenance_only.instance.as_str())
    );
    assert_eq!(job_state(&app, &job_id).await.state, JobState::Pending);
    let mailer = app.spawn_worker(&[("WORKER_QUEUES", "email")]);
    eventually(
        "the email replica to send it",
        Duration::from_secs(20),
        || async { Ok(job_state(&app, &job_id).await.state == JobState::Done) },
    )
    .await
    .unwrap();
    assert_eq!(
        job_state(&app, &job_id).await.worker.as_deref(),
        Some(mailer.instance.as_str())
    );
    maintenance_only.terminate().await;
    mailer.terminate().await;
}
