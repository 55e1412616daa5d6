//! A client generated from `/openapi.json` works: `openapi-python-client` (pinned in
//! `.ci/services`) generates it without a warning, and a new user's journey runs through it
//! against the running server (`tests/clients/journey.py`).

use std::process::Command;

use tend_tests::spawn_app;

#[tokio::test]
#[ignore = "needs openapi-python-client: eval \"$(.ci/services)\", then cargo test -- --include-ignored"]
async fn a_python_client_generated_from_the_spec_runs_a_new_users_journey() {
    let app = spawn_app().await;
    let spec = app.get("/openapi.json", None).await.text().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("openapi.json");
    std::fs::write(&spec_path, spec).unwrap();
    let out = dir.path().join("client");
    let generated = Command::new("openapi-python-client")
        .args(["generate", "--path"])
        .arg(&spec_path)
        .arg("--output-path")
        .arg(&out)
        .arg("--config")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/clients/generator.yaml"
        ))
        .output()
        .expect("openapi-python-client (run `.ci/services` to install it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&generated.stdout),
        String::from_utf8_lossy(&generated.stderr)
    );
    assert!(generated.status.success(), "{said}");
    for warning in ["Unable to", "Warning", "WARNING", "Could not"] {
        assert!(!said.contains(warning), "the generator warned: {said}");
    }

    let mail_dirs: Vec<String> = match std::env::var("TEST_SMTP_MAILDIR") {
        Ok(dir) if app.env.contains_key("SMTP_URL") => vec![dir],
        _ => vec![app.settings.outbox_dir().display().to_string()],
    };
    let journey = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/journey.py");
    let ran = tokio::task::spawn_blocking({
        let address = app.address.clone();
        move || {
            Command::new("python3")
                .arg(journey)
                .arg(address)
                .args(mail_dirs)
                .env("PYTHONPATH", &out)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(ran.status.success(), "the journey failed: {said}");
    assert!(said.contains("journey done"), "{said}");
}
