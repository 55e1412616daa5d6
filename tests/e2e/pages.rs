//! The pages the emailed links open when no client app is configured: each is served where the
//! mail's link points, loads only its own script, and the call that script makes works.

use serde_json::{Value, json};
use tend_tests::{PASSWORD, spawn_app, unique_email};

#[tokio::test]
async fn the_emailed_links_open_pages_that_finish_the_job() {
    let app = spawn_app().await;
    let email = unique_email();
    assert_eq!(
        app.register(&email, PASSWORD, "practitioner")
            .await
            .status(),
        201
    );
    let mail = app.wait_for_mail(&email, "Confirm").await;
    let link = mail.link();
    assert_eq!(link.path(), "/verify-email");

    // The page at the link's path, with a policy that allows its own script only.
    let page = app
        .get(&format!("{}?{}", link.path(), link.query().unwrap()), None)
        .await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<script src="/assets/account.js""#),
        "{html}"
    );
    assert!(html.contains(r#"data-page="verify-email""#));

    // The script it loads makes these calls; they do what the page promises.
    let script = app
        .get("/assets/account.js", None)
        .await
        .text()
        .await
        .unwrap();
    for call in [
        "/api/v1/auth/verify-email",
        "/api/v1/auth/reset-password",
        "/api/v1/invitations/accept",
    ] {
        assert!(script.contains(call), "the script calls {call}");
    }
    assert!(
        !script.contains("innerHTML"),
        "answers are shown as text only"
    );
    let resp = app
        .post(
            "/api/v1/auth/verify-email",
            &json!({"token": mail.link_token()}),
        )
        .await;
    assert_eq!(resp.json::<Value>().await.unwrap()["email_verified"], true);

    // The reset link opens the reset page.
    app.post("/api/v1/auth/forgot-password", &json!({"email": email}))
        .await;
    let mail = app.wait_for_mail(&email, "Reset your password").await;
    let link = mail.link();
    assert_eq!(link.path(), "/reset-password");
    let html = app.get(link.path(), None).await.text().await.unwrap();
    assert!(html.contains(r#"data-page="reset-password""#) && html.contains(r#"type="password""#));
    let resp = app
        .post(
            "/api/v1/auth/reset-password",
            &json!({"token": mail.link_token(), "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        app.login(&email, "a brand new passphrase").await.status(),
        200
    );

    let html = app
        .get("/accept-invitation", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"data-page="accept-invitation""#));
    assert_eq!(app.get("/assets/account.css", None).await.status(), 200);
}
