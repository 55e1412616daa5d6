//! The right to be forgotten: `DELETE /users/me` makes the account unusable at once, and the
//! erasure job leaves nothing of it in any table or in the object store, except the
//! pseudonymous trail (its id in the audit log and the job ledger).

use std::time::Duration;

use serde_json::Value;
use tend_shared::backup;
use tend_tests::{eventually, fake_openai::FakeOpenAi, spawn_app_with_env};

use tend_tests::VTT;

#[tokio::test]
async fn an_erased_practitioner_leaves_nothing_but_a_pseudonymous_trail() {
    let fake = FakeOpenAi::start().await;
    let env: Vec<(String, String)> = fake.env();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with_env(&pairs).await;
    let store = app.store().await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let patient = app.create_patient(token, "Hélène Françoise").await;
    for (file, name) in [
        (VTT.as_bytes().to_vec(), "t.vtt"),
        (tend_tests::fake_openai::wav(2.0, 16_000, 1), "s.wav"),
    ] {
        let resp = app.upload_session(token, &patient, file, name, &[]).await;
        let id = resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.wait_for_session(&id, token, &["processed"], Duration::from_secs(60))
            .await;
    }
    // An invitation to their address, statistics and a reset request of their own.
    let other = app.signed_in_user().await;
    let theirs = app.create_patient(&other.access_token, "Kept").await;
    let resp = app
        .patch_auth(
            &format!("/api/v1/patients/{theirs}"),
            &other.access_token,
            &serde_json::json!({"account_email": user.email}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let today = chrono::Utc::now().date_naive();
    tend_api::commands::backfill_stats(&app.db, today, today)
        .await
        .unwrap();
    app.post(
        "/api/v1/auth/forgot-password",
        &serde_json::json!({"email": user.email}),
    )
    .await;
    assert_eq!(store.list("sessions/").await.unwrap().len(), 1);

    let resp = app.delete_me(&user).await;
    assert_eq!(resp.status(), 202);
    app.wait_until_erased(&user.id).await;
    // Let the forgot-password job (started before) finish too, so the snapshot holds still.
    eventually("every job finished", Duration::from_secs(20), || async {
        let open: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state NOT IN ('done', 'dead')")
                .fetch_one(&app.db)
                .await?;
        Ok(open == 0)
    })
    .await
    .unwrap();

    assert!(
        store.list("sessions/").await.unwrap().is_empty(),
        "the audio is gone"
    );
    // Every table, through a backup of the whole database: no address, no name, and the id
    // only in the audit log and the job ledger.
    let manifest = backup::take(&app.db, &store, &app.settings.staging_dir())
        .await
        .unwrap();
    for table in &manifest.tables {
        let text = backup::table_text(&store, &manifest, &table.name)
            .await
            .unwrap();
        for needle in [user.email.as_str(), "Hélène Françoise"] {
            assert!(!text.contains(needle), "{needle} is left in {}", table.name);
        }
        if !["audit_logs", "jobs", "job_attempts"].contains(&table.name.as_str()) {
            assert!(
                !text.contains(&user.id),
                "the user id is left in {}",
                table.name
            );
        }
    }
    // The trail: what happened, by whom (an id), without address or network details.
    let trail: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT action, ip, user_agent FROM audit_logs WHERE user_id = $1 ORDER BY at",
    )
    .bind(&user.id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(trail.iter().any(|t| t.0 == "account_deleted"), "{trail:?}");
    assert!(
        trail.iter().all(|t| t.1.is_none() && t.2.is_none()),
        "{trail:?}"
    );
    // The other practitioner's record stays, without the invitation to the erased address.
    let kept: Value = app
        .get(
            &format!("/api/v1/patients/{theirs}"),
            Some(&other.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["link_status"], "none", "{kept}");
}
