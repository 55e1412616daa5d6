//! Admins: queue figures, job lists and detail with every attempt, retry, kill (running and
//! waiting), delete, pause and resume, users (search, disable) and the audit log. Admin only.

use std::time::Duration;

use serde_json::{Value, json};
use tend_shared::db;
use tend_shared::jobs::JobOrigin;
use tend_shared::jobs::kinds::email::{EmailTemplate, SendEmail};
use tend_tests::{
    PASSWORD, TestApp, eventually, fake_openai::FakeOpenAi, fake_openai::Reply, problem, spawn_app,
    spawn_app_with_env, unique_email,
};

/// An admin account, signed in: its access token.
async fn admin(app: &TestApp) -> String {
    app.admin_token().await
}

async fn json_of(resp: reqwest::Response, status: u16) -> Value {
    let code = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(code, status, "{body}");
    body
}

async fn job(app: &TestApp, token: &str, id: &str) -> Value {
    json_of(
        app.get(&format!("/api/v1/admin/jobs/{id}"), Some(token))
            .await,
        200,
    )
    .await
}

async fn wait_for_job_state(app: &TestApp, token: &str, id: &str, state: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
        last = job(app, token, id).await;
        if last["job"]["state"] == state {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} never became {state}: {last}");
}

#[tokio::test]
async fn only_admins_reach_the_admin_api() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    for path in [
        "/api/v1/admin/queues",
        "/api/v1/admin/jobs",
        "/api/v1/admin/users",
        "/api/v1/admin/audit-logs",
        "/api/v1/admin/maintenance",
    ] {
        problem(app.get(path, Some(&user.access_token)).await, 403).await;
        problem(app.get(path, None).await, 401).await;
    }
    for path in [
        "/api/v1/admin/queues/email/pause",
        "/api/v1/admin/maintenance/cleanup/run",
    ] {
        problem(app.post_empty(path, &user.access_token).await, 403).await;
    }
}

/// The schedule `name` of a `GET /admin/maintenance` answer.
fn schedule<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no schedule {name}: {list}"))
}

#[tokio::test]
async fn admins_see_each_schedule_and_run_one_now() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    let list = json_of(
        app.get("/api/v1/admin/maintenance", Some(&token)).await,
        200,
    )
    .await;
    for (name, cron, next) in [
        ("daily_stats", "0 5 0 * * *", "T00:05:00+00:00"),
        ("weekly_snapshots", "0 0 1 * * Sun", "T01:00:00+00:00"),
        ("backup", "0 0 2 * * *", "T02:00:00+00:00"),
        ("cleanup", "0 0 3 * * *", "T03:00:00+00:00"),
        ("rotate_signing_key", "0 0 4 1 * *", "-01T04:00:00+00:00"),
    ] {
        let s = schedule(&list, name);
        assert_eq!(s["cron"], cron, "{s}");
        assert_eq!(s["enabled"], true);
        assert!(s["next_run_at"].as_str().unwrap().ends_with(next), "{s}");
        assert!(s["last_run"].is_null(), "a new installation ran nothing");
    }

    // Each one runs now, through the queue, and its outcome shows.
    for name in [
        "daily_stats",
        "weekly_snapshots",
        "backup",
        "cleanup",
        "rotate_signing_key",
    ] {
        let started = json_of(
            app.post_empty(&format!("/api/v1/admin/maintenance/{name}/run"), &token)
                .await,
            202,
        )
        .await;
        let job_id = started["job_id"].as_str().unwrap().to_owned();
        wait_for_job_state(&app, &token, &job_id, "done").await;
        let list = json_of(
            app.get("/api/v1/admin/maintenance", Some(&token)).await,
            200,
        )
        .await;
        let last = &schedule(&list, name)["last_run"];
        assert_eq!(last["id"], job_id.as_str(), "{list}");
        assert_eq!(last["state"], "done");

        let audit = json_of(
            app.get(
                "/api/v1/admin/audit-logs?action=maintenance_run",
                Some(&token),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(
            audit["items"][0]["detail"]["job_id"],
            job_id.as_str(),
            "{audit}"
        );
    }
    problem(
        app.post_empty("/api/v1/admin/maintenance/nope/run", &token)
            .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn a_schedule_turned_off_shows_so_and_can_still_be_run() {
    let app = spawn_app_with_env(&[("SCHEDULE_CLEANUP", "off")]).await;
    let token = admin(&app).await;
    let list = json_of(
        app.get("/api/v1/admin/maintenance", Some(&token)).await,
        200,
    )
    .await;
    let cleanup = schedule(&list, "cleanup");
    assert_eq!(cleanup["enabled"], false, "{list}");
    assert!(cleanup["cron"].is_null() && cleanup["next_run_at"].is_null());
    json_of(
        app.post_empty("/api/v1/admin/maintenance/cleanup/run", &token)
            .await,
        202,
    )
    .await;
}

#[tokio::test]
async fn admins_see_queue_figures_and_each_job_with_its_attempts() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    let _practitioner = app.signed_in_user().await;
    let _patient = app.signed_in_as("patient").await;

    let queues = json_of(app.get("/api/v1/admin/queues", Some(&token)).await, 200).await;
    let names: Vec<&str> = queues
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "email",
            "maintenance",
            "transcription",
            "extraction",
            "documents"
        ]
    );
    let email = &queues[0];
    assert!(email["done_last_hour"].as_i64().unwrap() >= 1, "{email}");
    assert!(email["throughput_per_minute"]["last_1m"].as_f64().unwrap() >= 1.0);
    assert!(email["run_times"]["sample"].as_i64().unwrap() >= 1);
    assert_eq!(email["paused"], false);

    // The sign-up mail's job, found by kind and state, with one done attempt and its subject.
    let page = json_of(
        app.get(
            "/api/v1/admin/jobs?kind=send_email&state=done&limit=1",
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(
        page["next_cursor"].is_string(),
        "two users got mail: {page}"
    );
    let next = json_of(
        app.get(
            &format!(
                "/api/v1/admin/jobs?kind=send_email&state=done&limit=1&cursor={}",
                page["next_cursor"].as_str().unwrap()
            ),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    assert_ne!(next["items"][0]["id"], page["items"][0]["id"]);
    let id = page["items"][0]["id"].as_str().unwrap();
    let detail = job(&app, &token, id).await;
    assert_eq!(detail["attempts"].as_array().unwrap().len(), 1, "{detail}");
    assert_eq!(detail["attempts"][0]["outcome"], "done");
    assert!(detail["attempts"][0]["worker"].is_string());
    assert_eq!(detail["subject"]["kind"], "user");
    assert!(
        detail["job"]["request_id"].is_string(),
        "linked to its request"
    );
    assert_eq!(detail["cost_usd"], 0.0);

    problem(
        app.get("/api/v1/admin/jobs?state=sleeping", Some(&token))
            .await,
        422,
    )
    .await;
    problem(
        app.get("/api/v1/admin/jobs?since=yesterday", Some(&token))
            .await,
        422,
    )
    .await;
    problem(app.get("/api/v1/admin/jobs/nope", Some(&token)).await, 404).await;
}

#[tokio::test]
async fn killing_a_running_session_job_stops_it_and_the_session_says_failed() {
    let fake = FakeOpenAi::start().await;
    // The transcription hangs long enough to be killed mid-way.
    fake.on_transcription([Reply::Slow(Duration::from_secs(30))]);
    let mut env = fake.env();
    env.push(("OPENAI_TIMEOUT_SECS".into(), "60".into()));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with_env(&pairs).await;
    let token = admin(&app).await;
    let user = app.signed_in_user().await;
    let patient = app.create_patient(&user.access_token, "Sam").await;
    let resp = app
        .upload_session(
            &user.access_token,
            &patient,
            tend_tests::fake_openai::wav(2.0, 16_000, 1),
            "a.wav",
            &[],
        )
        .await;
    let session: Value = json_of(resp, 202).await;
    let job_id = session["job_id"].as_str().unwrap().to_owned();
    wait_for_job_state(&app, &token, &job_id, "running").await;

    let killed = json_of(
        app.post_empty(&format!("/api/v1/admin/jobs/{job_id}/kill"), &token)
            .await,
        202,
    )
    .await;
    assert_eq!(killed["killed"], true);
    let started = std::time::Instant::now();
    let detail = wait_for_job_state(&app, &token, &job_id, "dead").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped within seconds"
    );
    assert_eq!(detail["job"]["last_error"], "killed by an admin");
    assert_eq!(detail["attempts"][0]["outcome"], "killed");
    let (session, _) = app
        .wait_for_session(
            session["id"].as_str().unwrap(),
            &user.access_token,
            &["failed"],
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(session["failed_stage"], "transcription", "{session}");
    // A dead job cannot be killed again.
    problem(
        app.post_empty(&format!("/api/v1/admin/jobs/{job_id}/kill"), &token)
            .await,
        409,
    )
    .await;

    // Retried by the admin, the session's stage runs again and the session is processed.
    let retried = json_of(
        app.post_empty(&format!("/api/v1/admin/jobs/{job_id}/retry"), &token)
            .await,
        200,
    )
    .await;
    // Counted afresh (a worker may have claimed it already: then it is on its first).
    assert!(retried["attempts"].as_i64().unwrap() <= 1, "{retried}");
    assert_ne!(retried["state"], "dead", "{retried}");
    let (session, _) = app
        .wait_for_session(
            session["id"].as_str().unwrap(),
            &user.access_token,
            &["processed"],
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(session["status"], "processed");
    let detail = job(&app, &token, &job_id).await;
    let outcomes: Vec<&str> = detail["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["killed", "done"], "{detail}");

    // Deleted, the job takes its attempt history with it.
    assert_eq!(
        app.delete_auth(&format!("/api/v1/admin/jobs/{job_id}"), &token)
            .await
            .status(),
        204
    );
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_attempts WHERE job_id = $1")
        .bind(&job_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(left, 0, "no history outlives its job");
    let audit = json_of(
        app.get("/api/v1/admin/audit-logs?action=job_killed", Some(&token))
            .await,
        200,
    )
    .await;
    assert_eq!(audit["items"][0]["detail"]["job_id"], job_id.as_str());
}

#[tokio::test]
async fn a_paused_queue_hands_out_nothing_and_a_waiting_job_can_be_killed() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    let paused = json_of(
        app.post_empty("/api/v1/admin/queues/email/pause", &token)
            .await,
        200,
    )
    .await;
    assert_eq!(paused["paused"], true);

    let email = unique_email();
    let body: Value = json_of(app.register(&email, PASSWORD, "patient").await, 201).await;
    let kept = body["verification_email_job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body: Value = json_of(
        app.register(&unique_email(), PASSWORD, "patient").await,
        201,
    )
    .await;
    let killed = body["verification_email_job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A relay pass (as the relay loop makes every 250 ms) hands nothing of the paused queue
    // over, so no worker can take it.
    app.relay().pass().await.unwrap();
    for id in [&kept, &killed] {
        let row = db::jobs::find(&app.db, id).await.unwrap().unwrap();
        assert_eq!(row.dispatched_at, None, "{row:?}");
    }
    assert_eq!(job(&app, &token, &kept).await["job"]["state"], "pending");
    assert!(
        app.mails_to(&email).is_empty(),
        "nothing is sent while paused"
    );
    let queues = json_of(app.get("/api/v1/admin/queues", Some(&token)).await, 200).await;
    assert!(queues[0]["due"].as_i64().unwrap() >= 2, "{}", queues[0]);

    json_of(
        app.post_empty(&format!("/api/v1/admin/jobs/{killed}/kill"), &token)
            .await,
        202,
    )
    .await;
    problem(
        app.delete_auth(&format!("/api/v1/admin/jobs/{kept}"), &token)
            .await,
        409,
    )
    .await;
    json_of(
        app.post_empty("/api/v1/admin/queues/email/resume", &token)
            .await,
        200,
    )
    .await;
    app.wait_for_mail(&email, "Confirm").await;
    let dead = wait_for_job_state(&app, &token, &killed, "dead").await;
    assert_eq!(dead["job"]["last_error"], "killed by an admin");
    assert_eq!(dead["job"]["attempts"], 0, "buried without running");
    wait_for_job_state(&app, &token, &kept, "done").await;

    // Finished jobs can be deleted.
    assert_eq!(
        app.delete_auth(&format!("/api/v1/admin/jobs/{kept}"), &token)
            .await
            .status(),
        204
    );
    problem(
        app.get(&format!("/api/v1/admin/jobs/{kept}"), Some(&token))
            .await,
        404,
    )
    .await;
    // The spec lists the queues: another name names nothing, and the answer says what.
    let body = problem(
        app.post_empty("/api/v1/admin/queues/nope/pause", &token)
            .await,
        404,
    )
    .await;
    assert_eq!(body["detail"], "No such queue.", "{body}");
}

#[tokio::test]
async fn retry_all_dead_brings_a_queues_dead_jobs_back_as_a_job() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    let email = unique_email();
    let body: Value = json_of(app.register(&email, PASSWORD, "patient").await, 201).await;
    let id = body["verification_email_job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for_job_state(&app, &token, &id, "done").await;
    // A mail job that died (its recipient's address was briefly undeliverable)...
    sqlx::query("UPDATE jobs SET state = 'dead', last_error = 'SMTP refused' WHERE id = $1")
        .bind(&id)
        .execute(&app.db)
        .await
        .unwrap();
    // ...and more dead beside it than one batch holds (mail for accounts since deleted:
    // nothing to send, so they finish at once).
    let mut tx = app.job_tx().await;
    let mut others = Vec::new();
    for _ in 0..1_200 {
        let payload = SendEmail {
            user_id: uuid::Uuid::now_v7(),
            template: EmailTemplate::PasswordChanged,
            subject_id: None,
        };
        others.push(
            tx.enqueue(&payload, &JobOrigin::default())
                .await
                .unwrap()
                .id,
        );
    }
    let listed = others
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET state = 'dead', finished_at = created_at, last_error = 'SMTP refused' \
         WHERE id IN ({listed})"
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let started = json_of(
        app.post_empty("/api/v1/admin/queues/email/retry-dead", &token)
            .await,
        202,
    )
    .await;
    assert_eq!(started["queue"], "email");
    let runner = started["job_id"].as_str().unwrap();
    let ran = wait_for_job_state(&app, &token, runner, "done").await;
    let count = |category: &str| {
        ran["report"]["categories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["category"] == category)
            .map(|c| c["items"].clone())
    };
    assert_eq!(count("retried"), Some(json!(1_201)), "{ran}");
    assert_eq!(count("left_dead"), Some(json!(0)), "{ran}");
    wait_for_job_state(&app, &token, &id, "done").await;
    eventually("the mail again", Duration::from_secs(20), || async {
        Ok(app.mails_to(&email).len() >= 2)
    })
    .await
    .unwrap();
    eventually(
        "every retried job done",
        Duration::from_secs(60),
        || async {
            let left: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM jobs WHERE kind = 'send_email' AND state <> 'done'",
            )
            .fetch_one(&app.db)
            .await?;
            Ok(left == 0)
        },
    )
    .await
    .unwrap();
    // A second run finds nothing left, and says so.
    let again = json_of(
        app.post_empty("/api/v1/admin/queues/email/retry-dead", &token)
            .await,
        202,
    )
    .await;
    let ran = wait_for_job_state(&app, &token, again["job_id"].as_str().unwrap(), "done").await;
    assert_eq!(ran["report"]["categories"][0]["items"], 0, "{ran}");
}

#[tokio::test]
async fn admins_find_users_and_disable_them() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    let user = app.signed_in_user().await;
    let found = json_of(
        app.get(
            &format!(
                "/api/v1/admin/users?email={}&role=practitioner",
                &user.email[..12]
            ),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(found["items"][0]["id"], user.id.as_str(), "{found}");

    let path = format!("/api/v1/admin/users/{}", user.id);
    let disabled = json_of(
        app.patch_auth(&path, &token, &json!({"disabled": true}))
            .await,
        200,
    )
    .await;
    assert_eq!(disabled["disabled"], true);
    let body = problem(
        app.get("/api/v1/users/me", Some(&user.access_token)).await,
        401,
    )
    .await;
    assert_eq!(body["type"], "/problems/account-disabled");
    problem(app.refresh(&user.refresh_token).await, 401).await;
    problem(app.login(&user.email, PASSWORD).await, 401).await;

    json_of(
        app.patch_auth(
            &path,
            &token,
            &json!({"disabled": false, "role": "patient"}),
        )
        .await,
        200,
    )
    .await;
    let login = json_of(app.login(&user.email, PASSWORD).await, 200).await;
    assert_eq!(login["user"]["role"], "patient");

    // Not their own account.
    let me: Value = app
        .get("/api/v1/users/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    problem(
        app.patch_auth(
            &format!("/api/v1/admin/users/{}", me["id"].as_str().unwrap()),
            &token,
            &json!({"disabled": true}),
        )
        .await,
        409,
    )
    .await;
    let audit = json_of(
        app.get(
            "/api/v1/admin/audit-logs?action=user_updated&limit=5",
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 2, "{audit}");
}

#[tokio::test]
async fn admins_see_worker_processes_running_stopped_and_gone() {
    let app = tend_tests::spawn_api_only().await;
    let token = admin(&app).await;
    let worker = app.spawn_worker(&[("WORKER_QUEUES", "email,extraction")]);
    eventually("the worker registered", Duration::from_secs(30), || async {
        let listed: Value = app
            .get("/api/v1/admin/workers", Some(&token))
            .await
            .json()
            .await?;
        Ok(listed.as_array().is_some_and(|w| !w.is_empty()))
    })
    .await
    .unwrap();
    let listed = json_of(app.get("/api/v1/admin/workers", Some(&token)).await, 200).await;
    let one = &listed[0];
    assert_eq!(one["status"], "running", "{listed}");
    let queues: Vec<&str> = one["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(queues, ["email", "extraction"]);
    assert!(one["pid"].as_i64().unwrap() > 0);
    let name = one["name"].as_str().unwrap().to_owned();

    worker.terminate().await;
    let listed = json_of(app.get("/api/v1/admin/workers", Some(&token)).await, 200).await;
    assert_eq!(listed[0]["status"], "stopped", "{listed}");

    // A process that fell silent (killed outright) shows as gone.
    sqlx::query("UPDATE workers SET stopped_at = NULL, heartbeat_at = $2 WHERE name = $1")
        .bind(&name)
        .bind(tend_shared::db::now_ms() - 60_000)
        .execute(&app.db)
        .await
        .unwrap();
    let listed = json_of(app.get("/api/v1/admin/workers", Some(&token)).await, 200).await;
    assert_eq!(listed[0]["status"], "gone", "{listed}");
}
