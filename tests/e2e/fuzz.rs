//! The spec states every rule the server enforces: schemathesis (pinned in `.ci/services`)
//! generates requests from `/openapi.json` for every operation, as an admin, a practitioner
//! and a patient, and each one the spec calls valid must be accepted (`tests/fuzz/
//! schemathesis.toml` says which refusals are state, not shape). Every answer must also be
//! one the spec documents, in its schema and content type, and none may be a 5xx.

use std::{path::Path, process::Command};

use tend_tests::{TestApp, spawn_app};

/// Runs schemathesis against `app` with `token`; panics with its report on a failure.
async fn fuzz(app: &TestApp, who: &str, token: &str) {
    let program = std::env::var("TEST_SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".to_owned());
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/schemathesis.toml");
    let spec = format!("{}/openapi.json", app.address);
    let auth = format!("Authorization: Bearer {token}");
    let ran = tokio::task::spawn_blocking(move || {
        Command::new(program)
            .arg("--config-file")
            .arg(config)
            .arg("--no-color")
            .args(["run", &spec, "-H", &auth, "--mode", "positive"])
            .args(["--max-examples", "25", "--request-timeout", "30"])
            .args([
                "--checks",
                "not_a_server_error,positive_data_acceptance,status_code_conformance,\
                 content_type_conformance,response_schema_conformance,unsupported_method",
            ])
            .output()
            .expect("schemathesis (run `.ci/services` to install it)")
    })
    .await
    .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(
        ran.status.success(),
        "schemathesis as {who} found requests the spec and the server disagree on:\n{said}"
    );
    assert!(said.contains("passed"), "{said}");
}

#[tokio::test]
#[ignore = "needs schemathesis: eval \"$(.ci/services)\", then cargo test -- --include-ignored"]
async fn every_request_the_spec_calls_valid_is_accepted() {
    let app = spawn_app().await;
    let practitioner = app.signed_in_user().await;
    let patient = app.signed_in_as("patient").await;
    let admin = app.admin_token().await;

    fuzz(&app, "a practitioner", &practitioner.access_token).await;
    fuzz(&app, "a patient", &patient.access_token).await;
    fuzz(&app, "an admin", &admin).await;
}
