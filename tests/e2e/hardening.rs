//! What an attacker tries: slow and idle connections, unbounded password hashing, tokens
//! that outlive a reset, addresses that are not plain, guessing a password from a stolen
//! token. Each test failed before its fix.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tend_tests::{PASSWORD, TestApp, problem, spawn_app, spawn_app_with_env, unique_email};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

fn port(app: &TestApp) -> u16 {
    app.address.rsplit(':').next().unwrap().parse().unwrap()
}

/// Opens a connection and sends `bytes`, then leaves it as it is.
async fn stalled(app: &TestApp, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port(app))).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads until the server closes the connection (or resets it); what it said, if anything.
async fn closed_by_server(mut stream: TcpStream, within: Duration) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn stalled_connections_are_closed_and_health_answers_meanwhile() {
    let app = spawn_app_with_env(&[
        ("HTTP_HEADER_TIMEOUT_SECS", "2"),
        ("HTTP_IDLE_TIMEOUT_SECS", "2"),
        ("HTTP_KEEP_ALIVE_SECS", "2"),
    ])
    .await;
    // Half a request line, a request without its headers' end, a body shorter than its
    // Content-Length, and a connection that says nothing.
    let mut connections = Vec::new();
    for i in 0..300 {
        let bytes: &[u8] = match i % 4 {
            0 => b"GET /hea",
            1 => b"GET /health HTTP/1.1\r\nHost: x\r\n",
            2 => b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"em",
            _ => b"",
        };
        connections.push(stalled(&app, bytes).await);
    }
    let started = Instant::now();
    let health = app.get("/health", None).await;
    assert_eq!(
        health.status(),
        200,
        "health answers beside 300 stalled clients"
    );
    for stream in connections {
        closed_by_server(stream, Duration::from_secs(10)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // A kept-alive connection that goes quiet after its answer is closed too.
    let mut keep = stalled(&app, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut first = [0u8; 12];
    keep.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    closed_by_server(keep, Duration::from_secs(10)).await;
    assert_eq!(app.get("/health", None).await.status(), 200);
}

#[tokio::test]
async fn a_slow_body_that_keeps_moving_is_not_cut() {
    let app = spawn_app_with_env(&[
        ("HTTP_HEADER_TIMEOUT_SECS", "1"),
        ("HTTP_IDLE_TIMEOUT_SECS", "2"),
    ])
    .await;
    let body = json!({"email": unique_email(), "password": "not the right password"}).to_string();
    let mut stream = stalled(
        &app,
        format!(
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    // Longer in all than every timeout, with no pause as long as the idle one.
    for chunk in body.as_bytes().chunks(body.len().div_ceil(8)) {
        tokio::time::sleep(Duration::from_millis(600)).await;
        stream.write_all(chunk).await.unwrap();
    }
    let answer = closed_by_server(stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

#[tokio::test]
async fn connections_past_the_cap_are_refused_clearly() {
    let app = spawn_app_with_env(&[
        ("HTTP_MAX_CONNECTIONS", "20"),
        ("HTTP_HEADER_TIMEOUT_SECS", "2"),
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(stalled(&app, b"GET /he").await);
    }
    let refused = stalled(&app, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let answer = closed_by_server(refused, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["type"], "/problems/too-many-connections");
    for stream in held {
        closed_by_server(stream, Duration::from_secs(10)).await;
    }
    assert_eq!(
        app.get("/health", None).await.status(),
        200,
        "the slots came back"
    );
}

#[tokio::test]
async fn registrations_are_limited_per_client() {
    let app = spawn_app_with_env(&[("REGISTER_RATE_LIMIT_PER_HOUR", "3")]).await;
    for _ in 0..3 {
        assert_eq!(
            app.register(&unique_email(), PASSWORD, "patient")
                .await
                .status(),
            201
        );
    }
    let resp = app.register(&unique_email(), PASSWORD, "patient").await;
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after));
    problem(resp, 429).await;
}

#[tokio::test]
async fn made_up_reset_tokens_cost_no_hashing_and_resets_are_limited() {
    // One hashing thread and no queue: any hash attempted beside another is refused, so a
    // 503 among these answers would mean a made-up token was hashed.
    let app = spawn_app_with_env(&[
        ("PASSWORD_HASH_THREADS", "1"),
        ("PASSWORD_HASH_QUEUE", "0"),
        ("LOGIN_RATE_LIMIT_PER_MINUTE", "1000"),
    ])
    .await;
    let bodies: Vec<Value> = (0..64)
        .map(|i| json!({"token": format!("made-up-{i}"), "new_password": "a brand new passphrase"}))
        .collect();
    let attempts = bodies
        .iter()
        .map(|body| app.post("/api/v1/auth/reset-password", body));
    for resp in futures::future::join_all(attempts).await {
        assert_eq!(resp.status(), 400);
    }

    let limited = spawn_app_with_env(&[("LOGIN_RATE_LIMIT_PER_MINUTE", "5")]).await;
    for _ in 0..5 {
        let resp = limited
            .post(
                "/api/v1/auth/reset-password",
                &json!({"token": "made-up", "new_password": "a brand new passphrase"}),
            )
            .await;
        assert_eq!(resp.status(), 400);
    }
    let resp = limited
        .post(
            "/api/v1/auth/reset-password",
            &json!({"token": "made-up", "new_password": "a brand new passphrase"}),
        )
        .await;
    problem(resp, 429).await;
}

#[tokio::test]
async fn hashing_past_capacity_answers_503_with_retry_after_and_keeps_nothing() {
    let app =
        spawn_app_with_env(&[("PASSWORD_HASH_THREADS", "1"), ("PASSWORD_HASH_QUEUE", "1")]).await;
    let emails: Vec<String> = (0..24).map(|_| unique_email()).collect();
    let attempts = emails
        .iter()
        .map(|email| app.register(email, PASSWORD, "patient"));
    let mut created = 0;
    let mut busy = 0;
    for resp in futures::future::join_all(attempts).await {
        match resp.status().as_u16() {
            201 => created += 1,
            503 => {
                assert_eq!(resp.headers()["retry-after"], "1");
                assert_eq!(problem(resp, 503).await["type"], "/problems/busy");
                busy += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        busy > 0,
        "24 hashes at once on one thread with one waiting place"
    );
    assert_eq!(created + busy, 24);
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(users, created, "a refused registration keeps nothing");
}

#[tokio::test]
async fn an_access_token_from_milliseconds_before_a_reset_is_refused() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    app.post(
        "/api/v1/auth/forgot-password",
        &json!({"email": user.email}),
    )
    .await;
    let mail = app.wait_for_mail(&user.email, "Reset your password").await;
    // A fresh token, then the reset right after it (well within the same second).
    let fresh: Value = app.login(&user.email, PASSWORD).await.json().await.unwrap();
    let fresh = fresh["access_token"].as_str().unwrap().to_owned();
    let resp = app
        .post(
            "/api/v1/auth/reset-password",
            &json!({"token": mail.link_token(), "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(resp.status(), 204);
    problem(app.get("/api/v1/users/me", Some(&fresh)).await, 401).await;
    // A sign-in right after the reset works at once.
    let after: Value = app
        .login(&user.email, "a brand new passphrase")
        .await
        .json()
        .await
        .unwrap();
    let after = after["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/users/me", Some(after)).await.status(), 200);
}

#[tokio::test]
async fn one_mailbox_holds_one_account() {
    let app = spawn_app().await;
    let email = unique_email();
    assert_eq!(
        app.register(&email, PASSWORD, "patient").await.status(),
        201
    );
    let (local, domain) = email.split_once('@').unwrap();
    for form in [
        format!("Ada <{email}>"),
        format!("<{email}>"),
        format!("\"{local}\"@{domain}"),
        format!("{email}, other@example.org"),
        format!("{email} (Ada)"),
        format!("{local}@[127.0.0.1]"),
        format!("\"{email}\"@example.org"),
    ] {
        let body = problem(app.register(&form, PASSWORD, "patient").await, 422).await;
        assert_eq!(body["errors"][0]["field"], "email", "{form}: {body}");
    }
    // Case and spaces are normalised to the same account.
    problem(
        app.register(
            &format!("  {}  ", email.to_uppercase()),
            PASSWORD,
            "patient",
        )
        .await,
        409,
    )
    .await;
}

#[tokio::test]
async fn names_and_fields_keep_to_their_schema() {
    let app = spawn_app().await;
    for name in ["Ada\u{0}", "Ada\nLovelace", "\u{202e}ecilA"] {
        let resp = app
            .post(
                "/api/v1/auth/register",
                &json!({"email": unique_email(), "password": PASSWORD, "role": "patient", "display_name": name}),
            )
            .await;
        assert_eq!(
            problem(resp, 422).await["errors"][0]["field"],
            "display_name"
        );
    }
    let resp = app
        .post(
            "/api/v1/auth/register",
            &json!({"email": unique_email(), "password": 123456789012345_i64, "role": "patient"}),
        )
        .await;
    let body = problem(resp, 422).await;
    assert_eq!(body["errors"][0]["field"], "password", "{body}");
    assert_eq!(body["errors"][0]["message"], "must be a string");
    let resp = app
        .post("/api/v1/auth/register", &json!({"email": unique_email()}))
        .await;
    let body = problem(resp, 422).await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["password", "role"], "{body}");
}

#[tokio::test]
async fn guessing_the_current_password_with_a_stolen_token_is_limited() {
    let app = spawn_app_with_env(&[("LOGIN_RATE_LIMIT_PER_MINUTE", "3")]).await;
    let user = app.signed_in_user().await;
    let guess = |n: usize| {
        let body = json!({"new_password": "a brand new passphrase", "current_password": format!("guess number {n}")});
        let app = &app;
        let token = user.access_token.clone();
        async move { app.patch_auth("/api/v1/users/me", &token, &body).await }
    };
    for n in 0..3 {
        problem(guess(n).await, 403).await;
    }
    problem(guess(3).await, 429).await;
    // The account's deletion shares the limit.
    problem(app.delete_me(&user).await, 429).await;
}

#[tokio::test]
async fn mail_requests_do_the_same_work_for_every_address() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    for email in [user.email.clone(), unique_email()] {
        let resp = app
            .post("/api/v1/auth/forgot-password", &json!({"email": email}))
            .await;
        assert_eq!(resp.status(), 202);
    }
    // Both answers started the same job; only the known address gets a mail, from it.
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM jobs WHERE kind = 'answer_mail_request' ORDER BY created_at",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(kinds.len(), 2);
    app.wait_for_mail(&user.email, "Reset your password").await;
}

#[tokio::test]
async fn a_transcript_with_a_negative_or_overflowing_time_is_refused_naming_the_line() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    let patient = app.create_patient(&user.access_token, "Sam").await;
    for timing in [
        "-00:00:05.000 --> 00:00:02.000",
        "00:00:01.000 --> 9223372036854775807:00:00.000",
    ] {
        let vtt = format!("WEBVTT\n\n{timing}\nHello.\n");
        let resp = app
            .upload_session(&user.access_token, &patient, vtt.into_bytes(), "t.vtt", &[])
            .await;
        let body = problem(resp, 422).await;
        assert!(body.to_string().contains("line 3"), "{body}");
    }
}

#[tokio::test]
async fn a_signed_in_user_is_limited_per_minute_but_probes_and_others_are_not() {
    let app = spawn_app_with_env(&[("API_RATE_LIMIT_PER_MINUTE", "5")]).await;
    let user = app.signed_in_user().await;
    let other = app.signed_in_user().await;
    for _ in 0..5 {
        assert_eq!(
            app.get("/api/v1/users/me", Some(&user.access_token))
                .await
                .status(),
            200
        );
    }
    let resp = app.get("/api/v1/users/me", Some(&user.access_token)).await;
    refused_for_now(resp).await;
    assert_eq!(
        app.get("/api/v1/users/me", Some(&other.access_token))
            .await
            .status(),
        200,
        "another user has a budget of their own"
    );
    for _ in 0..10 {
        assert_eq!(app.get("/health", None).await.status(), 200);
    }
}

#[tokio::test]
async fn the_per_user_limit_counts_every_spelling_of_the_bearer_scheme() {
    let app = spawn_app_with_env(&[("API_RATE_LIMIT_PER_MINUTE", "4")]).await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    // Each spelling the authentication accepts is one request of the same account.
    let spellings = [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("Bearer   {token}"),
    ];
    let me = |spelling: &String| {
        app.client
            .get(format!("{}/api/v1/users/me", app.address))
            .header("authorization", spelling)
            .send()
    };
    for spelling in &spellings {
        assert_eq!(me(spelling).await.unwrap().status(), 200, "{spelling:.12}");
    }
    for spelling in &spellings {
        refused_for_now(me(spelling).await.unwrap()).await;
    }
}

#[tokio::test]
async fn paid_work_and_invitation_mail_have_per_account_budgets_admins_see_and_reset() {
    let app = spawn_app_with_env(&[
        ("UPLOADS_PER_HOUR", "2"),
        ("INVITATION_MAILS_PER_RECIPIENT_PER_DAY", "1"),
    ])
    .await;
    let user = app.signed_in_user().await;
    let token = &user.access_token;
    let patient = app.create_patient(token, "Budgeted").await;
    let upload = || {
        app.upload_session(
            token,
            &patient,
            b"A short transcript.".to_vec(),
            "t.txt",
            &[],
        )
    };
    for _ in 0..2 {
        assert_eq!(upload().await.status(), 202);
    }
    let refused = upload().await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    problem(refused, 429).await;

    // Admins see the budget spent, refill it, and the account uploads again.
    let admin = app.admin_token().await;
    let path = format!("/api/v1/admin/users/{}/limits", user.id);
    let limits: Value = app.get(&path, Some(&admin)).await.json().await.unwrap();
    let uploads = limits["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "uploads")
        .unwrap()
        .clone();
    // Both units in use; the refused attempt spent nothing (token buckets, not counters).
    assert_eq!(
        (uploads["limit"].clone(), uploads["used"].clone()),
        (json!(2), json!(2))
    );
    let reset: Value = app
        .post_empty(&format!("{path}/reset"), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        reset["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["used"] == 0),
        "{reset}"
    );
    assert_eq!(upload().await.status(), 202);
    problem(app.get(&path, Some(token)).await, 403).await;
    let metrics = app
        .get("/metrics", Some(&admin))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("tend_budget_refusals_total{budget=\"uploads\"}")),
        "the refusal is counted"
    );

    // One invitation mail a day to an address, whoever sends it.
    let address = unique_email();
    let invite = |token: String, patient: String| {
        let address = address.clone();
        let app = &app;
        async move {
            app.patch_auth(
                &format!("/api/v1/patients/{patient}"),
                &token,
                &json!({"account_email": address}),
            )
            .await
        }
    };
    assert_eq!(invite(token.clone(), patient.clone()).await.status(), 200);
    let other = app.signed_in_user().await;
    let theirs = app.create_patient(&other.access_token, "Theirs").await;
    let refused = invite(other.access_token.clone(), theirs).await;
    refused_for_now(refused).await;
}

#[tokio::test]
async fn strangers_guessing_a_password_do_not_lock_its_owner_out() {
    let app = spawn_app_with_env(&[
        ("LOGIN_RATE_LIMIT_PER_MINUTE", "3"),
        ("TRUST_PROXY_HEADERS", "true"),
    ])
    .await;
    let owner = app.signed_in_as("patient").await;
    let login_from = |ip: String, password: &'static str| {
        app.client
            .post(format!("{}/api/v1/auth/login", app.address))
            .header("x-forwarded-for", ip)
            .json(&json!({"email": owner.email, "password": password}))
            .send()
    };
    let home = "2001:db8:5:6::1";
    assert_eq!(
        login_from(home.into(), PASSWORD).await.unwrap().status(),
        200
    );
    // Strangers at five addresses guess until strangers are refused, the right password too.
    for i in 1..=5 {
        let _ = login_from(format!("203.0.113.{i}"), "wrong guess here").await;
    }
    let stranger = login_from("203.0.113.9".into(), PASSWORD).await.unwrap();
    refused_for_now(stranger).await;
    // The owner, on the network they signed in from (another address of the same /64), is in.
    let at_home = login_from("2001:db8:5:6::abcd".into(), PASSWORD)
        .await
        .unwrap();
    assert_eq!(at_home.status(), 200);
    // Guessing from the owner's network is limited too, on its own budget.
    for _ in 0..2 {
        let _ = login_from(home.into(), "wrong guess here").await;
    }
    problem(login_from(home.into(), PASSWORD).await.unwrap(), 429).await;
}

/// A 429 problem that says when to come back.
async fn refused_for_now(resp: reqwest::Response) {
    assert!(resp.headers().contains_key("retry-after"));
    problem(resp, 429).await;
}
