//! Prometheus metrics: the API's `/metrics` behind its token, a worker's listener, and series
//! that move when requests are served and jobs run. Parsed with a Prometheus text parser.

use std::time::Duration;

use tend_tests::{PASSWORD, TestApp, eventually, problem, spawn_app_with_env, unique_email};

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text format")
}

/// The sum of a series' samples whose labels include `labels`.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

async fn scrape(app: &TestApp, token: &str) -> prometheus_parse::Scrape {
    let resp = app.get("/metrics", Some(token)).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    parse(&resp.text().await.unwrap())
}

#[tokio::test]
async fn metrics_need_their_token_and_move_when_requests_and_jobs_run() {
    let app = spawn_app_with_env(&[("METRICS_TOKEN", "scrape-me-please")]).await;
    problem(app.get("/metrics", None).await, 401).await;
    problem(app.get("/metrics", Some("wrong")).await, 401).await;
    let user = app.signed_in_user().await;
    problem(app.get("/metrics", Some(&user.access_token)).await, 401).await;

    let before = scrape(&app, "scrape-me-please").await;
    let email = unique_email();
    assert_eq!(
        app.register(&email, PASSWORD, "patient").await.status(),
        201
    );
    app.wait_for_mail(&email, "Confirm").await;
    let done = |s: &prometheus_parse::Scrape| {
        value(
            s,
            "tend_jobs_finished_total",
            &[("kind", "send_email"), ("outcome", "done")],
        )
    };
    let registered = |s: &prometheus_parse::Scrape| {
        value(
            s,
            "tend_http_requests_total",
            &[("operation", "register"), ("status", "201")],
        )
    };
    let mut after = scrape(&app, "scrape-me-please").await;
    for _ in 0..100 {
        if done(&after) > done(&before) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = scrape(&app, "scrape-me-please").await;
    }
    assert!(done(&after) > done(&before), "a job's outcome is counted");
    assert!(
        registered(&after) > registered(&before),
        "requests by operation"
    );
    assert!(
        value(
            &after,
            "tend_relay_handed_over_total",
            &[("queue", "email")]
        ) >= 1.0,
        "hand-overs"
    );
    assert!(
        value(
            &after,
            "tend_http_request_duration_seconds_count",
            &[("operation", "register")]
        ) >= 1.0,
        "latency histogram"
    );
    assert!(
        value(
            &after,
            "tend_job_run_duration_seconds_count",
            &[("kind", "send_email")]
        ) >= 1.0
    );
    // The ledger's gauges: every queue, every state.
    for queue in [
        "email",
        "maintenance",
        "transcription",
        "extraction",
        "documents",
    ] {
        assert!(
            after.samples.iter().any(|s| s.metric == "tend_jobs"
                && s.labels.get("queue") == Some(queue)
                && s.labels.get("state") == Some("dead")),
            "tend_jobs{{queue={queue}}}"
        );
    }
    assert!(value(&after, "tend_workers_alive", &[]) >= 1.0);

    // An admin's token reads them too.
    let admin_email = unique_email();
    tend_api::commands::create_admin(&app.db, &admin_email, PASSWORD)
        .await
        .unwrap();
    let login: serde_json::Value = app
        .login(&admin_email, PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    scrape(&app, login["access_token"].as_str().unwrap()).await;
}

#[tokio::test]
async fn a_worker_serves_its_metrics_on_metrics_addr() {
    let app = tend_tests::spawn_api_only().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    // A process of its own: the test process's recorder is installed already.
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_tend-test-worker"))
        .env_clear()
        .envs(&app.env)
        .env("METRICS_ADDR", &addr)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the worker process");
    let email = unique_email();
    assert_eq!(
        app.register(&email, PASSWORD, "patient").await.status(),
        201
    );
    app.wait_for_mail(&email, "Confirm").await;
    let served = eventually("the worker's metrics", Duration::from_secs(30), || async {
        // Not listening yet is not a failure, only not yet.
        let Ok(resp) = app
            .client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
        else {
            return Ok(false);
        };
        let scrape = parse(&resp.text().await?);
        Ok(value(
            &scrape,
            "tend_jobs_finished_total",
            &[("kind", "send_email"), ("outcome", "done")],
        ) >= 1.0)
    })
    .await;
    let _ = worker.kill();
    let _ = worker.wait();
    served.unwrap();
}

/// The series names in `text`: words that start with `tend_`, without a histogram's suffixes.
fn series_in(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("tend_") && w.len() > 5)
        .map(|w| {
            ["_bucket", "_count", "_sum"]
                .iter()
                .fold(w, |w, suffix| w.strip_suffix(suffix).unwrap_or(w))
                .to_owned()
        })
        .collect()
}

#[test]
fn the_grafana_dashboard_and_alert_rules_use_only_series_tend_exports() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let exported = series_in(&std::fs::read_to_string(root.join("shared/src/metrics.rs")).unwrap());
    let dashboard =
        std::fs::read_to_string(root.join("deploy/grafana/tend-dashboard.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&dashboard).expect("the dashboard is JSON");
    let alerts = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yaml")).unwrap();
    for (file, text) in [("dashboard", &dashboard), ("alerts", &alerts)] {
        let used = series_in(text);
        assert!(!used.is_empty());
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "the {file} uses series Tend does not export: {unknown:?}"
        );
    }
    for alert in [
        "TendDeadJobsRising",
        "TendOldestDueJobTooOld",
        "TendQueuePaused",
        "TendNoLiveWorker",
    ] {
        assert!(alerts.contains(alert), "{alert}");
    }
}
