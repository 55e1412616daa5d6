//! Typed settings, read once at start from the environment.
//!
//! Every variable has a documented default (see the README table) or a clear start-up error.
//! Values are read through a lookup function so tests build settings without touching the
//! process environment.

mod limits;
mod read;
mod secret;

pub use limits::{ModelLimit, ModelLimits};
pub use read::DerivedUrls;
use read::local_url;
use secret::load_or_generate_secret;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::jobs::queues::Queue;

/// Whether unsafe conveniences (generated secrets, SQLite queue, `.eml` mail) are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Laptop and tests: everything has a working default.
    Development,
    /// Refuses to start with a missing or weak signing secret.
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, coloured when on a terminal.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Per-account budgets (issue 20): each paid provider call or mail to a third party a request
/// can start is counted against its account, so one account (a stolen one, a buggy client)
/// cannot run up the provider's bill or make Tend a spam relay. Past a budget: 429 with the
/// seconds until it refills; admins see and reset an account's use.
#[derive(Debug, Clone)]
pub struct AccountLimits {
    /// `UPLOADS_PER_HOUR`: session uploads (each a transcription, then an extraction) (60).
    pub uploads_per_hour: u32,
    /// `MISSION_DRAFTS_PER_HOUR`: mission drafts (each a chat call) (30).
    pub drafts_per_hour: u32,
    /// `REEXTRACTIONS_PER_HOUR`: notes extracted again on request (each a chat call) (30).
    pub reextractions_per_hour: u32,
    /// `INVITATIONS_PER_HOUR`: invitations and re-invitations sent (each a mail) (30).
    pub invitations_per_hour: u32,
    /// `INVITATION_MAILS_PER_RECIPIENT_PER_DAY`: invitation mails one address receives a day,
    /// from every account together (3).
    pub invitation_mails_per_recipient_per_day: u32,
}

/// How much password hashing one API process does at once. Argon2 holds 19 MiB per hash, so
/// these two numbers set the memory ceiling of an unauthenticated burst.
#[derive(Debug, Clone, Copy)]
pub struct HashingLimits {
    /// Hashes computed at once (one thread each).
    pub threads: usize,
    /// Hashes allowed to wait for a thread; beyond them the request answers 503 with
    /// `Retry-After`.
    pub queue: usize,
}

/// What the HTTP server allows a connection, so slow or idle clients cannot hold descriptors.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// `HTTP_HEADER_TIMEOUT_SECS` (10): time from a request's first byte (or the connection's
    /// opening) to the end of its headers.
    pub header_timeout: Duration,
    /// `HTTP_IDLE_TIMEOUT_SECS` (60): longest pause of a request body or response in flight;
    /// a slow upload that keeps moving is never cut.
    pub idle_timeout: Duration,
    /// `HTTP_KEEP_ALIVE_SECS` (15): how long a kept-alive connection may wait for its next
    /// request.
    pub keep_alive: Duration,
    /// `HTTP_MAX_CONNECTIONS` (10,000, lowered to what the descriptor limit allows): open
    /// connections beyond it are answered 503 and closed.
    pub max_connections: usize,
}

/// Where jobs travel between the outbox relay and the workers.
#[derive(Debug, Clone)]
pub enum QueueBackend {
    /// `redis://...`: production, many worker replicas.
    Redis(SecretString),
    /// `sqlite://...`: embedded mode, a file next to the data.
    Sqlite(String),
}

/// Where uploads (session audio, transcripts) are kept.
#[derive(Debug, Clone)]
pub enum StorageBackend {
    /// `file://dir`: local disk, the embedded default (`DATA_DIR/objects`).
    Local(PathBuf),
    /// `s3://bucket[/prefix]`: S3 or any S3-compatible server.
    S3(S3Settings),
}

/// How to reach an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// The bucket, from `STORAGE_URL=s3://bucket`.
    pub bucket: String,
    /// Key prefix, from `s3://bucket/prefix` (empty for none).
    pub prefix: String,
    /// `S3_ENDPOINT`: an S3-compatible server (MinIO, Garage, moto); unset means AWS.
    pub endpoint: Option<String>,
    /// `S3_REGION` (or `AWS_REGION`), default `us-east-1`.
    pub region: String,
    /// `S3_ACCESS_KEY_ID` (or `AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// `S3_SECRET_ACCESS_KEY` (or `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<SecretString>,
    /// `S3_FORCE_PATH_STYLE`: `bucket` in the path rather than the host name; defaults to true
    /// when `S3_ENDPOINT` is set (what most S3-compatible servers need).
    pub force_path_style: bool,
}

/// OpenAI's own API: the provider unless `OPENAI_BASE_URL` names another.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// The OpenAI-compatible provider behind transcription and extraction, and its prices.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// `OPENAI_BASE_URL`: OpenAI's API, or any server that copies it.
    pub base_url: String,
    /// `OPENAI_API_KEY`: unset means paid jobs fail at once with a clear error, unless
    /// `OPENAI_BASE_URL` names another server (a local one often needs no key).
    pub api_key: Option<SecretString>,
    /// `OPENAI_TIMEOUT_SECS`: one provider request longer than this fails (transiently).
    pub request_timeout: Duration,
    /// `TRANSCRIPTION_MODEL` (`whisper-1`: the OpenAI model that returns timed segments).
    pub transcription_model: String,
    /// `TRANSCRIPTION_MAX_UPLOAD_BYTES`: the provider's upload limit (25 MB at OpenAI); larger
    /// audio is decoded, reduced to 16 kHz mono and sent in chunks.
    pub transcription_max_upload_bytes: u64,
    /// `TRANSCRIPTION_CHUNK_SECS`: longest chunk sent at once (OpenAI's models cap duration).
    pub transcription_chunk_secs: u32,
    /// `EXTRACTION_MODEL` (`gpt-4o-mini`).
    pub extraction_model: String,
    /// `EXTRACTION_CONTEXT_TOKENS`: transcript tokens sent in one request; longer transcripts
    /// are extracted in parts and combined.
    pub extraction_context_tokens: u32,
    /// `PRICE_AUDIO_PER_MINUTE_USD` (0.006): transcription price per audio minute.
    pub price_audio_per_minute: f64,
    /// `PRICE_PROMPT_PER_MTOK_USD` (0.15): price per million prompt tokens.
    pub price_prompt_per_mtok: f64,
    /// `PRICE_COMPLETION_PER_MTOK_USD` (0.60): price per million completion tokens.
    pub price_completion_per_mtok: f64,
    /// `PROVIDER_LIMITS`: requests and tokens per minute per model, shared by every worker.
    pub limits: ModelLimits,
    /// `PRACTICE_MONTHLY_BUDGET_USD` (unset: no limit): what a practice may spend on paid
    /// provider calls per calendar month (UTC) unless an admin set its own budget. A paid job
    /// that would start past it is held (`budget_exceeded`).
    pub default_monthly_budget_micro_usd: Option<i64>,
}

/// All of Tend's settings. Built once, then passed down; nothing reads the environment later.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `TEND_ENV`: development (default) or production.
    pub environment: Environment,
    /// `BIND_ADDR`: where the HTTP server listens.
    pub bind_addr: SocketAddr,
    /// `PUBLIC_URL`: base of the links in emails, of the spec's server and of the docs URL
    /// printed at start; unset, the address the API listens on ([`Settings::listening_on`]).
    pub public_url: Url,
    /// `APP_URL`: the client app that opens links from emails (`/verify-email?token=..`,
    /// `/reset-password?token=..`, `/accept-invitation?token=..`, `/mission-draft?id=..`,
    /// `/data-export?id=..`); defaults to `PUBLIC_URL`, where the API serves those pages.
    pub app_url: Url,
    /// Which of the two URLs above were derived rather than set.
    pub derived_urls: DerivedUrls,
    /// `DATA_DIR`: SQLite files, the generated secret, `.eml` outbox.
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: `sqlite://...` or `postgres://...`.
    pub database_url: SecretString,
    /// `DATABASE_MAX_CONNECTIONS`: pool size.
    pub database_max_connections: u32,
    /// `QUEUE_URL`: Redis, or the embedded SQLite queue file.
    pub queue: QueueBackend,
    /// `QUEUE_NAMESPACE`: prefix of queue names and Redis keys, so deployments (and tests) can
    /// share one Redis without seeing each other's jobs.
    pub queue_namespace: String,
    /// `SMTP_URL`: unset means `.eml` files in `DATA_DIR/outbox`.
    pub smtp_url: Option<SecretString>,
    /// `EMAIL_FROM`: the sender of every mail.
    pub email_from: String,
    /// `JWT_SECRET`: HMAC key for access tokens while no rotated key is stored (a fresh
    /// installation); afterwards it only verifies the tokens it signed.
    pub jwt_secret: SecretString,
    /// `JWT_SECRET_PREVIOUS`: comma-separated secrets that verify (never sign) tokens, so
    /// `JWT_SECRET` itself can be replaced with an overlap: move the old value here for one
    /// access-token lifetime, then remove it.
    pub jwt_secret_previous: Vec<SecretString>,
    /// `JWT_ISSUER` and `JWT_AUDIENCE`: checked on every token.
    pub jwt_issuer: String,
    /// See `jwt_issuer`.
    pub jwt_audience: String,
    /// `ACCESS_TOKEN_TTL_SECS` (900).
    pub access_token_ttl: Duration,
    /// `REFRESH_TOKEN_TTL_SECS` (30 days).
    pub refresh_token_ttl: Duration,
    /// `LOG_FORMAT`: pretty or json.
    pub log_format: LogFormat,
    /// `CORS_ORIGINS`: comma-separated origins allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// `MAX_BODY_BYTES`: largest JSON request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// `LOGIN_RATE_LIMIT_PER_MINUTE`: login attempts per IP and per account.
    pub login_rate_limit_per_minute: u32,
    /// `REGISTER_RATE_LIMIT_PER_HOUR`: registrations per client IP and hour (3).
    pub register_rate_limit_per_hour: u32,
    /// `API_RATE_LIMIT_PER_MINUTE`: requests per signed-in user and minute (100); uploads and
    /// health probes are not counted.
    pub api_rate_limit_per_minute: u32,
    /// Per-account budgets of the work that costs money or mails third parties.
    pub account_limits: AccountLimits,
    /// `PASSWORD_HASH_THREADS` and `PASSWORD_HASH_QUEUE`: how much password hashing may run
    /// and wait at once (each hash holds 19 MiB).
    pub password_hashing: HashingLimits,
    /// The HTTP server's defences against slow, idle and too many connections.
    pub http: HttpLimits,
    /// `METRICS_TOKEN`: the bearer token that reads the API's `/metrics` (admins' access
    /// tokens do too).
    pub metrics_token: Option<SecretString>,
    /// `METRICS_TOKEN_PREVIOUS`: comma-separated tokens also accepted, so `METRICS_TOKEN` can
    /// be rotated with an overlap while scrapers move to the new one.
    pub metrics_token_previous: Vec<SecretString>,
    /// `METRICS_ADDR`: serve `/metrics` on this address instead (workers: their only
    /// listener), without a token; the API's own `/metrics` then answers 404.
    pub metrics_addr: Option<SocketAddr>,
    /// `TRUST_PROXY_HEADERS`: take the client IP from `X-Forwarded-For` (behind a proxy only).
    pub trust_proxy_headers: bool,
    /// `WORKER_CONCURRENCY`: jobs one worker process runs at once, per queue, unless
    /// `WORKER_CONCURRENCY_<QUEUE>` says otherwise for that queue ([`Settings::concurrency`]).
    pub worker_concurrency: usize,
    /// `WORKER_CONCURRENCY_<QUEUE>`: the queues whose concurrency differs from the default.
    pub queue_concurrency: Vec<(Queue, usize)>,
    /// `WORKER_QUEUES`: the queues this process works on (comma-separated names; all by
    /// default), so operators can run dedicated replicas per queue and scale each on its depth.
    pub worker_queues: Vec<Queue>,
    /// `JOB_LEASE_SECS`: a running job whose worker stops renewing its lease for this long is
    /// handed to another worker (what makes a SIGKILLed worker's job survive).
    pub job_lease: Duration,
    /// `QUEUE_MAX_IN_FLIGHT`: most jobs handed to the transport and not yet started, per queue.
    /// The rest wait in the database (apalis-redis wedges with 8,000 due jobs).
    pub queue_max_in_flight: u32,
    /// `JOB_PRIORITY_AGING_SECS`: the longest a waiting job is passed over for
    /// higher-priority work; past it, it is raised to interactive priority.
    pub job_priority_aging: Duration,
    /// `SHUTDOWN_GRACE_SECS`: how long SIGTERM waits for running jobs.
    pub shutdown_grace: Duration,
    /// The live session channel's thresholds and timers.
    pub live: LiveSettings,
    /// `STORAGE_URL`: local disk or S3.
    pub storage: StorageBackend,
    /// `MAX_UPLOAD_BYTES`: largest session upload (413 beyond), default 500 MiB.
    pub max_upload_bytes: u64,
    /// The transcription and extraction provider.
    pub provider: ProviderSettings,
    /// `SCHEDULE_<NAME>`: the periodic jobs and when they run (see [`crate::schedules`]).
    pub schedules: Vec<crate::schedules::Schedule>,
    /// `BACKUP_KEEP_DAILY`: days whose newest backup is kept (7).
    pub backup_keep_daily: usize,
    /// `BACKUP_KEEP_WEEKLY`: ISO weeks whose newest backup is kept (4).
    pub backup_keep_weekly: usize,
    /// `FAILED_RECORDING_RETENTION_DAYS`: the audio of a failed recording is deleted this many
    /// days after it failed (7); the session row stays, saying it failed.
    pub failed_recording_retention_days: u32,
    /// `ORPHAN_OBJECT_MIN_AGE_SECS`: an object no row owns is deleted once it is this old
    /// (86,400: a younger one may still be being written).
    pub orphan_object_min_age: Duration,
}

impl Settings {
    /// Where backups and restores stage their table files (`DATA_DIR/staging`).
    pub fn staging_dir(&self) -> PathBuf {
        self.data_dir.join("staging")
    }

    /// These settings for a process whose API listens on `port` (the one bound, which differs
    /// from `BIND_ADDR`'s when that asks for any free port): the URLs that were not set follow
    /// it, so mail links, the spec's server and the docs URL name where the API answers.
    pub fn listening_on(&self, port: u16) -> Self {
        let mut settings = self.clone();
        let local = local_url(SocketAddr::new(self.bind_addr.ip(), port));
        if self.derived_urls.public_url {
            settings.public_url = local.clone();
        }
        if self.derived_urls.app_url {
            settings.app_url = settings.public_url.clone();
        }
        settings
    }

    /// Jobs of `queue` one worker process runs at once.
    pub fn concurrency(&self, queue: Queue) -> usize {
        self.queue_concurrency
            .iter()
            .find(|(q, _)| *q == queue)
            .map_or(self.worker_concurrency, |(_, n)| *n)
    }

    /// True when mail goes to `.eml` files instead of an SMTP server.
    pub fn mail_to_files(&self) -> bool {
        self.smtp_url.is_none()
    }

    /// Where `.eml` files are written when no SMTP server is configured.
    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    /// Opens the database pool the settings name (`DATABASE_URL`, or the embedded SQLite file).
    pub async fn open_database(&self) -> anyhow::Result<crate::db::Db> {
        crate::db::connect_url(self.database_url(), self.database_max_connections).await
    }

    /// The database URL, for the one place that connects.
    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}

impl ProviderSettings {
    /// The key calls are made with: `OPENAI_API_KEY`, or none at all for a server other than
    /// OpenAI's (`OPENAI_BASE_URL`), since local OpenAI-compatible servers mostly need none.
    /// `None`: no call can be made (OpenAI's API without a key).
    pub fn call_key(&self) -> Option<&str> {
        match &self.api_key {
            Some(key) => Some(key.expose_secret()),
            None if self.base_url != OPENAI_BASE_URL => Some(""),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests;

/// The live session channel (`GET /api/v1/sessions/{id}/live`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveSettings {
    /// `SPEAKING_RATE_THRESHOLD` (3.0): a feature frame's speaking rate above it asks for a
    /// `SLOW_DOWN` nudge.
    pub speaking_rate_threshold: f64,
    /// `OVERLAP_RATIO_THRESHOLD` (0.3): an overlap ratio above it asks for `LET_OTHER_SPEAK`.
    pub overlap_ratio_threshold: f64,
    /// `NUDGE_RATE_LIMIT_SECONDS` (10): at most one nudge per session this often, across
    /// connections and replicas.
    pub nudge_every: Duration,
    /// `WEBSOCKET_HEARTBEAT_INTERVAL` (30 s): how often the server pings.
    pub heartbeat: Duration,
    /// `WEBSOCKET_TIMEOUT` (60 s): a connection silent this long is closed.
    pub timeout: Duration,
}
