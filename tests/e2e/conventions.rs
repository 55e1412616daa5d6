//! API conventions: ops endpoints, the spec and docs, problem+json, request ids, headers.

use serde_json::{Value, json};
use tend_tests::{problem, spawn_app, spawn_app_with_env};

#[tokio::test]
async fn health_and_ready_report_the_process_and_its_dependencies() {
    let app = spawn_app().await;
    let resp = app.get("/health", None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "ok");

    let resp = app.get("/ready", None).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["database"]["status"], "ok");
    assert_eq!(body["queue"]["status"], "ok");
}

#[tokio::test]
async fn the_openapi_spec_and_swagger_ui_are_served() {
    let app = spawn_app().await;
    let spec: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert_eq!(spec["info"]["title"], "Tend API");
    // PUBLIC_URL unset: the server clients are generated for is where the API listens.
    assert_eq!(
        spec["servers"][0]["url"],
        app.address.as_str(),
        "{}",
        spec["servers"]
    );
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/verify-email",
        "/api/v1/auth/resend-verification",
        "/api/v1/auth/forgot-password",
        "/api/v1/auth/reset-password",
        "/api/v1/users/me",
        "/api/v1/jobs/{id}",
        "/health",
        "/ready",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the spec"
        );
    }
    let register_422 = &spec["paths"]["/api/v1/auth/register"]["post"]["responses"]["422"];
    assert!(
        register_422["content"]["application/problem+json"].is_object(),
        "errors are documented as problem+json: {register_422}"
    );
    let docs = app.get("/docs", None).await;
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
    // ReDoc too, with its script inside the binary (no CDN).
    let redoc = app.get("/redoc", None).await;
    assert_eq!(redoc.status(), 200);
    let html = redoc.text().await.unwrap();
    assert!(html.to_lowercase().contains("redoc"), "{html}");
    assert!(!html.contains("cdn."), "nothing loaded from a CDN");
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(format!("{}/api/v1/auth/register", app.address))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    let body = problem(resp, 400).await;
    assert_eq!(body["type"], "/problems/bad-request");
}

#[tokio::test]
async fn unknown_routes_are_404_problems() {
    let app = spawn_app().await;
    let body = problem(app.get("/api/v1/nothing-here", None).await, 404).await;
    assert_eq!(body["type"], "/problems/not-found");
}

#[tokio::test]
async fn a_method_a_path_does_not_answer_is_a_405_naming_those_it_does() {
    let app = spawn_app().await;
    for (method, path, allowed) in [
        (
            reqwest::Method::PUT,
            "/api/v1/patients",
            vec!["GET", "HEAD", "POST"],
        ),
        (
            reqwest::Method::POST,
            "/api/v1/patients/01a2310c-988f-71c2-bf4d-bd10f940e603",
            vec!["DELETE", "GET", "HEAD", "PATCH"],
        ),
    ] {
        let resp = app
            .client
            .request(method, format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        let allow = resp
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let mut methods: Vec<&str> = allow.split(", ").collect();
        methods.sort_unstable();
        assert_eq!(methods, allowed, "{path}: Allow {allow:?}");
        let body = problem(resp, 405).await;
        assert_eq!(body["type"], "/problems/method-not-allowed");
    }
}

#[tokio::test]
async fn a_nul_in_a_path_or_a_query_is_refused_before_the_database_sees_it() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    let token = Some(user.access_token.as_str());
    // PostgreSQL cannot compare a text with NUL: these were 500s there (found by the fuzzer).
    let body = problem(app.get("/api/v1/patients?q=a%00b", token).await, 422).await;
    assert_eq!(body["errors"][0]["field"], "query", "{body}");
    problem(app.get("/api/v1/patients/a%00b", token).await, 404).await;
    let fine = app.get("/api/v1/patients?q=%C3%85sa", token).await;
    assert_eq!(fine.status(), 200);
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = spawn_app().await;
    let big = "x".repeat(2 * 1024 * 1024);
    let resp = app
        .post(
            "/api/v1/auth/login",
            &json!({"email": big, "password": "x"}),
        )
        .await;
    let body = problem(resp, 413).await;
    assert_eq!(body["type"], "/problems/payload-too-large");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let app = spawn_app().await;
    let resp = app.get("/health", None).await;
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok());

    let resp = app
        .client
        .get(format!("{}/api/v1/users/me", app.address))
        .header("x-request-id", "client-chosen-id-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "client-chosen-id-42");
    // Error answers carry it too, with security headers.
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    problem(resp, 401).await;
}

#[tokio::test]
async fn browsers_from_configured_origins_may_call_the_api() {
    let app = tend_tests::spawn_app_with(tend_tests::AppOptions {
        env: vec![("CORS_ORIGINS".into(), "https://app.example.org".into())],
        ..Default::default()
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/v1/auth/login", app.address),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.example.org").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    let refused = preflight("https://evil.example.com").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

/// The published contract changes only on purpose: review with `cargo insta review` (or
/// `INSTA_UPDATE=always cargo test`) and commit the new snapshot with the change.
#[tokio::test]
async fn the_openapi_spec_matches_its_snapshot() {
    // A fixed server URL: unset, it would name the port this run happened to get.
    let app = spawn_app_with_env(&[("PUBLIC_URL", "http://127.0.0.1:8080")]).await;
    let spec: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    insta::assert_json_snapshot!("openapi", spec);
}
