//! The engine under faults (issue 19): fenced attempts (a finished attempt keeps its result
//! after an outage handed its lease back; a stale attempt changes nothing once another claimed
//! the job), every attempt in the history, relays racing for the in-flight bound, a cut job
//! handed back at shutdown, and a dead hook that fails leaving nothing stuck.

use std::time::Duration;

use serde_json::Value;
use tend_shared::jobs::kinds::cleanup::Cleanup;
use tend_shared::{
    db::{
        self,
        jobs::{Attempt, Outcome},
    },
    jobs::{JobOrigin, JobState},
};
use tend_tests::{AppOptions, TestApp, eventually, smtp::SlowSmtp, spawn_api_only, spawn_app_with};

/// Enqueues `n` maintenance jobs (nothing runs them: the tests drive the ledger by hand).
async fn enqueue(app: &TestApp, n: i64) -> Vec<String> {
    let mut tx = app.job_tx().await;
    let mut ids = Vec::new();
    for i in 0..n {
        let job = tx
            .enqueue(
                &Cleanup {
                    scheduled_for: i,
                    dry_run: true,
                },
                &JobOrigin::default(),
            )
            .await
            .unwrap();
        ids.push(job.id);
    }
    tx.commit().await.unwrap();
    ids
}

/// The history of a job: (claim, outcome) oldest first.
async fn history(app: &TestApp, job_id: &str) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT claim, outcome FROM job_attempts WHERE job_id = $1 ORDER BY claim")
        .bind(job_id)
        .fetch_all(&app.db)
        .await
        .unwrap()
}

/// Lets every lease taken with a 1 ms lease lapse, and hands the jobs back as a relay does.
async fn lapse_and_recover(app: &TestApp) -> u64 {
    tokio::time::sleep(Duration::from_millis(20)).await;
    db::jobs::recover_expired_leases(&app.db).await.unwrap()
}

#[tokio::test]
async fn a_finished_attempt_keeps_its_result_after_its_lease_was_handed_back() {
    let app = spawn_api_only().await;
    let ids = enqueue(&app, 1).await;
    // A worker claims the job; the ledger is then out of its reach longer than the lease, so
    // a relay hands the job back before the worker can write that it finished.
    let claimed = db::jobs::claim(&app.db, &ids, "frozen-worker", 1)
        .await
        .unwrap();
    let attempt = claimed[0].attempt();
    assert_eq!(lapse_and_recover(&app).await, 1);
    // Nobody claimed it since: the finished attempt's outcome still counts.
    let recorded = db::jobs::finish_done(&app.db, std::slice::from_ref(&attempt))
        .await
        .unwrap();
    assert_eq!(recorded, vec![attempt.clone()]);
    let job = db::jobs::find(&app.db, &ids[0]).await.unwrap().unwrap();
    assert_eq!(
        job.state,
        JobState::Done,
        "the finished job is not run again"
    );
    assert_eq!(history(&app, &ids[0]).await, vec![(1, "done".to_owned())]);
    // A delivery of the handed-back job that arrives now claims nothing.
    let again = db::jobs::claim(&app.db, &ids, "other-worker", 10_000)
        .await
        .unwrap();
    assert!(again.is_empty());
}

#[tokio::test]
async fn a_stale_attempt_changes_nothing_once_another_attempt_claimed_the_job() {
    let app = spawn_api_only().await;
    let ids = enqueue(&app, 1).await;
    let first = db::jobs::claim(&app.db, &ids, "worker-a", 1).await.unwrap()[0].clone();
    lapse_and_recover(&app).await;
    let second = db::jobs::claim(&app.db, &ids, "worker-b", 60_000)
        .await
        .unwrap()[0]
        .clone();
    assert_eq!((first.claims, second.claims), (1, 2));

    // The first attempt wakes: its renewal, its outcomes and its artifacts are refused.
    let stale = first.attempt();
    let renewed = db::jobs::renew_leases(&app.db, std::slice::from_ref(&stale), 60_000)
        .await
        .unwrap();
    assert!(
        renewed.is_empty(),
        "a stale attempt does not get the lease back"
    );
    assert!(
        db::jobs::finish_done(&app.db, std::slice::from_ref(&stale))
            .await
            .unwrap()
            .is_empty()
    );
    let mut conn = app.db.acquire().await.unwrap();
    let dead = Outcome::Dead { error: "stale" };
    assert!(!db::jobs::finish(&mut conn, &stale, dead).await.unwrap());
    drop(conn);
    db::jobs::record_refused(&app.db, &first, "finished too late")
        .await
        .unwrap();

    // The current attempt is untouched and finishes normally.
    let job = db::jobs::find(&app.db, &ids[0]).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Running);
    assert_eq!(job.worker.as_deref(), Some("worker-b"));
    let current = second.attempt();
    let renewed = db::jobs::renew_leases(&app.db, std::slice::from_ref(&current), 60_000)
        .await
        .unwrap();
    assert_eq!(renewed, vec![current.clone()]);
    db::jobs::finish_done(&app.db, &[current]).await.unwrap();
    assert_eq!(
        history(&app, &ids[0]).await,
        vec![(1, "refused".to_owned()), (2, "done".to_owned())],
        "every attempt is in the history, the lost one marked refused"
    );
}

#[tokio::test]
async fn a_resumed_attempt_takes_its_job_back_when_nobody_claimed_it_meanwhile() {
    let app = spawn_api_only().await;
    let ids = enqueue(&app, 1).await;
    let job = db::jobs::claim(&app.db, &ids, "worker-a", 1).await.unwrap()[0].clone();
    lapse_and_recover(&app).await;
    let attempt = job.attempt();
    let renewed = db::jobs::renew_leases(&app.db, std::slice::from_ref(&attempt), 60_000)
        .await
        .unwrap();
    assert_eq!(renewed, vec![attempt]);
    let row = db::jobs::find(&app.db, &ids[0]).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Running);
    // Its delivery, re-offered meanwhile, finds it running and claims nothing.
    assert!(
        db::jobs::claim(&app.db, &ids, "worker-b", 60_000)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn three_relays_racing_never_fill_the_transport_past_its_bound() {
    let app = spawn_app_with(AppOptions {
        api_only: true,
        env: vec![("QUEUE_MAX_IN_FLIGHT".into(), "10".into())],
    })
    .await;
    enqueue(&app, 300).await;
    let relays = [app.relay(), app.relay(), app.relay()];
    for round in 0..10 {
        let (a, b, c) = tokio::join!(relays[0].pass(), relays[1].pass(), relays[2].pass());
        let moved = a.unwrap() + b.unwrap() + c.unwrap();
        let in_flight = db::jobs::in_flight(&app.db, "maintenance").await.unwrap();
        assert!(
            in_flight <= 10,
            "round {round}: {in_flight} in flight after three relays moved {moved}"
        );
        // Workers take some: claimed jobs leave the transport, making room again.
        sqlx::query(
            "UPDATE jobs SET state = 'done' WHERE id IN (SELECT id FROM jobs \
             WHERE state = 'pending' AND dispatched_at IS NOT NULL ORDER BY id LIMIT 7)",
        )
        .execute(&app.db)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_job_cut_at_shutdown_is_handed_back_at_once_with_its_attempt_in_the_history() {
    // A mail that takes far longer than the grace period.
    let slow = SlowSmtp::start(Duration::from_secs(30)).await;
    let app = spawn_api_only().await;
    let worker = app.spawn_worker(&[("SMTP_URL", &slow.url), ("SHUTDOWN_GRACE_SECS", "1")]);
    let resp = app
        .register(
            &tend_tests::unique_email(),
            tend_tests::PASSWORD,
            "practitioner",
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    let job_id = body["verification_email_job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(
        "the mail to be sending",
        Duration::from_secs(20),
        || async {
            let job = db::jobs::find(&app.db, &job_id).await?.unwrap();
            Ok(job.state == JobState::Running)
        },
    )
    .await
    .unwrap();
    worker.terminate().await;
    // Handed back at exit, not left running until its lease lapses.
    let job = db::jobs::find(&app.db, &job_id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Pending, "{job:?}");
    assert_eq!(job.attempts, 0, "a cut does not use up an attempt");
    assert_eq!(history(&app, &job_id).await, vec![(1, "cut".to_owned())]);
}

/// A trigger that makes every change of a data export to `failed` fail, as a broken dead hook
/// would; and the statement that removes it.
fn injected_fault(app: &TestApp) -> (Vec<&'static str>, &'static str) {
    if db::is_postgres(&app.db) {
        (
            vec![
                "CREATE FUNCTION injected_fault() RETURNS trigger AS $$ BEGIN \
                 IF NEW.status = 'failed' THEN RAISE EXCEPTION 'injected fault'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER injected_fault BEFORE UPDATE ON data_exports \
                 FOR EACH ROW EXECUTE FUNCTION injected_fault()",
            ],
            "DROP TRIGGER injected_fault ON data_exports",
        )
    } else {
        (
            vec![
                "CREATE TRIGGER injected_fault BEFORE UPDATE OF status ON data_exports \
                 WHEN NEW.status = 'failed' BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
            ],
            "DROP TRIGGER injected_fault",
        )
    }
}

#[tokio::test]
async fn a_dead_hook_that_fails_leaves_its_subject_failed_by_the_repair_pass_and_retry_works() {
    let app = spawn_api_only().await;
    let admin = app.admin_token().await;
    let worker = app.spawn_worker(&[]);
    let user = app.signed_in_user().await;
    // No worker runs the export until the fault is in place.
    worker.terminate().await;
    let resp = app
        .post_empty("/api/v1/users/me/data-export", &user.access_token)
        .await;
    assert_eq!(resp.status(), 202);
    let export: Value = resp.json().await.unwrap();
    let export_id = export["id"].as_str().unwrap().to_owned();
    let job_id: String = sqlx::query_scalar("SELECT job_id FROM data_exports WHERE id = $1")
        .bind(&export_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let (inject, remove) = injected_fault(&app);
    for statement in inject {
        sqlx::query(statement).execute(&app.db).await.unwrap();
    }
    // Killed before any worker ran it: the first worker buries it, and its dead hook fails.
    let resp = app
        .post_empty(&format!("/api/v1/admin/jobs/{job_id}/kill"), &admin)
        .await;
    assert_eq!(resp.status(), 202);
    let worker = app.spawn_worker(&[]);
    eventually("the job to be dead", Duration::from_secs(30), || async {
        Ok(db::jobs::find(&app.db, &job_id).await?.unwrap().state == JobState::Dead)
    })
    .await
    .unwrap();
    let status: String = sqlx::query_scalar("SELECT status FROM data_exports WHERE id = $1")
        .bind(&export_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(status, "queued", "the failed hook changed nothing");
    worker.terminate().await;

    // The fault is mended; the repair pass at the next worker start fails the export.
    sqlx::query(remove).execute(&app.db).await.unwrap();
    let worker = app.spawn_worker(&[]);
    let path = format!("/api/v1/users/me/data-exports/{export_id}");
    let failed = app
        .wait_for_status(&path, &user.access_token, &["queued"], &["failed"])
        .await;
    assert!(
        failed["error"].as_str().unwrap().contains("retry"),
        "{failed}"
    );
    // And an admin's retry runs it to the end.
    let resp = app
        .post_empty(&format!("/api/v1/admin/jobs/{job_id}/retry"), &admin)
        .await;
    assert_eq!(resp.status(), 200);
    app.wait_for_status(
        &path,
        &user.access_token,
        &["queued", "building"],
        &["ready"],
    )
    .await;
    worker.terminate().await;
}

#[tokio::test]
async fn outcomes_present_their_attempt() {
    // The fence is the job's claim count: a claim number the job never reached is refused.
    let app = spawn_api_only().await;
    let ids = enqueue(&app, 1).await;
    let job = db::jobs::claim(&app.db, &ids, "w", 60_000).await.unwrap()[0].clone();
    let wrong = Attempt {
        job_id: job.id.clone(),
        claim: job.claims + 1,
    };
    assert!(
        db::jobs::finish_done(&app.db, &[wrong])
            .await
            .unwrap()
            .is_empty(),
        "an attempt that never claimed the job cannot finish it"
    );
}
