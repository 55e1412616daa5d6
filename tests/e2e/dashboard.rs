//! The admin dashboard in a real browser (Debian's Chromium through its WebDriver): an admin
//! signs in, sees the queues (a screenshot is left in `target/screenshots/`), finds a dead
//! job whose error holds markup, sees it as text, presses Retry and sees the job done; and
//! sets a practice's monthly budget.

use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tend_tests::{PASSWORD, TestApp, spawn_app, unique_email};

/// A chromedriver of the test's own, on a free port; stopped when dropped.
pub(crate) struct Driver {
    child: std::process::Child,
    url: String,
}

impl Driver {
    pub(crate) fn start() -> Self {
        let bin = std::env::var("TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin} (run `.ci/services` to install it): {e}"));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    pub(crate) async fn browser(&self) -> Client {
        let profile = tempfile::tempdir().unwrap().keep();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1400,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        for _ in 0..50 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            if let Ok(client) = ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&self.url)
                .await
            {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("chromedriver did not start a browser");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the element at `css` and returns it.
pub(crate) async fn find(browser: &Client, css: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

/// Clicks the element `css` names. The dashboard re-renders as it refreshes itself, so an
/// element found a moment ago may be replaced before the click lands: it is found again.
async fn click(browser: &Client, css: &str) {
    for _ in 0..20 {
        match find(browser, css).await.click().await {
            Ok(_) => return,
            Err(fantoccini::error::CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("clicking {css}: {e}"),
        }
    }
    panic!("{css} kept being replaced before it could be clicked");
}

/// Reads the text of the element `css` names, finding it again if a refresh replaced it.
pub(crate) async fn text(browser: &Client, css: &str) -> String {
    for _ in 0..20 {
        match find(browser, css).await.text().await {
            Ok(text) => return text,
            Err(fantoccini::error::CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("reading {css}: {e}"),
        }
    }
    panic!("{css} kept being replaced before it could be read");
}

/// Opens the dashboard and signs in as the admin `email`.
async fn sign_in(browser: &Client, app: &TestApp, email: &str) {
    browser
        .goto(&format!("{}/admin", app.address))
        .await
        .unwrap();
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
    click(browser, "#sign-in button").await;
}

/// A dead mail job whose error holds markup, as an admin would find it.
async fn dead_job(app: &TestApp) -> String {
    let body: Value = app
        .register(&unique_email(), PASSWORD, "patient")
        .await
        .json()
        .await
        .unwrap();
    let id = body["verification_email_job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    tend_tests::eventually("the mail job done", Duration::from_secs(20), || async {
        let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
            .bind(&id)
            .fetch_one(&app.db)
            .await?;
        Ok(state == "done")
    })
    .await
    .unwrap();
    sqlx::query(
        "UPDATE jobs SET state = 'dead', last_error = '<script>window.hacked = 1</script><b>SMTP said no</b>' \
         WHERE id = $1",
    )
    .bind(&id)
    .execute(&app.db)
    .await
    .unwrap();
    id
}

#[tokio::test]
#[ignore = "needs Chromium: eval \"$(.ci/services)\", then cargo test -- --include-ignored"]
async fn an_admin_signs_in_finds_a_dead_job_retries_it_and_sees_it_done() {
    let app = spawn_app().await;
    let email = unique_email();
    tend_api::commands::create_admin(&app.db, &email, PASSWORD)
        .await
        .unwrap();
    let job_id = dead_job(&app).await;

    let driver = Driver::start();
    let browser = driver.browser().await;
    sign_in(&browser, &app, &email).await;

    // The queues page, live, with its chart; kept as a screenshot.
    find(&browser, "tr[data-queue=email]").await;
    find(&browser, "svg.chart polyline").await;
    let png = browser.screenshot().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("admin-queues.png"), &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let url = browser.current_url().await.unwrap();
    assert!(url.query().is_none(), "no token in the URL: {url}");

    // Jobs, filtered to the dead: the job's error shows as text, its markup inert.
    click(&browser, "nav button[data-view=jobs]").await;
    let state = find(&browser, "#filter-state").await;
    state.select_by_value("dead").await.unwrap();
    click(&browser, &format!("tr[data-job='{job_id}']")).await;
    let error = text(&browser, "#job-error").await;
    assert!(
        error.contains("<script>window.hacked = 1</script>"),
        "{error}"
    );
    let hacked = browser
        .execute("return window.hacked === undefined;", vec![])
        .await
        .unwrap();
    assert_eq!(hacked, json!(true), "the job's error did not run");
    assert!(
        browser
            .find_all(Locator::Css("#view b"))
            .await
            .unwrap()
            .is_empty(),
        "markup in an error is not rendered"
    );

    click(&browser, "#retry").await;
    browser
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("[data-state=done]"))
        .await
        .expect("the retried job shows done");
    let ledger: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
        .bind(&job_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(ledger, "done");
    browser.close().await.unwrap();
}

#[tokio::test]
#[ignore = "needs Chromium: eval \"$(.ci/services)\", then cargo test -- --include-ignored"]
async fn an_admin_sees_a_practices_budget_and_sets_it() {
    let app = spawn_app().await;
    let email = unique_email();
    tend_api::commands::create_admin(&app.db, &email, PASSWORD)
        .await
        .unwrap();
    let practitioner = app.signed_in_user().await;

    let driver = Driver::start();
    let browser = driver.browser().await;
    sign_in(&browser, &app, &email).await;
    // Signed in once the queues show; then to the users.
    find(&browser, "tr[data-queue=email]").await;
    click(&browser, "nav button[data-view=users]").await;
    click(
        &browser,
        &format!("button[data-budget='{}']", practitioner.id),
    )
    .await;
    let limit = text(&browser, "#budget-limit").await;
    assert_eq!(limit, "no limit (default)");
    assert_eq!(text(&browser, "#budget-held").await, "0");

    find(&browser, "#budget-amount")
        .await
        .send_keys("12.5")
        .await
        .unwrap();
    click(&browser, "#budget-set").await;
    tend_tests::eventually("the budget shown", Duration::from_secs(20), || async {
        Ok(text(&browser, "#budget-limit").await == "$12.50 (practice)")
    })
    .await
    .unwrap();
    let own = tend_shared::db::budgets::find(&app.db, &practitioner.id)
        .await
        .unwrap()
        .expect("the practice's budget");
    assert_eq!(own.monthly_micro_usd, Some(12_500_000));
    browser.close().await.unwrap();
}
