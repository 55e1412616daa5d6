//! Access and refresh tokens: everything forged, expired or replayed is refused.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
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
