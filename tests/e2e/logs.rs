//! Log lines say what they are about (issue 21, item 7): a worker process's JSON lines carry
//! the span of the job that wrote them, with job id, kind, attempt, tenant and the id of the
//! request that started the job.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use tend_tests::{AppOptions, fake_openai::FakeOpenAi, spawn_app_with};

use tend_tests::VTT;

#[tokio::test]
async fn a_workers_log_lines_name_their_job_and_the_request_that_started_it() {
    let fake = FakeOpenAi::start().await;
    let app = spawn_app_with(AppOptions {
        env: fake.env(),
        api_only: true,
    })
    .await;
    let _mail = app.spawn_worker(&[("WORKER_QUEUES", "email")]);
    let user = app.signed_in_user().await;
    let patient = app.create_patient(&user.access_token, "Logged").await;

    // A real worker process for extraction, logging JSON lines at info.
    let mut worker = Command::new(env!("CARGO_BIN_EXE_tend-test-worker"))
        .env_clear()
        .envs(&app.env)
        .env("WORKER_QUEUES", "extraction")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the worker");
    let stdout = worker.stdout.take().unwrap();
    // Its lines, as they come.
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });

    let request_id = format!("log-test-{}", uuid::Uuid::new_v4().simple());
    let form = reqwest::multipart::Form::new()
        .text("patient_id", patient.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(VTT.as_bytes().to_vec()).file_name("t.vtt"),
        );
    let resp = app
        .client
        .post(format!("{}/api/v1/sessions", app.address))
        .bearer_auth(&user.access_token)
        .header("x-request-id", &request_id)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let session = body["id"].as_str().unwrap().to_owned();
    let job_id = body["job_id"].as_str().unwrap().to_owned();
    app.wait_for_session(
        &session,
        &user.access_token,
        &["processed"],
        Duration::from_secs(60),
    )
    .await;
    // Read until the job's last line ("job done") has come, then stop the worker.
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !lines
        .iter()
        .any(|line: &String| line.contains(&job_id) && line.contains("job done"))
    {
        match tokio::time::timeout_at(deadline, received.recv()).await {
            Ok(Some(line)) => lines.push(line),
            _ => break,
        }
    }
    worker.kill().unwrap();
    worker.wait().unwrap();

    let about_the_job: Vec<Value> = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["spans"]
                .as_array()
                .is_some_and(|spans| spans.iter().any(|s| s["job_id"] == job_id.as_str()))
        })
        .collect();
    let messages: Vec<&str> = about_the_job
        .iter()
        .filter_map(|line| line["fields"]["message"].as_str())
        .collect();
    assert!(
        messages.contains(&"job started") && messages.contains(&"job done"),
        "the job's lines: {messages:?} (of {} lines)",
        lines.len()
    );
    for line in &about_the_job {
        let span = line["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "job")
            .expect("the job span");
        assert_eq!(span["kind"], "extract_notes", "{line}");
        assert_eq!(span["attempt"], 1, "{line}");
        assert_eq!(span["request_id"], request_id.as_str(), "{line}");
        assert_eq!(span["tenant"], user.id.as_str(), "{line}");
    }
}
