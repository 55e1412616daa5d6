//! The account journey and its bad paths.

use std::time::Duration;

use serde_json::{Value, json};
use tend_tests::{
    AppOptions, PASSWORD, eventually, problem, spawn_app, spawn_app_with, spawn_app_with_env,
    unique_email,
};

#[tokio::test]
async fn a_newcomer_registers_verifies_signs_in_refreshes_resets_and_signs_out() {
    let app = spawn_app().await;
    let email = unique_email();

    // Register: 201, and a job that sends the verification mail.
    let resp = app
        .post(
            "/api/v1/auth/register",
            &json!({"email": email.to_uppercase(), "password": PASSWORD, "role": "practitioner", "display_name": "Ada"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["email"], email, "addresses are normalised");
    assert_eq!(body["user"]["email_verified"], false);
    assert_eq!(body["user"]["role"], "practitioner");
    let job_id = body["verification_email_job_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The token comes from the mail the job really wrote or sent.
    let mail = app
        .wait_for_mail(&email, "Confirm your email address")
        .await;
    assert!(mail.text.contains("Hello Ada"));
    assert!(mail.html.contains("<a href="));
    // PUBLIC_URL is unset and the API took any free port: the link names that port.
    let link = mail.link();
    assert_eq!(
        format!(
            "{}://{}:{}",
            link.scheme(),
            link.host_str().unwrap(),
            link.port().unwrap()
        ),
        app.address,
        "{link}"
    );
    let token = mail.link_token();

    // Sign in before verifying works, and shows the account unverified.
    let login: Value = app.login(&email, PASSWORD).await.json().await.unwrap();
    let access = login["access_token"].as_str().unwrap().to_owned();
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["expires_in"], 900);

    // The registration job is visible to its owner, and done.
    let job = app.wait_for_job(&job_id, &access, &["done"]).await;
    assert_eq!(job["kind"], "send_email");
    assert_eq!(job["attempts"], 1);

    // Verify: single use.
    let resp = app
        .post("/api/v1/auth/verify-email", &json!({"token": token}))
        .await;
    assert_eq!(resp.status(), 200);
    let verified: Value = resp.json().await.unwrap();
    assert_eq!(verified["email_verified"], true, "the answer says so");
    let again = app
        .post("/api/v1/auth/verify-email", &json!({"token": token}))
        .await;
    assert_eq!(problem(again, 400).await["type"], "/problems/invalid-token");
    let me: Value = app
        .get("/api/v1/users/me", Some(&access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email_verified"], true);

    // Refresh rotates: a new pair, and the old refresh token is spent.
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let rotated: Value = app.refresh(&refresh).await.json().await.unwrap();
    let refresh2 = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh, refresh2);
    let access2 = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/api/v1/users/me", Some(&access2)).await.status(),
        200
    );

    // Logout revokes the session's refresh token.
    let resp = app
        .post("/api/v1/auth/logout", &json!({"refresh_token": refresh2}))
        .await;
    assert_eq!(resp.status(), 204);
    let resp = app.refresh(&refresh2).await;
    problem(resp, 401).await;

    // Forgot password: a reset mail; the reset signs out everywhere.
    let other_session: Value = app.login(&email, PASSWORD).await.json().await.unwrap();
    let resp = app
        .post("/api/v1/auth/forgot-password", &json!({"email": email}))
        .await;
    assert_eq!(resp.status(), 202);
    let reset_mail = app.wait_for_mail(&email, "Reset your password").await;
    let new_password = "a much better passphrase";
    // A weak new password is refused and the token stays usable.
    let weak = app
        .post(
            "/api/v1/auth/reset-password",
            &json!({"token": reset_mail.link_token(), "new_password": "short"}),
        )
        .await;
    assert_eq!(
        problem(weak, 422).await["errors"][0]["field"],
        "new_password"
    );
    // Tokens issued before the reset must be strictly older than it: they carry their issue
    // time in milliseconds (`iat_ms`), so a few milliseconds are enough.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let resp = app
        .post(
            "/api/v1/auth/reset-password",
            &json!({"token": reset_mail.link_token(), "new_password": new_password}),
        )
        .await;
    assert_eq!(resp.status(), 204);
    let old_access = other_session["access_token"].as_str().unwrap();
    problem(app.get("/api/v1/users/me", Some(old_access)).await, 401).await;
    let old_refresh = other_session["refresh_token"].as_str().unwrap();
    problem(app.refresh(old_refresh).await, 401).await;
    problem(app.login(&email, PASSWORD).await, 401).await;
    assert_eq!(app.login(&email, new_password).await.status(), 200);
    app.wait_for_mail(&email, "Your password was changed").await;

    // The audit trail has the journey.
    let mut conn = app.db.acquire().await.unwrap();
    let user_id = body["user"]["id"].as_str().unwrap();
    let actions: Vec<String> = tend_shared::db::audit::for_user(&mut conn, user_id, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for expected in [
        "register",
        "login_succeeded",
        "email_verified",
        "logout",
        "password_reset_requested",
        "password_reset",
        "login_failed",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} not audited: {actions:?}"
        );
    }
}

#[tokio::test]
async fn registration_reports_every_invalid_field_at_once() {
    let app = spawn_app().await;
    let resp = app
        .post(
            "/api/v1/auth/register",
            &json!({"email": "not-an-email", "password": "short", "role": "admin"}),
        )
        .await;
    let body = problem(resp, 422).await;
    assert_eq!(body["type"], "/problems/validation");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "password", "role"]);

    let too_long = app
        .register(&unique_email(), &"x".repeat(129), "patient")
        .await;
    assert_eq!(
        problem(too_long, 422).await["errors"][0]["field"],
        "password"
    );
}

#[tokio::test]
async fn a_taken_email_is_a_409_whatever_its_case() {
    let app = spawn_app().await;
    let email = unique_email();
    assert_eq!(
        app.register(&email, PASSWORD, "patient").await.status(),
        201
    );
    let resp = app
        .register(&email.to_uppercase(), PASSWORD, "practitioner")
        .await;
    assert_eq!(problem(resp, 409).await["type"], "/problems/email-taken");
}

#[tokio::test]
async fn wrong_passwords_and_unknown_accounts_get_the_same_401() {
    let app = spawn_app().await;
    let email = unique_email();
    app.register(&email, PASSWORD, "patient").await;
    let wrong = problem(app.login(&email, "not the right password").await, 401).await;
    let unknown = problem(app.login(&unique_email(), PASSWORD).await, 401).await;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["type"], "/problems/invalid-credentials");
}

#[tokio::test]
async fn login_attempts_are_limited_with_429_and_retry_after() {
    let app = spawn_app_with_env(&[("LOGIN_RATE_LIMIT_PER_MINUTE", "3")]).await;
    let email = unique_email();
    app.register(&email, PASSWORD, "patient").await;
    for _ in 0..3 {
        assert_eq!(app.login(&email, "wrong password here").await.status(), 401);
    }
    let resp = app.login(&email, PASSWORD).await;
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(problem(resp, 429).await["type"], "/problems/rate-limited");
}

#[tokio::test]
async fn forgot_password_and_resend_answer_alike_for_unknown_addresses() {
    let app = spawn_app().await;
    let known = unique_email();
    app.register(&known, PASSWORD, "patient").await;
    for path in [
        "/api/v1/auth/forgot-password",
        "/api/v1/auth/resend-verification",
    ] {
        let a = app.post(path, &json!({"email": known})).await;
        let b = app.post(path, &json!({"email": unique_email()})).await;
        assert_eq!(a.status(), 202);
        assert_eq!(b.status(), 202);
        assert_eq!(
            a.json::<Value>().await.unwrap(),
            b.json::<Value>().await.unwrap()
        );
    }
    // The known address really got both mails.
    app.wait_for_mail(&known, "Reset your password").await;
    eventually(
        "the resent verification mail",
        Duration::from_secs(20),
        || async {
            let confirmations = app
                .mails_to(&known)
                .iter()
                .filter(|m| m.subject.contains("Confirm"))
                .count();
            Ok(confirmations >= 2)
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn users_update_their_name_and_password_and_delete_their_account() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    let other_device: Value = app
        .login(&user.email, &user.password)
        .await
        .json()
        .await
        .unwrap();
    let other_device = tend_tests::TestUser {
        refresh_token: other_device["refresh_token"].as_str().unwrap().to_owned(),
        ..user.clone()
    };
    let resp = app
        .patch_auth(
            "/api/v1/users/me",
            &user.access_token,
            &json!({"display_name": "  Grace  "}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["display_name"], "Grace");

    // A password change needs the current password.
    let resp = app
        .patch_auth(
            "/api/v1/users/me",
            &user.access_token,
            &json!({"new_password": "another long passphrase", "current_password": "wrong"}),
        )
        .await;
    assert_eq!(problem(resp, 403).await["type"], "/problems/wrong-password");
    let resp = app
        .patch_auth(
            "/api/v1/users/me",
            &user.access_token,
            &json!({"new_password": "another long passphrase", "current_password": user.password}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    // Other devices are signed out; this one stays signed in.
    problem(app.refresh(&other_device.refresh_token).await, 401).await;
    let resp = app.refresh(&user.refresh_token).await;
    assert_eq!(
        resp.status(),
        200,
        "the device that changed it keeps its sign-in"
    );
    assert_eq!(
        app.login(&user.email, "another long passphrase")
            .await
            .status(),
        200
    );

    // Deleting the account asks for its password.
    let user = tend_tests::TestUser {
        password: "another long passphrase".into(),
        ..user
    };
    let wrong = tend_tests::TestUser {
        password: "not the password at all".into(),
        ..user.clone()
    };
    let body = problem(app.delete_me(&wrong).await, 403).await;
    assert_eq!(body["type"], "/problems/wrong-password");
    // Without a body at all: refused too (no Content-Type).
    problem(
        app.delete_auth("/api/v1/users/me", &user.access_token)
            .await,
        415,
    )
    .await;
    let resp = app.delete_me(&user).await;
    assert_eq!(resp.status(), 202);
    // Unusable at once, before the erasure job has run.
    problem(
        app.get("/api/v1/users/me", Some(&user.access_token)).await,
        401,
    )
    .await;
    problem(app.login(&user.email, "another long passphrase").await, 401).await;
    problem(app.refresh(&user.refresh_token).await, 401).await;
    app.wait_until_erased(&user.id).await;
    let tokens_left: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM refresh_tokens WHERE user_id = $1")
            .bind(&user.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(tokens_left, 0, "the account's tokens are deleted with it");
}

#[tokio::test]
async fn create_admin_makes_an_admin_who_sees_any_job() {
    let app = spawn_app().await;
    let email = unique_email();
    tend_api::commands::create_admin(&app.db, &email, PASSWORD)
        .await
        .unwrap();
    let login: Value = app.login(&email, PASSWORD).await.json().await.unwrap();
    assert_eq!(login["user"]["role"], "admin");
    let admin_token = login["access_token"].as_str().unwrap().to_owned();

    let other = unique_email();
    let body: Value = app
        .register(&other, PASSWORD, "patient")
        .await
        .json()
        .await
        .unwrap();
    let job_id = body["verification_email_job_id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/api/v1/jobs/{job_id}"), Some(&admin_token))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_expired_verification_link_is_refused() {
    let app = spawn_app().await;
    let email = unique_email();
    app.register(&email, PASSWORD, "patient").await;
    let token = app.wait_for_mail(&email, "Confirm").await.link_token();
    // 24 hours pass.
    sqlx::query("UPDATE email_tokens SET expires_at = $1")
        .bind(tend_shared::db::now_ms() - 1)
        .execute(&app.db)
        .await
        .unwrap();
    let resp = app
        .post("/api/v1/auth/verify-email", &json!({"token": token}))
        .await;
    assert_eq!(problem(resp, 400).await["type"], "/problems/invalid-token");
}

#[tokio::test]
#[ignore = "needs Redis: eval \"$(.ci/services)\", then cargo test -- --include-ignored"]
async fn api_replicas_on_one_redis_share_the_login_limit() {
    let redis = std::env::var("TEST_REDIS_URL")
        .expect("TEST_REDIS_URL: run `eval \"$(.ci/services)\"` first");
    let namespace = format!("shared-limit-{}", uuid::Uuid::new_v4().simple());
    let replica = || {
        spawn_app_with(AppOptions {
            env: vec![
                ("QUEUE_URL".into(), redis.clone()),
                ("QUEUE_NAMESPACE".into(), namespace.clone()),
                ("LOGIN_RATE_LIMIT_PER_MINUTE".into(), "4".into()),
            ],
            api_only: true,
        })
    };
    let (a, b) = (replica().await, replica().await);
    let email = unique_email();
    for app in [&a, &b, &a, &b] {
        assert_eq!(app.login(&email, PASSWORD).await.status(), 401);
    }
    problem(b.login(&email, PASSWORD).await, 429).await;
    problem(a.login(&email, PASSWORD).await, 429).await;
}
