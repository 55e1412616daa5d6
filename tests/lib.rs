//! Test harness: boots the real application on port 0 and drives it over HTTP.
//!
//! Backends come from the environment, so the same suite runs twice in CI:
//! - nothing set: SQLite data and queue in a temporary folder, mail as `.eml` files;
//! - `TEST_DATABASE_URL=postgres://user@host:port` (a fresh database per test),
//!   `TEST_REDIS_URL=redis://host:port` (a fresh queue namespace per test),
//!   `TEST_SMTP_URL=smtp://host:port` with `TEST_SMTP_MAILDIR=/path` (where the SMTP sink
//!   stores what it received, as a Maildir),
//!   `TEST_S3_ENDPOINT=http://host:port` (an S3-compatible server; bucket `TEST_S3_BUCKET`,
//!   default `tend-test`, a fresh key prefix per test).
//!
//! Mail is always read back from what the job really wrote or sent, never from the database.

pub mod fake_openai;
pub mod smtp;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sqlx::Connection;
use tend_api::startup::Components;
use tend_app::{Roles, Running, run};
use tend_shared::{Settings, db::Db, queue::Transport};
use tokio_util::sync::CancellationToken;

/// The password every test user gets unless it says otherwise.
pub const PASSWORD: &str = "correct horse battery staple";

/// A two-line WebVTT transcript: an upload that goes straight to extraction.
pub const VTT: &str = "WEBVTT\n\n00:00:01.000 --> 00:00:04.500\n<v Therapist>How was your week?\n\n00:00:05.000 --> 00:00:09.000\n<v Client>Better. I slept more.\n";

/// A running application and what a test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// A client that keeps no cookies and follows no redirects.
    pub client: reqwest::Client,
    /// The settings the app was started with.
    pub settings: Arc<Settings>,
    /// The app's database (for assertions the API does not expose yet, e.g. the audit log).
    pub db: Db,
    /// The raw settings map, to start more processes on the same backends.
    pub env: HashMap<String, String>,
    /// The app's own transport (in embedded mode, pushes through it wake the app's workers).
    transport: Transport,
    running: Option<Running>,
    data_dir: PathBuf,
}

/// Options for [`spawn_app_with`].
#[derive(Default)]
pub struct AppOptions {
    /// Settings to add or override.
    pub env: Vec<(String, String)>,
    /// Run workers and scheduler in the app process (the embedded default); `false` for an
    /// API-only process, with workers started separately by the test.
    pub api_only: bool,
}

/// The backends the `TEST_*` variables select, for benchmark output.
pub fn backends() -> String {
    let set = |var: &str| std::env::var(var).is_ok();
    format!(
        "{} data, {} queue, {} store",
        if set("TEST_DATABASE_URL") {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        if set("TEST_REDIS_URL") {
            "Redis"
        } else {
            "SQLite"
        },
        if set("TEST_S3_ENDPOINT") {
            "S3"
        } else {
            "local disk"
        },
    )
}

/// Boots the application with its provider pointed at a new fake OpenAI server.
pub async fn spawn_app_with_fake() -> (TestApp, fake_openai::FakeOpenAi) {
    let fake = fake_openai::FakeOpenAi::start().await;
    let env: Vec<(String, String)> = fake.env();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    (spawn_app_with_env(&pairs).await, fake)
}

/// Boots the embedded all-in-one application on the configured backends.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

/// Boots the all-in-one application with a few settings added or overridden.
pub async fn spawn_app_with_env(env: &[(&str, &str)]) -> TestApp {
    spawn_app_with(AppOptions {
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Default::default()
    })
    .await
}

/// Boots the API alone: the test starts workers itself with [`TestApp::spawn_worker`].
pub async fn spawn_api_only() -> TestApp {
    spawn_app_with(AppOptions {
        api_only: true,
        ..Default::default()
    })
    .await
}

/// Boots the application with extra settings.
pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let test_id = uuid::Uuid::new_v4().simple().to_string();
    let data_dir = std::env::temp_dir().join(format!("tend-test-{test_id}"));
    std::fs::create_dir_all(&data_dir).expect("temp dir");
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("DATA_DIR".into(), data_dir.display().to_string());
    env.insert("BIND_ADDR".into(), "127.0.0.1:0".into());
    env.insert("JWT_SECRET".into(), format!("test-signing-key-{test_id}"));
    env.insert("QUEUE_NAMESPACE".into(), format!("test-{test_id}"));
    env.insert("JOB_LEASE_SECS".into(), "3".into());
    env.insert("SHUTDOWN_GRACE_SECS".into(), "10".into());
    // Every test registers its users from 127.0.0.1; the tests of the limit set it back.
    env.insert("REGISTER_RATE_LIMIT_PER_HOUR".into(), "10000".into());
    // Tests poll their sessions and jobs many times a second.
    env.insert("API_RATE_LIMIT_PER_MINUTE".into(), "100000".into());
    if let Ok(base) = std::env::var("TEST_DATABASE_URL") {
        env.insert(
            "DATABASE_URL".into(),
            create_postgres_database(&base, &test_id).await,
        );
    }
    if let Ok(redis) = std::env::var("TEST_REDIS_URL") {
        env.insert("QUEUE_URL".into(), redis);
    }
    if let Ok(smtp) = std::env::var("TEST_SMTP_URL") {
        env.insert("SMTP_URL".into(), smtp);
    }
    if let Ok(endpoint) = std::env::var("TEST_S3_ENDPOINT") {
        let bucket = std::env::var("TEST_S3_BUCKET").unwrap_or_else(|_| "tend-test".into());
        env.insert(
            "STORAGE_URL".into(),
            format!("s3://{bucket}/test-{test_id}"),
        );
        env.insert("S3_ENDPOINT".into(), endpoint);
        env.insert("S3_ACCESS_KEY_ID".into(), "test".into());
        env.insert("S3_SECRET_ACCESS_KEY".into(), "test".into());
    }
    for (k, v) in options.env {
        env.insert(k, v);
    }
    let settings = Arc::new(Settings::from_lookup(|k| env.get(k).cloned()).expect("settings"));
    tend_shared::telemetry::init_for_tests();
    let components = Components::connect(&settings).await.expect("components");
    let db = components.db.clone();
    let transport = components.transport.clone();
    let roles = if options.api_only {
        Roles::ApiOnly
    } else {
        Roles::AllInOne
    };
    let running = run(settings, components, roles).await.expect("app starts");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    TestApp {
        address: format!("http://127.0.0.1:{}", running.port),
        client,
        settings: running.settings.clone(),
        db,
        env,
        transport,
        running: Some(running),
        data_dir,
    }
}

/// A new, empty PostgreSQL database on `TEST_DATABASE_URL`'s server, if one is configured:
/// its URL (restores need a target of their own).
pub async fn empty_postgres_database() -> Option<String> {
    let base = std::env::var("TEST_DATABASE_URL").ok()?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    Some(create_postgres_database(&base, &format!("empty_{id}")).await)
}

/// Opens a pool on `url` as the binaries do (`db::connect_url`), with the migrations applied.
pub async fn open_database(url: &str) -> Db {
    let db = tend_shared::db::connect_url(url, 4)
        .await
        .expect("open the database");
    tend_shared::db::migrate(&db).await.expect("migrate");
    db
}

async fn create_postgres_database(base: &str, test_id: &str) -> String {
    let base = base.trim_end_matches('/');
    let name = format!("tend_test_{test_id}");
    let mut conn = sqlx::PgConnection::connect(&format!("{base}/postgres"))
        .await
        .expect("connect to TEST_DATABASE_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    format!("{base}/{name}")
}

/// A parsed email.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    /// The first link in the text body.
    pub fn link(&self) -> url::Url {
        let link = self
            .text
            .split_whitespace()
            .find(|w| w.starts_with("http"))
            .expect("a link");
        url::Url::parse(link).expect("a URL")
    }

    /// The `token` query parameter of the first link in the text body.
    pub fn link_token(&self) -> String {
        let start = self.text.find("token=").expect("a link with a token") + "token=".len();
        self.text[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }
}

/// A user registered (and, if asked, verified and signed in) by a test.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl TestApp {
    /// Cancels and waits for a graceful shutdown.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown.cancel();
            running.wait().await;
        }
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await.expect("request")
    }

    /// `POST` a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, None, Some(body))
            .await
    }

    /// `POST` a JSON body with a bearer token.
    pub async fn post_auth(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    /// `PATCH` a JSON body with a bearer token.
    pub async fn patch_auth(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.send(reqwest::Method::PATCH, path, Some(token), Some(body))
            .await
    }

    /// `DELETE` with a bearer token.
    pub async fn delete_auth(&self, path: &str, token: &str) -> reqwest::Response {
        self.send(reqwest::Method::DELETE, path, Some(token), None)
            .await
    }

    /// Deletes the signed-in account (which needs its password).
    pub async fn delete_me(&self, user: &TestUser) -> reqwest::Response {
        self.send(
            reqwest::Method::DELETE,
            "/api/v1/users/me",
            Some(&user.access_token),
            Some(&json!({"password": user.password})),
        )
        .await
    }

    /// Invites `patient`'s address to the practitioner's record `patient_id` and accepts the
    /// mailed invitation from the patient's account: the consent that links the two.
    pub async fn invite_and_accept(
        &self,
        practitioner_token: &str,
        patient_id: &str,
        patient: &TestUser,
    ) {
        let resp = self
            .patch_auth(
                &format!("/api/v1/patients/{patient_id}"),
                practitioner_token,
                &json!({"account_email": patient.email}),
            )
            .await;
        assert_eq!(resp.status(), 200, "invite: {}", resp.text().await.unwrap());
        let mail = self.wait_for_mail(&patient.email, "invitation").await;
        let resp = self
            .send(
                reqwest::Method::POST,
                "/api/v1/invitations/accept",
                Some(&patient.access_token),
                Some(&json!({"token": mail.link_token()})),
            )
            .await;
        assert_eq!(resp.status(), 200, "accept: {}", resp.text().await.unwrap());
    }

    /// `GET` with an optional bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    /// `POST /api/v1/auth/register`.
    pub async fn register(&self, email: &str, password: &str, role: &str) -> reqwest::Response {
        self.post(
            "/api/v1/auth/register",
            &json!({"email": email, "password": password, "role": role}),
        )
        .await
    }

    /// `POST /api/v1/auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post(
            "/api/v1/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// `POST /api/v1/auth/refresh`.
    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.post(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": refresh_token}),
        )
        .await
    }

    /// Registers a practitioner with a unique address, verifies it through the mailed link,
    /// and signs in.
    pub async fn signed_in_user(&self) -> TestUser {
        self.signed_in_as("practitioner").await
    }

    /// As [`TestApp::signed_in_user`], with another role (`patient`).
    pub async fn signed_in_as(&self, role: &str) -> TestUser {
        let email = unique_email();
        let resp = self.register(&email, PASSWORD, role).await;
        assert_eq!(
            resp.status(),
            201,
            "register: {}",
            resp.text().await.unwrap()
        );
        let mail = self.wait_for_mail(&email, "Confirm").await;
        let resp = self
            .post(
                "/api/v1/auth/verify-email",
                &json!({"token": mail.link_token()}),
            )
            .await;
        assert_eq!(resp.status(), 200);
        let resp = self.login(&email, PASSWORD).await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        TestUser {
            id: body["user"]["id"].as_str().unwrap().to_owned(),
            email,
            password: PASSWORD.to_owned(),
            access_token: body["access_token"].as_str().unwrap().to_owned(),
            refresh_token: body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// A second API process (no workers) of the same installation: the same database,
    /// queue namespace, object store and secrets, on a port of its own. For what two replicas
    /// must share (signing keys, limits).
    pub async fn spawn_twin_api(&self) -> TestApp {
        self.spawn_twin_api_with(&[]).await
    }

    /// [`TestApp::spawn_twin_api`] with some settings changed (an operator replacing a
    /// secret, say).
    pub async fn spawn_twin_api_with(&self, changed: &[(&str, &str)]) -> TestApp {
        let shared = [
            "DATA_DIR",
            "DATABASE_URL",
            "QUEUE_NAMESPACE",
            "STORAGE_URL",
            "JWT_SECRET",
            "JWT_SECRET_PREVIOUS",
            "METRICS_TOKEN",
            "METRICS_TOKEN_PREVIOUS",
        ];
        let mut env: HashMap<String, String> = shared
            .iter()
            .filter_map(|k| Some(((*k).to_owned(), self.env.get(*k)?.clone())))
            .collect();
        env.extend(
            changed
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        spawn_app_with(AppOptions {
            env: env.into_iter().collect(),
            api_only: true,
        })
        .await
    }

    /// A new admin account (made as `tend-api create-admin` makes one), signed in: its access
    /// token.
    pub async fn admin_token(&self) -> String {
        let email = unique_email();
        tend_api::commands::create_admin(&self.db, &email, PASSWORD)
            .await
            .expect("create an admin");
        let login: Value = self.login(&email, PASSWORD).await.json().await.unwrap();
        login["access_token"].as_str().unwrap().to_owned()
    }

    /// Waits until the erasure job has removed account `user_id` (after `DELETE /users/me`).
    pub async fn wait_until_erased(&self, user_id: &str) {
        eventually("the erasure job", Duration::from_secs(30), || async {
            let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_one(&self.db)
                .await?;
            Ok(left == 0)
        })
        .await
        .unwrap();
    }

    /// `POST` without a body (actions such as `/sessions/{id}/retry`).
    pub async fn post_empty(&self, path: &str, token: &str) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, Some(token), None)
            .await
    }

    /// `GET path` must answer a problem with `status`; returns the problem.
    pub async fn get_problem(&self, path: &str, token: &str, status: u16) -> Value {
        problem(self.get(path, Some(token)).await, status).await
    }

    /// Creates a patient for `token`'s practitioner and returns its id.
    pub async fn create_patient(&self, token: &str, name: &str) -> String {
        let resp = self
            .send(
                reqwest::Method::POST,
                "/api/v1/patients",
                Some(token),
                Some(&json!({"display_name": name})),
            )
            .await;
        assert_eq!(resp.status(), 201, "create patient");
        let body: Value = resp.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    /// `POST /sessions` with a patient id and a file (and any extra text fields).
    pub async fn upload_session(
        &self,
        token: &str,
        patient_id: &str,
        file: Vec<u8>,
        file_name: &str,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form = reqwest::multipart::Form::new().text("patient_id", patient_id.to_owned());
        for (k, v) in extra {
            form = form.text((*k).to_owned(), (*v).to_owned());
        }
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(file).file_name(file_name.to_owned()),
        );
        self.client
            .post(format!("{}/api/v1/sessions", self.address))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload")
    }

    /// Uploads [`VTT`] for `patient_id` (its notes are extracted at once) and returns the
    /// accepted session (`id`, `job_id`, …); anything but a 202 fails the test.
    pub async fn upload_transcript(&self, token: &str, patient_id: &str) -> Value {
        let resp = self
            .upload_session(token, patient_id, VTT.as_bytes().to_vec(), "t.vtt", &[])
            .await;
        assert_eq!(resp.status(), 202, "upload");
        resp.json().await.expect("the accepted session")
    }

    /// Polls `GET /sessions/{id}` until its status is one of `until`; returns the session and
    /// every status seen on the way, in order.
    pub async fn wait_for_session(
        &self,
        id: &str,
        token: &str,
        until: &[&str],
        timeout: Duration,
    ) -> (Value, Vec<String>) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen: Vec<String> = Vec::new();
        loop {
            let resp = self
                .get(&format!("/api/v1/sessions/{id}"), Some(token))
                .await;
            assert_eq!(resp.status(), 200, "session lookup");
            let session: Value = resp.json().await.unwrap();
            let status = session["status"].as_str().unwrap_or_default().to_owned();
            if seen.last() != Some(&status) {
                seen.push(status.clone());
            }
            if until.contains(&status.as_str()) {
                return (session, seen);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "session {id} stuck: statuses {seen:?}, last {session}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The app's object store (to check what is stored).
    pub async fn store(&self) -> tend_shared::storage::ObjectStore {
        tend_shared::storage::ObjectStore::connect(&self.settings)
            .await
            .expect("store")
    }

    /// Polls `GET path` until the record's `status` is one of `done` and returns it; any
    /// status outside `pending` and `done` (a failure) fails the test, as does a minute
    /// without getting there.
    pub async fn wait_for_status(
        &self,
        path: &str,
        token: &str,
        pending: &[&str],
        done: &[&str],
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let record: Value = self.get(path, Some(token)).await.json().await.unwrap();
            let status = record["status"].as_str().unwrap_or_default();
            if done.contains(&status) {
                return record;
            }
            assert!(pending.contains(&status), "{path} is {status}: {record}");
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} stuck: {record}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `GET /jobs/{id}` until the job is done or dead (or `timeout` passes).
    pub async fn wait_for_job(&self, id: &str, token: &str, until: &[&str]) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let resp = self.get(&format!("/api/v1/jobs/{id}"), Some(token)).await;
            assert_eq!(resp.status(), 200, "job lookup");
            let job: Value = resp.json().await.unwrap();
            if until.contains(&job["state"].as_str().unwrap_or_default()) {
                return job;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("job {id} never reached {until:?}: {job}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a mail to `to` whose subject contains `subject`, as written or delivered.
    pub async fn wait_for_mail(&self, to: &str, subject: &str) -> Mail {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(mail) = self
                .mails_to(to)
                .into_iter()
                .rev()
                .find(|m| m.subject.contains(subject))
            {
                return mail;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("no mail to {to} with subject containing {subject:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every mail to `to` so far, oldest first.
    pub fn mails_to(&self, to: &str) -> Vec<Mail> {
        let dirs: Vec<PathBuf> = match std::env::var("TEST_SMTP_MAILDIR") {
            Ok(dir) if self.env.contains_key("SMTP_URL") => {
                vec![Path::new(&dir).join("new"), Path::new(&dir).join("cur")]
            }
            _ => vec![self.settings.outbox_dir()],
        };
        let mut found = Vec::new();
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(raw) = std::fs::read(entry.path()) else {
                    continue;
                };
                let modified = entry.metadata().and_then(|m| m.modified()).ok();
                if let Some(mail) = parse_mail(&raw).filter(|m| m.to.eq_ignore_ascii_case(to)) {
                    found.push((modified, mail));
                }
            }
        }
        found.sort_by_key(|(t, _)| *t);
        found.into_iter().map(|(_, m)| m).collect()
    }

    /// A relay on the app's ledger and transport, as the app's request handlers use.
    pub fn relay(&self) -> tend_shared::queue::Relay {
        tend_shared::queue::Relay::new(self.db.clone(), self.transport.clone(), &self.settings)
    }

    /// Begins a transaction that starts jobs the way requests do (handed over on commit).
    pub async fn job_tx(&self) -> tend_shared::jobs::JobTx {
        tend_shared::jobs::JobTx::begin(&self.relay())
            .await
            .unwrap()
    }

    /// Starts a separate worker "process" (its own runtime and threads) on the app's backends.
    pub fn spawn_worker(&self, overrides: &[(&str, &str)]) -> WorkerProcess {
        let mut env = self.env.clone();
        for (k, v) in overrides {
            env.insert((*k).into(), (*v).into());
        }
        WorkerProcess::start(env)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown.cancel();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A worker running on its own runtime, as a separate process would. [`WorkerProcess::kill`]
/// drops it without any cleanup (what SIGKILL does to a process: its lease stops being
/// renewed, its job stays `running`); [`WorkerProcess::terminate`] is SIGTERM.
pub struct WorkerProcess {
    stop: Option<std::sync::mpsc::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The worker's instance name (recorded on the jobs it claims).
    pub instance: String,
}

impl WorkerProcess {
    fn start(env: HashMap<String, String>) -> Self {
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<bool>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<String>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let shutdown = CancellationToken::new();
            let handle = runtime.block_on(async {
                let settings = Settings::from_lookup(|k| env.get(k).cloned()).unwrap();
                let db = settings.open_database().await.unwrap();
                let transport = Transport::connect(&settings).await.unwrap();
                let store = tend_shared::storage::ObjectStore::connect(&settings)
                    .await
                    .unwrap();
                tend_worker::start(&settings, db, transport, store, shutdown.clone())
                    .await
                    .unwrap()
            });
            ready_tx.send(handle.instance.clone()).unwrap();
            let graceful = stop_rx.recv().unwrap_or(false);
            if graceful {
                shutdown.cancel();
                runtime.block_on(handle.wait());
            } else {
                // Abandon every task where it stands, as a killed process would.
                runtime.shutdown_background();
            }
        });
        let instance = ready_rx.recv().expect("worker started");
        Self {
            stop: Some(stop_tx),
            thread: Some(thread),
            instance,
        }
    }

    /// Stops at once, without finishing or releasing anything (SIGKILL).
    pub fn kill(mut self) {
        self.finish(false);
    }

    /// Stops gracefully: running jobs finish first (SIGTERM). Returns once drained.
    pub async fn terminate(mut self) {
        tokio::task::spawn_blocking(move || self.finish(true))
            .await
            .unwrap();
    }

    fn finish(&mut self, graceful: bool) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(graceful);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// A fresh address per test, so tests can share one SMTP sink.
pub fn unique_email() -> String {
    format!("user-{}@example.org", uuid::Uuid::new_v4().simple())
}

fn parse_mail(raw: &[u8]) -> Option<Mail> {
    let message = mail_parser::MessageParser::default().parse(raw)?;
    let to = message
        .to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_owned();
    Some(Mail {
        to,
        subject: message.subject().unwrap_or_default().to_owned(),
        text: message
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        html: message
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
    })
}

/// Reads a JSON body and checks it is a problem document with `status`.
pub async fn problem(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type}"
    );
    let body: Value = resp.json().await.expect("json problem");
    assert_eq!(body["status"], status);
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("/problems/"))
    );
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

/// Waits until `check` holds (polling), or fails with `what`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await.context("while polling")? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The environment variable `name` parsed, or `default` (the benches' knobs).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `VmRSS` / `VmHWM` figure of process `pid` (this process when `None`), in KiB; 0 when it
/// cannot be read. For the benchmarks' memory figures.
pub fn status_kib(pid: Option<u32>, field: &str) -> u64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .trim_start_matches(':')
                .trim()
                .trim_end_matches(" kB")
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// The release `tend-worker` binary, built beforehand (`cargo bench` holds the build
/// directory while a bench runs, so a bench cannot build it).
pub fn release_worker_bin() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let bin = target.join("release/tend-worker");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release -p tend-worker` first",
        bin.display()
    );
    bin
}

/// Starts `bin` (a worker) on exactly `env`, logging warnings only, for memory benches.
pub fn spawn_release_worker(bin: &Path, env: &HashMap<String, String>) -> std::process::Child {
    std::process::Command::new(bin)
        .env_clear()
        .envs(env)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start tend-worker")
}
