//! Fair and prioritised dispatch, through HTTP and the queue: tenants take turns on a queue,
//! work somebody waits for goes before housekeeping, an admin can move a job up, and batch
//! work waiting past `JOB_PRIORITY_AGING_SECS` is raised.

use std::time::Duration;

use serde_json::Value;
use tend_shared::db;
use tend_tests::{
    AppOptions, TestApp, TestUser, WorkerProcess, eventually,
    fake_openai::{FakeOpenAi, Reply},
    problem, spawn_app_with,
};

/// The API on the fake provider, with a worker for mail only (sign-ups need it; its relay
/// loop runs the aging chore): other queues' jobs wait in the ledger until the test starts
/// their worker (no live worker slot, so the relay hands nothing over).
async fn api_only(fake: &FakeOpenAi, extra: &[(&str, &str)]) -> (TestApp, WorkerProcess) {
    let mut env = fake.env();
    env.extend(extra.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    let app = spawn_app_with(AppOptions {
        env,
        api_only: true,
    })
    .await;
    let mail = app.spawn_worker(&[("WORKER_QUEUES", "email")]);
    (app, mail)
}

/// Uploads a transcript and returns its extraction job's id.
async fn upload_transcript(app: &TestApp, token: &str, patient: &str) -> String {
    let session = app.upload_transcript(token, patient).await;
    session["job_id"].as_str().unwrap().to_owned()
}

/// An admin's `POST /admin/jobs/{id}/priority`.
async fn set_priority(app: &TestApp, admin: &str, id: &str, priority: i64) -> reqwest::Response {
    app.post_auth(
        &format!("/api/v1/admin/jobs/{id}/priority"),
        admin,
        &serde_json::json!({ "priority": priority }),
    )
    .await
}

/// The jobs in the order their first attempt started, once all are done.
async fn start_order(app: &TestApp, ids: &[String]) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    'poll: loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs not done in time"
        );
        let mut started = Vec::new();
        for id in ids {
            let job = db::jobs::find(&app.db, id).await.unwrap().expect("job");
            if job.state.as_str() != "done" {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue 'poll;
            }
            let first = db::job_admin::attempts(&app.db, id)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.started_at)
                .min()
                .expect("an attempt");
            started.push((first, id.clone()));
        }
        started.sort();
        return started.into_iter().map(|(_, id)| id).collect();
    }
}

/// Two practices, A with eight transcripts waiting for extraction: A, B, B's patient and A's
/// jobs.
async fn a_with_a_backlog_and_b(app: &TestApp) -> (TestUser, TestUser, String, Vec<String>) {
    let a = app.signed_in_user().await;
    let b = app.signed_in_user().await;
    let a_patient = app.create_patient(&a.access_token, "A's client").await;
    let b_patient = app.create_patient(&b.access_token, "B's client").await;
    let mut a_jobs = Vec::new();
    for _ in 0..8 {
        a_jobs.push(upload_transcript(app, &a.access_token, &a_patient).await);
    }
    (a, b, b_patient, a_jobs)
}

#[tokio::test]
async fn a_tenants_backlog_does_not_hold_back_another_tenants_next_job() {
    let fake = FakeOpenAi::start().await;
    let (app, _mail) = api_only(&fake, &[]).await;
    // A's backlog, then B's one session, all queued before any worker runs.
    let (_a, b, b_patient, a_jobs) = a_with_a_backlog_and_b(&app).await;
    let b_job = upload_transcript(&app, &b.access_token, &b_patient).await;
    let queued = db::jobs::find(&app.db, &b_job).await.unwrap().unwrap();
    assert_eq!(queued.tenant.as_deref(), Some(b.id.as_str()));
    // Admins find a practice's jobs by its tenant.
    let admin = app.admin_token().await;
    let listed: Value = app
        .get(
            &format!("/api/v1/admin/jobs?tenant={}&queue=extraction", b.id),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|job| job["id"].as_str())
        .collect();
    assert_eq!(ids, [b_job.as_str()], "{listed}");
    assert_eq!(queued.dispatched_at, None, "no worker: nothing handed over");

    let _worker = app.spawn_worker(&[("WORKER_QUEUES", "extraction"), ("WORKER_CONCURRENCY", "1")]);
    let mut all = a_jobs.clone();
    all.push(b_job.clone());
    let order = start_order(&app, &all).await;
    let b_place = order.iter().position(|id| *id == b_job).unwrap();
    // First-in first-out would run it ninth; taking turns runs it first or second (it ties
    // with A's first job), third at worst when two relays push A's second job first.
    assert!(b_place <= 2, "B's job started {}th of 9", b_place + 1);
    // A's own jobs keep their order, give or take a neighbour: two relays that each take one
    // job may push them in either order.
    let a_order: Vec<&String> = order.iter().filter(|id| **id != b_job).collect();
    for (queued_as, job) in a_jobs.iter().enumerate() {
        let ran_as = a_order.iter().position(|id| *id == job).unwrap();
        assert!(
            queued_as.abs_diff(ran_as) <= 1,
            "A's jobs ran as {a_order:?}"
        );
    }
}

#[tokio::test]
async fn work_somebody_waits_for_goes_before_housekeeping_and_admins_can_move_a_job_up() {
    let fake = FakeOpenAi::start().await;
    let (app, _mail) = api_only(&fake, &[]).await;
    let admin = app.admin_token().await;

    // Housekeeping first (priority 8), then an account deletion (5), then more housekeeping.
    let mut batch = Vec::new();
    for name in ["daily_stats", "weekly_snapshots"] {
        let resp = app
            .post_empty(&format!("/api/v1/admin/maintenance/{name}/run"), &admin)
            .await;
        assert_eq!(resp.status(), 202);
        let body: Value = resp.json().await.unwrap();
        batch.push(body["job_id"].as_str().unwrap().to_owned());
    }
    let leaving = app.signed_in_user().await;
    let resp = app.delete_me(&leaving).await;
    assert!(resp.status().is_success(), "{}", resp.status());
    let listed: Value = app
        .get("/api/v1/admin/jobs?kind=erase_account", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let erase_id = listed["items"][0]["id"].as_str().expect("the erasure job");
    let erase = db::jobs::find(&app.db, erase_id).await.unwrap().unwrap();
    assert_eq!(erase.priority.value(), 5);
    let resp = app
        .post_empty("/api/v1/admin/maintenance/cleanup/run", &admin)
        .await;
    let body: Value = resp.json().await.unwrap();
    let cleanup = body["job_id"].as_str().unwrap().to_owned();

    // The admin moves the last housekeeping job ahead of everything.
    let moved: Value = set_priority(&app, &admin, &cleanup, 0)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(moved["priority"], 0, "{moved}");
    assert_eq!(moved["tenant"], Value::Null, "maintenance is the system's");
    // Off the scale: a 4xx with a machine-readable body, nothing changed.
    let refused = set_priority(&app, &admin, &batch[0], 10).await;
    assert_eq!(refused.status(), 400);
    let job = db::jobs::find(&app.db, &batch[0]).await.unwrap().unwrap();
    assert_eq!(job.priority.value(), 8);

    let _worker = app.spawn_worker(&[
        ("WORKER_QUEUES", "maintenance"),
        ("WORKER_CONCURRENCY", "1"),
    ]);
    let mut all = batch.clone();
    all.push(erase.id.clone());
    all.push(cleanup.clone());
    let order = start_order(&app, &all).await;
    assert_eq!(order[0], cleanup, "the job the admin moved up goes first");
    assert_eq!(
        order[1], erase.id,
        "then the deletion, before the statistics"
    );
    // Housekeeping last. (Their order between themselves is not asserted: two relays that
    // take one job each may push in either order.)
    let mut rest = order[2..].to_vec();
    rest.sort();
    let mut expected = batch.clone();
    expected.sort();
    assert_eq!(rest, expected, "housekeeping last");

    // A finished job's priority cannot change.
    let body = problem(set_priority(&app, &admin, &cleanup, 3).await, 409).await;
    assert_eq!(body["type"], "/problems/job-not-waiting");
    let audit: Value = app
        .get(
            "/api/v1/admin/audit-logs?action=job_reprioritised",
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
}

#[tokio::test]
async fn batch_work_waiting_past_the_aging_limit_is_raised() {
    let fake = FakeOpenAi::start().await;
    let (app, _mail) = api_only(&fake, &[("JOB_PRIORITY_AGING_SECS", "1")]).await;
    let admin = app.admin_token().await;
    let resp = app
        .post_empty("/api/v1/admin/maintenance/daily_stats/run", &admin)
        .await;
    let body: Value = resp.json().await.unwrap();
    let id = body["job_id"].as_str().unwrap().to_owned();
    let job = db::jobs::find(&app.db, &id).await.unwrap().unwrap();
    assert_eq!(job.priority.value(), 8);
    // Nothing serves the maintenance queue: the job waits, and the relay raises it once it has
    // waited a second (its chore runs every five).
    eventually("the job raised", Duration::from_secs(15), || async {
        let job: Value = app
            .get(&format!("/api/v1/admin/jobs/{id}"), Some(&admin))
            .await
            .json()
            .await?;
        Ok(job["job"]["priority"] == 1)
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_job_moved_ahead_does_not_push_other_tenants_behind_its_tenants_backlog() {
    let fake = FakeOpenAi::start().await;
    let (app, _mail) = api_only(&fake, &[]).await;
    let admin = app.admin_token().await;
    let (a, b, b_patient, a_jobs) = a_with_a_backlog_and_b(&app).await;
    // A's last job, the furthest turn ahead, is moved to the front.
    let resp = set_priority(&app, &admin, &a_jobs[7], 0).await;
    assert_eq!(resp.status(), 200);
    // Each answer takes a while, so A's backlog lasts.
    fake.on_chat((0..8).map(|_| Reply::Slow(Duration::from_millis(300))));
    let _worker = app.spawn_worker(&[("WORKER_QUEUES", "extraction"), ("WORKER_CONCURRENCY", "1")]);
    app.wait_for_job(&a_jobs[7], &a.access_token, &["done"])
        .await;
    // B's job, queued after the moved one ran, still goes before most of A's backlog: the
    // moved job's far turn did not move the clock B's turn is taken from.
    let b_job = upload_transcript(&app, &b.access_token, &b_patient).await;
    let mut all = a_jobs.clone();
    all.push(b_job.clone());
    let order = start_order(&app, &all).await;
    let b_place = order.iter().position(|id| *id == b_job).unwrap();
    // Its turn is the clock's, tied with one of A's waiting jobs (which of them depends on how
    // far A got while B uploaded); had the moved job's turn moved the clock, B would be last.
    assert!(b_place <= 6, "B's job started {}th of 9", b_place + 1);
}
