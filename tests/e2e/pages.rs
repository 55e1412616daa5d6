//! The pages the emailed links open when no client app is configured: each is served where the
//! mail's link points, loads only its own script, and the call that script makes works; in a
//! real browser, a draft notice's page signs in and shows the plan, a data export's signs in
//! and hands over the archive.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::{Value, json};
use tend_tests::{PASSWORD, fake_openai::Reply, spawn_app, spawn_app_with_fake, unique_email};

use crate::{
    dashboard::{Driver, find, text},
    missions::{drafted, good_plan, questionnaire},
};

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

/// Signs in on the page the browser shows, as `email`.
async fn sign_in_on_the_page(browser: &fantoccini::Client, email: &str) {
    find(browser, "#email")
        .await
        .send_keys(email)
        .await
        .unwrap();
    find(browser, "#password")
        .await
        .send_keys(PASSWORD)
        .await
        .unwrap();
    find(browser, "form button").await.click().await.unwrap();
}

#[tokio::test]
#[ignore = "needs Chromium: eval \"$(.ci/services)\", then cargo test -- --include-ignored"]
async fn the_draft_and_data_export_mails_open_pages_that_sign_in_and_show_them() {
    let (app, fake) = spawn_app_with_fake().await;
    let coach = app.signed_in_user().await;
    let token = &coach.access_token;
    let client = app.create_patient(token, "Zoë Martin").await;
    let q = questionnaire(&client);
    fake.on_chat([Reply::Content(good_plan(&q).to_string())]);
    let draft = drafted(&app, token, &q).await;
    assert_eq!(draft["status"], "ready", "{draft}");
    let mail = app.wait_for_mail(&coach.email, "draft is ready").await;
    let link = mail.link();
    assert_eq!(link.path(), "/mission-draft");
    assert!(link.as_str().starts_with(&app.address), "{link}");

    let driver = Driver::start();
    let browser = driver.browser().await;
    browser.goto(link.as_str()).await.unwrap();
    sign_in_on_the_page(&browser, &coach.email).await;
    let weeks = draft["draft"]["weeks"].as_array().unwrap();
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(&format!(
            "#draft-weeks li:nth-child({})",
            weeks.len()
        )))
        .await
        .unwrap();
    assert_eq!(
        text(&browser, "#draft-event").await,
        format!("Unbound Gravel 200, {}", q["event_date"].as_str().unwrap())
    );
    let first = text(&browser, "#draft-weeks li").await;
    assert!(
        first.starts_with(&format!(
            "Week of {}",
            weeks[0]["week_start"].as_str().unwrap()
        )),
        "{first}"
    );
    assert!(
        text(&browser, "#result")
            .await
            .contains("The plan is ready")
    );

    // The data export's mail: the page signs in and hands over the archive.
    let resp = app.post_empty("/api/v1/users/me/data-export", token).await;
    assert_eq!(resp.status(), 202);
    let mail = app
        .wait_for_mail(&coach.email, "data export is ready")
        .await;
    let link = mail.link();
    assert_eq!(link.path(), "/data-export");
    browser.goto(link.as_str()).await.unwrap();
    sign_in_on_the_page(&browser, &coach.email).await;
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#download:not([hidden])"))
        .await
        .unwrap();
    let saved = text(&browser, "#download").await;
    assert!(
        saved.starts_with("Save tend-data-export.zip (") && saved.ends_with(" KB)"),
        "{saved}"
    );
    let href = find(&browser, "#download")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(href.starts_with("blob:"), "{href}");
    browser.close().await.unwrap();
}
