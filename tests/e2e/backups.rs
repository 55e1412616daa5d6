//! Backups that are proven to restore: data in through the API, a backup, a restore into a
//! fresh database, every table equal row by row; a damaged backup is refused and changes
//! nothing; a non-empty target is refused without `force`; SQLite to PostgreSQL and back.
//! Admins list backups and take one now through the queue.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Row;
use tend_shared::{backup, db::Db};
use tend_tests::{
    TestApp, empty_postgres_database, fake_openai::FakeOpenAi, open_database, problem,
    spawn_app_with_env,
};

const VTT: &str = "WEBVTT\n\n00:00:01.000 --> 00:00:04.500\n<v Therapist>How was your week, Åsa?\n\n00:00:05.000 --> 00:00:09.000\n<v Client>Better. I slept more.\n";

/// An app with a practitioner, patients, a processed session, audit entries and finished jobs;
/// its background work stopped so its tables hold still.
async fn app_with_data() -> (TestApp, FakeOpenAi) {
    let fake = FakeOpenAi::start().await;
    let env: Vec<(String, String)> = fake.env();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with_env(&pairs).await;
    let user = app.signed_in_user().await;
    let patient = app.create_patient(&user.access_token, "Åsa Öberg").await;
    app.create_patient(&user.access_token, "Zoë \"quoted\" O'Neil")
        .await;
    let resp = app
        .upload_session(
            &user.access_token,
            &patient,
            VTT.as_bytes().to_vec(),
            "t.vtt",
            &[],
        )
        .await;
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_session(
        &id,
        &user.access_token,
        &["processed"],
        Duration::from_secs(60),
    )
    .await;
    tend_api::commands::backfill_stats(
        &app.db,
        chrono::Utc::now().date_naive(),
        chrono::Utc::now().date_naive(),
    )
    .await
    .unwrap();
    (app, fake)
}

/// Every table of `db` as sorted rows of `(column, value)` pairs (read independently of the
/// backup code).
async fn dump(db: &Db, tables: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for table in tables {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM \"{table}\"")))
            .fetch_all(db)
            .await
            .unwrap();
        let mut lines: Vec<String> = rows
            .iter()
            .map(|row| {
                let mut cells: Vec<(String, Value)> = row
                    .columns()
                    .iter()
                    .map(|c| {
                        let name = sqlx::Column::name(c);
                        let value = match row.try_get::<Option<i64>, _>(name) {
                            Ok(v) => json!(v),
                            Err(_) => json!(row.try_get::<Option<String>, _>(name).unwrap()),
                        };
                        (name.to_owned(), value)
                    })
                    .collect();
                cells.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::to_string(&cells).unwrap()
            })
            .collect();
        lines.sort();
        out.push((table.clone(), lines));
    }
    out
}

fn table_names(manifest: &backup::Manifest) -> Vec<String> {
    manifest.tables.iter().map(|t| t.name.clone()).collect()
}

/// Restores `manifest` from `app`'s store into the empty database at `url` and checks every
/// table equals `source`'s, row by row.
async fn restore_and_compare(app: &TestApp, manifest: &backup::Manifest, source: &Db, url: &str) {
    let target = open_database(url).await;
    let restored = backup::restore(
        &target,
        &app.store().await,
        &manifest.id,
        false,
        &app.settings.staging_dir(),
    )
    .await
    .unwrap();
    assert_eq!(restored.rows, manifest.total_rows());
    let tables = table_names(manifest);
    let (want, got) = (dump(source, &tables).await, dump(&target, &tables).await);
    for ((name, a), (_, b)) in want.iter().zip(&got) {
        assert_eq!(a, b, "table {name} differs after the restore into {url}");
    }
    target.close().await;
}

#[tokio::test]
async fn a_backup_restores_into_a_fresh_database_row_for_row_and_a_damaged_one_is_refused() {
    let (mut app, _fake) = app_with_data().await;
    app.stop().await;
    let store = app.store().await;
    let manifest = backup::take(&app.db, &store, &app.settings.staging_dir())
        .await
        .unwrap();
    let by_name = |name: &str| manifest.tables.iter().find(|t| t.name == name).unwrap();
    assert_eq!(by_name("patients").rows, 2);
    assert_eq!(by_name("sessions").rows, 1);
    assert!(by_name("audit_logs").rows > 0 && by_name("jobs").rows > 0);
    assert!(by_name("daily_stats").rows > 0);
    assert!(!manifest.tables.iter().any(|t| t.name == "_sqlx_migrations"));
    assert_eq!(manifest.schema_version, backup::current_schema_version());

    // Into a fresh database of the same kind.
    let url = match empty_postgres_database().await {
        Some(url) => url,
        None => format!(
            "sqlite://{}",
            app.settings.data_dir.join("restored.db").display()
        ),
    };
    restore_and_compare(&app, &manifest, &app.db, &url).await;

    // The source is not empty: refused without force, and nothing changes.
    let refused = backup::restore(
        &app.db,
        &store,
        "latest",
        false,
        &app.settings.staging_dir(),
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("not empty"), "{refused:#}");
    let forced = backup::restore(&app.db, &store, "latest", true, &app.settings.staging_dir())
        .await
        .unwrap();
    assert_eq!(forced.rows, manifest.total_rows());

    // One flipped byte in a table file: refused with a clear reason, the target stays empty.
    let key = format!("backups/{}/patients.jsonl.zst", manifest.id);
    let mut bytes = store.read(&key).await.unwrap().to_vec();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    store
        .put(
            &key,
            "application/zstd",
            futures::stream::iter([Ok(bytes::Bytes::from(bytes))]),
            u64::MAX,
        )
        .await
        .unwrap();
    let fresh = match empty_postgres_database().await {
        Some(url) => url,
        None => format!(
            "sqlite://{}",
            app.settings.data_dir.join("damaged.db").display()
        ),
    };
    let target = open_database(&fresh).await;
    let err = backup::restore(
        &target,
        &store,
        &manifest.id,
        false,
        &app.settings.staging_dir(),
    )
    .await
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("damaged") && message.contains("patients"),
        "{message}"
    );
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&target)
        .await
        .unwrap();
    assert_eq!(users, 0, "nothing was restored");
}

#[tokio::test]
async fn a_backup_in_the_first_format_still_restores() {
    use sha2::{Digest, Sha256};
    let (mut app, _fake) = app_with_data().await;
    app.stop().await;
    let store = app.store().await;
    let current = backup::take(&app.db, &store, &app.settings.staging_dir())
        .await
        .unwrap();
    // The same backup as format 1 wrote it: plain JSON lines beside the manifest, and each
    // table's rows checked by the SHA-256 of their lines' digests, sorted.
    let mut old = current.clone();
    old.format = 1;
    for table in &mut old.tables {
        let text = backup::table_text(&store, &current, &table.name)
            .await
            .unwrap();
        let mut digests: Vec<[u8; 32]> = text
            .lines()
            .skip(1)
            .map(|line| Sha256::digest(line.as_bytes()).into())
            .collect();
        digests.sort_unstable();
        let mut rows = Sha256::new();
        for digest in &digests {
            rows.update(digest);
        }
        table.rows_sha256 = hex::encode(rows.finalize());
        table.file_sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        table.bytes = text.len() as u64;
        let key = format!("{}{}/{}.jsonl", backup::PREFIX, old.id, table.name);
        store
            .put(
                &key,
                "application/jsonl",
                futures::stream::iter([Ok(bytes::Bytes::from(text))]),
                u64::MAX,
            )
            .await
            .unwrap();
    }
    let manifest = format!("{}{}/manifest.json", backup::PREFIX, old.id);
    store
        .put(
            &manifest,
            "application/json",
            futures::stream::iter([Ok(bytes::Bytes::from(serde_json::to_vec(&old).unwrap()))]),
            u64::MAX,
        )
        .await
        .unwrap();
    let url = match empty_postgres_database().await {
        Some(url) => url,
        None => format!(
            "sqlite://{}",
            app.settings.data_dir.join("from-format-1.db").display()
        ),
    };
    restore_and_compare(&app, &old, &app.db, &url).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: eval \"$(.ci/services)\", then cargo test -- --include-ignored"]
async fn a_backup_moves_between_sqlite_and_postgresql_both_ways() {
    let pg = empty_postgres_database()
        .await
        .expect("TEST_DATABASE_URL (run `.ci/services`)");
    let (mut app, _fake) = app_with_data().await;
    app.stop().await;
    let store = app.store().await;
    let staging = app.settings.staging_dir();
    // From the app's database (PostgreSQL in the server pass) to SQLite...
    let first = backup::take(&app.db, &store, &staging).await.unwrap();
    let sqlite_url = format!(
        "sqlite://{}",
        app.settings.data_dir.join("moved.db").display()
    );
    restore_and_compare(&app, &first, &app.db, &sqlite_url).await;
    // ...and from that SQLite database to a fresh PostgreSQL one.
    let sqlite = open_database(&sqlite_url).await;
    let second = backup::take(&sqlite, &store, &staging).await.unwrap();
    assert_eq!(second.source, "sqlite");
    for (a, b) in first.tables.iter().zip(&second.tables) {
        assert_eq!(
            a.rows_sha256, b.rows_sha256,
            "table {} changed on the way",
            a.name
        );
    }
    restore_and_compare(&app, &second, &sqlite, &pg).await;
}

#[tokio::test]
async fn admins_list_backups_and_take_one_now() {
    let (app, _fake) = app_with_data().await;
    let token = &app.admin_token().await;
    let list: Value = app
        .get("/api/v1/admin/backups", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let resp = app.post_empty("/api/v1/admin/backups", token).await;
    assert_eq!(resp.status(), 202);
    let job_id = resp.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_job(&job_id, token, &["done"]).await;
    let list: Value = app
        .get("/api/v1/admin/backups", Some(token))
        .await
        .json()
        .await
        .unwrap();
    let backup = &list["items"][0];
    assert!(backup["rows"].as_u64().unwrap() > 0, "{list}");
    assert!(
        backup["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "sessions" && t["rows"] == 1),
        "{backup}"
    );
    let practitioner = app.signed_in_user().await;
    problem(
        app.get("/api/v1/admin/backups", Some(&practitioner.access_token))
            .await,
        403,
    )
    .await;
}
