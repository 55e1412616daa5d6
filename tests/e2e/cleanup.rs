//! The cleanup with a dry run: per category, what would go (rows, objects, bytes), with
//! nothing deleted; then a real run that deletes exactly that, objects before rows; then a
//! run that finds nothing left. Categories: the audio of a recording that failed long ago,
//! an object no row owns, what an abandoned upload left, a backup past retention.

use std::time::Duration;

use serde_json::Value;
use tend_shared::{backup, db};
use tend_tests::{
    TestApp,
    fake_openai::{self, FakeOpenAi, Reply},
    problem, spawn_app_with_env,
};

/// Runs the cleanup now (a dry run or not) and returns its report, category -> (items, bytes).
pub(crate) async fn cleanup(
    app: &TestApp,
    token: &str,
    dry_run: bool,
) -> Vec<(String, u64, Option<u64>)> {
    let resp = app
        .post_empty(
            &format!("/api/v1/admin/maintenance/cleanup/run?dry_run={dry_run}"),
            token,
        )
        .await;
    assert_eq!(resp.status(), 202);
    let started: Value = resp.json().await.unwrap();
    assert_eq!(started["dry_run"], dry_run);
    let job_id = started["job_id"].as_str().unwrap().to_owned();
    app.wait_for_job(&job_id, token, &["done"]).await;
    let list: Value = app
        .get("/api/v1/admin/maintenance", Some(token))
        .await
        .json()
        .await
        .unwrap();
    let schedule = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "cleanup")
        .unwrap();
    assert_eq!(schedule["supports_dry_run"], true);
    assert_eq!(schedule["last_run"]["id"], job_id.as_str());
    let report = &schedule["last_report"];
    assert_eq!(report["dry_run"], dry_run, "{report}");
    report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["category"].as_str().unwrap().to_owned(),
                c["items"].as_u64().unwrap(),
                c["bytes"].as_u64(),
            )
        })
        .collect()
}

pub(crate) fn category(report: &[(String, u64, Option<u64>)], name: &str) -> (u64, Option<u64>) {
    report
        .iter()
        .find(|c| c.0 == name)
        .map(|c| (c.1, c.2))
        .unwrap_or_else(|| panic!("no {name} in {report:?}"))
}

#[tokio::test]
async fn a_dry_run_reports_what_the_cleanup_would_delete_and_deletes_nothing() {
    let fake = FakeOpenAi::start().await;
    fake.on_transcription([Reply::Status(400, None)]);
    let mut env: Vec<(String, String)> = fake.env();
    env.push(("ORPHAN_OBJECT_MIN_AGE_SECS".into(), "0".into()));
    env.push(("BACKUP_KEEP_DAILY".into(), "1".into()));
    env.push(("BACKUP_KEEP_WEEKLY".into(), "0".into()));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with_env(&pairs).await;
    let store = app.store().await;
    let token = app.admin_token().await;

    // A recording whose transcription failed for good, eight days ago.
    let user = app.signed_in_user().await;
    let patient = app.create_patient(&user.access_token, "Alex Example").await;
    let audio = fake_openai::wav(3.0, 16_000, 1);
    let size = audio.len() as u64;
    let resp = app
        .upload_session(&user.access_token, &patient, audio, "s.wav", &[])
        .await;
    let session_id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_session(
        &session_id,
        &user.access_token,
        &["failed"],
        Duration::from_secs(60),
    )
    .await;
    sqlx::query("UPDATE sessions SET updated_at = $1 WHERE id = $2")
        .bind(db::now_ms() - 8 * 86_400_000)
        .bind(&session_id)
        .execute(&app.db)
        .await
        .unwrap();
    let recording = tend_shared::sessions::recording_key(&session_id.parse().unwrap());

    // An object no row names, and an upload abandoned two days ago.
    let put = |key: String, body: &'static [u8]| {
        let store = store.clone();
        async move {
            let body = futures::stream::iter([Ok(bytes::Bytes::from_static(body))]);
            store.put(&key, "audio/wav", body, 1_000_000).await.unwrap();
        }
    };
    let orphan = format!("sessions/{}/recording", uuid::Uuid::now_v7());
    put(orphan.clone(), b"orphaned bytes").await;
    let abandoned = format!("sessions/{}/recording", uuid::Uuid::now_v7());
    put(abandoned.clone(), b"half an upload").await;
    sqlx::query("INSERT INTO pending_uploads (object_key, created_at) VALUES ($1, $2)")
        .bind(&abandoned)
        .bind(db::now_ms() - 2 * 86_400_000)
        .execute(&app.db)
        .await
        .unwrap();

    // Two backups of today: retention (one per day) keeps the newer.
    let staging = app.settings.staging_dir();
    let older = backup::take(&app.db, &store, &staging).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    backup::take(&app.db, &store, &staging).await.unwrap();

    let objects_before = store.list("").await.unwrap();
    let dry = cleanup(&app, &token, true).await;
    assert_eq!(category(&dry, "failed_recording_audio"), (1, Some(size)));
    assert_eq!(category(&dry, "orphan_objects"), (1, Some(14)));
    assert_eq!(category(&dry, "abandoned_uploads"), (1, Some(14)));
    assert_eq!(
        category(&dry, "old_backups"),
        (1, Some(older.total_bytes()))
    );
    assert!(!dry.iter().any(|c| c.0 == "transport_deliveries"));
    assert_eq!(
        store.list("").await.unwrap(),
        objects_before,
        "a dry run deletes nothing"
    );

    let real = cleanup(&app, &token, false).await;
    for name in [
        "failed_recording_audio",
        "orphan_objects",
        "abandoned_uploads",
        "old_backups",
    ] {
        assert_eq!(category(&real, name), category(&dry, name), "{name}");
    }
    let left = store.list("").await.unwrap();
    for gone in [&recording, &orphan, &abandoned] {
        assert!(!left.contains(gone), "{gone} is still there");
    }
    assert!(
        !left
            .iter()
            .any(|k| k.starts_with(&format!("backups/{}/", older.id)))
    );
    assert_eq!(backup::list(&store).await.unwrap().len(), 1);
    // The failed session stays, saying it failed; its audio is gone.
    let session: Value = app
        .get(
            &format!("/api/v1/sessions/{session_id}"),
            Some(&user.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["status"], "failed", "{session}");
    let key: Option<String> = sqlx::query_scalar("SELECT object_key FROM sessions WHERE id = $1")
        .bind(&session_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(key.is_none());

    let again = cleanup(&app, &token, false).await;
    for name in [
        "failed_recording_audio",
        "orphan_objects",
        "abandoned_uploads",
        "old_backups",
    ] {
        assert_eq!(category(&again, name).0, 0, "{name} again: {again:?}");
    }

    // A schedule that deletes nothing has no dry run.
    let body = problem(
        app.post_empty(
            "/api/v1/admin/maintenance/daily_stats/run?dry_run=true",
            &token,
        )
        .await,
        409,
    )
    .await;
    assert_eq!(body["type"], "/problems/no-dry-run");
}
