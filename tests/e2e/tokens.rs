//! Access and refresh tokens: everything forged, expired or replayed is refused.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::time::Duration;

use serde_json::{Value, json};
use tend_tests::{problem, spawn_app};

fn forge(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn claims(sub: &str, exp_offset: i64, aud: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "sub": sub, "role": "practitioner", "jti": "t", "iat": now - 10,
        "exp": now + exp_offset, "iss": "tend", "aud": aud,
    })
}

#[tokio::test]
async fn expired_tampered_unsigned_and_misaddressed_tokens_are_401() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    let secret = app.env["JWT_SECRET"].clone();
    assert_eq!(
        app.get("/api/v1/users/me", Some(&user.access_token))
            .await
            .status(),
        200
    );

    let expired = forge(claims(&user.id, -120, "tend-api"), &secret);
    let body = problem(app.get("/api/v1/users/me", Some(&expired)).await, 401).await;
    assert!(body["detail"].as_str().unwrap().contains("expired"));

    let wrong_audience = forge(claims(&user.id, 600, "someone-else"), &secret);
    problem(
        app.get("/api/v1/users/me", Some(&wrong_audience)).await,
        401,
    )
    .await;

    let wrong_key = forge(
        claims(&user.id, 600, "tend-api"),
        "not the server's key at all!!",
    );
    problem(app.get("/api/v1/users/me", Some(&wrong_key)).await, 401).await;

    // Tampered: swap the payload for another user's id, keep the signature.
    let parts: Vec<&str> = user.access_token.split('.').collect();
    let payload = URL_SAFE_NO_PAD.encode(claims("someone-else", 600, "tend-api").to_string());
    let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
    problem(app.get("/api/v1/users/me", Some(&tampered)).await, 401).await;

    // alg: none, no signature.
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims(&user.id, 600, "tend-api").to_string());
    let unsigned = format!("{header}.{payload}.");
    problem(app.get("/api/v1/users/me", Some(&unsigned)).await, 401).await;

    problem(app.get("/api/v1/users/me", Some("garbage")).await, 401).await;
    problem(app.get("/api/v1/users/me", None).await, 401).await;
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_its_whole_family() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    let first = user.refresh_token.clone();
    let rotated: Value = app.refresh(&first).await.json().await.unwrap();
    let second = rotated["refresh_token"].as_str().unwrap().to_owned();

    // The first token is replayed (stolen copy): refused, and the family dies.
    let resp = app.refresh(&first).await;
    assert_eq!(
        problem(resp, 401).await["type"],
        "/problems/refresh-token-reused"
    );
    let resp = app.refresh(&second).await;
    problem(resp, 401).await;

    // Another sign-in (another family) is untouched.
    let other: Value = app
        .login(&user.email, &user.password)
        .await
        .json()
        .await
        .unwrap();
    let resp = app.refresh(other["refresh_token"].as_str().unwrap()).await;
    assert_eq!(resp.status(), 200);

    let mut conn = app.db.acquire().await.unwrap();
    let actions = tend_shared::db::audit::for_user(&mut conn, &user.id, 50)
        .await
        .unwrap();
    assert!(actions.iter().any(|a| a.action == "refresh_token_reused"));
}

#[tokio::test]
async fn an_unknown_refresh_token_is_401() {
    let app = spawn_app().await;
    let resp = app.refresh("made-up").await;
    assert_eq!(problem(resp, 401).await["type"], "/problems/invalid-token");
}

/// The `kid` header of a token.
fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .unwrap()
        .kid
        .expect("a kid")
}

async fn json_of(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status(), status);
    resp.json().await.unwrap()
}

async fn status_of(app: &tend_tests::TestApp, token: &str) -> u16 {
    app.get("/api/v1/users/me", Some(token))
        .await
        .status()
        .as_u16()
}

/// A fresh access token from a refresh (which also renews the refresh token).
async fn refreshed(app: &tend_tests::TestApp, refresh_token: &mut String) -> String {
    let pair = json_of(app.refresh(refresh_token).await, 200).await;
    *refresh_token = pair["refresh_token"].as_str().unwrap().to_owned();
    pair["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn signing_keys_rotate_while_clients_hold_tokens() {
    let app = spawn_app().await;
    let twin = app.spawn_twin_api().await;
    let admin = app.admin_token().await;
    let user = app.signed_in_user().await;
    let mut refresh = user.refresh_token.clone();
    let keys_path = "/api/v1/admin/signing-keys";

    // A fresh installation signs with JWT_SECRET, named by a digest.
    let env_kid = kid_of(&user.access_token);
    assert!(env_kid.starts_with("env-"), "{env_kid}");
    let keys = json_of(app.get(keys_path, Some(&admin)).await, 200).await;
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(keys[0]["kid"], env_kid.as_str());
    assert_eq!(keys[0]["source"], "environment");
    assert_eq!(keys[0]["signing"], true);
    assert!(!keys.to_string().contains(&app.env["JWT_SECRET"]));

    // An admin rotates: the new key signs at once here, and on the other process as soon as
    // a token names it.
    let first = json_of(app.post_empty(keys_path, &admin).await, 201).await;
    let first_kid = first["kid"].as_str().unwrap().to_owned();
    assert_eq!(first["signing"], true);
    assert_eq!(first["source"], "stored");
    let by_first = refreshed(&app, &mut refresh).await;
    assert_eq!(kid_of(&by_first), first_kid);
    let resp = twin.get("/api/v1/users/me", Some(&by_first)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    // The tokens clients hold keep working, on both processes, until they expire: the old
    // key verifies for one token lifetime (900 s) plus the reload interval and leeway.
    assert_eq!(status_of(&app, &user.access_token).await, 200);
    assert_eq!(status_of(&twin, &user.access_token).await, 200);
    assert_eq!(status_of(&twin, &admin).await, 200);
    let keys = json_of(app.get(keys_path, Some(&admin)).await, 200).await;
    assert_eq!(keys[0]["kid"], first_kid.as_str(), "{keys}");
    assert_eq!(keys[1]["kid"], env_kid.as_str());
    assert_eq!(keys[1]["signing"], false);
    let created =
        chrono::DateTime::parse_from_rfc3339(first["created_at"].as_str().unwrap()).unwrap();
    let until =
        chrono::DateTime::parse_from_rfc3339(keys[1]["verifies_until"].as_str().unwrap()).unwrap();
    assert_eq!((until - created).num_seconds(), 900 + 10 + 5, "{keys}");

    // The other process rotates again; this one signs with that key within its reload
    // interval, and tokens of the first rotated key still verify.
    let second = json_of(twin.post_empty(keys_path, &admin).await, 201).await;
    let second_kid = second["kid"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while kid_of(&refreshed(&app, &mut refresh).await) != second_kid {
        assert!(
            std::time::Instant::now() < deadline,
            "this process never signed with the key rotated elsewhere"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(status_of(&app, &by_first).await, 200);

    // The signing key and the environment's cannot be removed; an unknown one is a 404.
    let resp = app
        .delete_auth(&format!("{keys_path}/{second_kid}"), &admin)
        .await;
    assert_eq!(problem(resp, 409).await["type"], "/problems/signing-key");
    let resp = app
        .delete_auth(&format!("{keys_path}/{env_kid}"), &admin)
        .await;
    assert_eq!(
        problem(resp, 409).await["type"],
        "/problems/environment-key"
    );
    let resp = app.delete_auth(&format!("{keys_path}/nope"), &admin).await;
    problem(resp, 404).await;

    // A leaked key is removed: its tokens are refused at once here, and on the other process
    // within its reload interval.
    let resp = app
        .delete_auth(&format!("{keys_path}/{first_kid}"), &admin)
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(status_of(&app, &by_first).await, 401);
    tend_tests::eventually(
        "the other process to refuse",
        Duration::from_secs(15),
        || {
            let twin = &twin;
            let by_first = by_first.clone();
            async move { Ok(status_of(twin, &by_first).await == 401) }
        },
    )
    .await
    .unwrap();
    // The environment's key still verifies the tokens it signed before the rotations.
    assert_eq!(status_of(&app, &user.access_token).await, 200);

    // The command line does the same.
    let listed = tend_api::commands::list_signing_keys(&app.db, &app.settings)
        .await
        .unwrap();
    assert!(
        listed.starts_with(&format!("{second_kid}\tstored\tsigning\n")),
        "{listed}"
    );
    assert!(!listed.contains(&first_kid), "{listed}");
    tend_api::commands::rotate_signing_key(&app.db, &app.settings)
        .await
        .unwrap();
    let keys = json_of(app.get(keys_path, Some(&admin)).await, 200).await;
    assert_eq!(keys[0]["created_by"], "command", "{keys}");
    assert_eq!(keys[1]["kid"], second_kid.as_str());
    let refused = tend_api::commands::remove_signing_key(&app.db, &app.settings, "nope").await;
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("no stored signing key")
    );
    tend_api::commands::remove_signing_key(&app.db, &app.settings, &second_kid)
        .await
        .unwrap();

    // A token naming a key nobody has is refused.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("made-up".into());
    let forged = jsonwebtoken::encode(
        &header,
        &claims(&user.id, 600, "tend-api"),
        &EncodingKey::from_secret(app.env["JWT_SECRET"].as_bytes()),
    )
    .unwrap();
    assert_eq!(status_of(&app, &forged).await, 401);

    // Each rotation and the removal are in the audit log.
    let audited = |action: &'static str| {
        let (app, admin) = (&app, &admin);
        async move {
            let path = format!("/api/v1/admin/audit-logs?action={action}");
            json_of(app.get(&path, Some(admin)).await, 200).await["items"].clone()
        }
    };
    let rotated = audited("signing_key_rotated").await;
    assert_eq!(rotated.as_array().unwrap().len(), 3, "{rotated}");
    let removed = audited("signing_key_removed").await;
    assert_eq!(removed[0]["detail"]["kid"], second_kid.as_str());
    assert_eq!(removed[1]["detail"]["kid"], first_kid.as_str());
}

#[tokio::test]
async fn a_previous_jwt_secret_and_metrics_token_are_accepted_during_their_overlap() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    let old_secret = app.env["JWT_SECRET"].clone();
    let new_secret = "a-brand-new-signing-secret-0123456789";
    // The operator replaces JWT_SECRET and keeps the old value in JWT_SECRET_PREVIOUS.
    let twin = app
        .spawn_twin_api_with(&[
            ("JWT_SECRET", new_secret),
            ("JWT_SECRET_PREVIOUS", &old_secret),
            ("METRICS_TOKEN", "scrape-with-the-new-token"),
            ("METRICS_TOKEN_PREVIOUS", "scrape-with-the-old-token"),
        ])
        .await;
    assert_eq!(status_of(&twin, &user.access_token).await, 200);
    let again = json_of(twin.login(&user.email, &user.password).await, 200).await;
    let token = again["access_token"].as_str().unwrap();
    assert_ne!(kid_of(token), kid_of(&user.access_token));
    assert_eq!(status_of(&twin, token).await, 200);
    // Without the old value, its tokens are refused.
    let third = app.spawn_twin_api_with(&[("JWT_SECRET", new_secret)]).await;
    assert_eq!(status_of(&third, &user.access_token).await, 401);

    for (token, status) in [
        ("scrape-with-the-new-token", 200),
        ("scrape-with-the-old-token", 200),
        ("scrape-with-a-wrong-token", 401),
    ] {
        let resp = twin.get("/metrics", Some(token)).await;
        assert_eq!(resp.status(), status, "{token}");
    }
}
