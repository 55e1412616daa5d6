//! Typed settings, read once at start from the environment.
//!
//! Every variable has a documented default (see the README table) or a clear start-up error.
//! Values are read through a lookup function so tests build settings without touching the
//! process environment.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::jobs::Queue;

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
    /// `SHUTDOWN_GRACE_SECS`: how long SIGTERM waits for running jobs.
    pub shutdown_grace: Duration,
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
}

impl Settings {
    /// Reads the process environment (after loading `.env` if present).
    pub fn from_env() -> anyhow::Result<Self> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|key| std::env::var(key).ok().filter(|v| !v.is_empty()))
    }

    /// Builds settings from any key lookup; tests pass a map.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        // An empty value means unset, as it does for most tools.
        let lookup = |key: &str| lookup(key).filter(|v| !v.is_empty());
        let environment = match lookup("TEND_ENV").as_deref() {
            None | Some("development") => Environment::Development,
            Some("production") => Environment::Production,
            Some(other) => bail!("TEND_ENV must be development or production, not {other:?}"),
        };
        let data_dir = PathBuf::from(lookup("DATA_DIR").unwrap_or_else(|| "./data".into()));
        let bind_addr: SocketAddr = parse(&lookup, "BIND_ADDR", "127.0.0.1:8080")?;
        let public_url_set = lookup("PUBLIC_URL").is_some();
        let public_url: Url = match lookup("PUBLIC_URL") {
            Some(raw) => raw
                .parse()
                .map_err(|e| anyhow::anyhow!("PUBLIC_URL={raw:?} is not valid: {e}"))?,
            None => local_url(bind_addr),
        };
        let app_url_set = lookup("APP_URL").is_some();
        let app_url: Url = match lookup("APP_URL") {
            Some(raw) => raw
                .parse()
                .map_err(|e| anyhow::anyhow!("APP_URL={raw:?} is not valid: {e}"))?,
            None => public_url.clone(),
        };
        let database_url = lookup("DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("tend.db").display()));
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            bail!("DATABASE_URL must start with sqlite:// or postgres://");
        }
        let queue = match lookup("QUEUE_URL") {
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                QueueBackend::Redis(url.into())
            }
            Some(url) if url.starts_with("sqlite:") => QueueBackend::Sqlite(url),
            Some(_) => bail!("QUEUE_URL must start with redis://, rediss:// or sqlite://"),
            None => {
                QueueBackend::Sqlite(format!("sqlite://{}", data_dir.join("queue.db").display()))
            }
        };
        let log_format = match lookup("LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("LOG_FORMAT must be pretty or json, not {other:?}"),
        };
        let jwt_secret = match lookup("JWT_SECRET") {
            Some(secret) => secret,
            None if environment == Environment::Production => {
                bail!("JWT_SECRET is required when TEND_ENV=production (at least 32 bytes)")
            }
            None => load_or_generate_secret(&data_dir)?,
        };
        if environment == Environment::Production {
            if jwt_secret.len() < 32 {
                bail!("JWT_SECRET must be at least 32 bytes when TEND_ENV=production");
            }
            if WEAK_SECRETS.iter().any(|weak| jwt_secret.contains(weak)) {
                bail!("JWT_SECRET looks like a placeholder; generate one (openssl rand -hex 32)");
            }
        }
        let settings = Self {
            environment,
            bind_addr,
            public_url,
            app_url,
            derived_urls: DerivedUrls {
                public_url: !public_url_set,
                app_url: !app_url_set,
            },
            database_max_connections: parse(&lookup, "DATABASE_MAX_CONNECTIONS", "10")?,
            database_url: database_url.into(),
            queue,
            queue_namespace: lookup("QUEUE_NAMESPACE").unwrap_or_else(|| "tend".into()),
            smtp_url: lookup("SMTP_URL").map(SecretString::from),
            email_from: lookup("EMAIL_FROM").unwrap_or_else(|| "Tend <no-reply@localhost>".into()),
            jwt_secret: jwt_secret.into(),
            jwt_secret_previous: secret_list(lookup("JWT_SECRET_PREVIOUS")),
            jwt_issuer: lookup("JWT_ISSUER").unwrap_or_else(|| "tend".into()),
            jwt_audience: lookup("JWT_AUDIENCE").unwrap_or_else(|| "tend-api".into()),
            access_token_ttl: Duration::from_secs(parse(&lookup, "ACCESS_TOKEN_TTL_SECS", "900")?),
            refresh_token_ttl: Duration::from_secs(parse(
                &lookup,
                "REFRESH_TOKEN_TTL_SECS",
                "2592000",
            )?),
            log_format,
            cors_origins: lookup("CORS_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            max_body_bytes: parse(&lookup, "MAX_BODY_BYTES", "1048576")?,
            login_rate_limit_per_minute: parse(&lookup, "LOGIN_RATE_LIMIT_PER_MINUTE", "5")?,
            register_rate_limit_per_hour: parse(&lookup, "REGISTER_RATE_LIMIT_PER_HOUR", "3")?,
            api_rate_limit_per_minute: parse(&lookup, "API_RATE_LIMIT_PER_MINUTE", "100")?,
            account_limits: AccountLimits {
                uploads_per_hour: parse(&lookup, "UPLOADS_PER_HOUR", "60")?,
                drafts_per_hour: parse(&lookup, "MISSION_DRAFTS_PER_HOUR", "30")?,
                reextractions_per_hour: parse(&lookup, "REEXTRACTIONS_PER_HOUR", "30")?,
                invitations_per_hour: parse(&lookup, "INVITATIONS_PER_HOUR", "30")?,
                invitation_mails_per_recipient_per_day: parse(
                    &lookup,
                    "INVITATION_MAILS_PER_RECIPIENT_PER_DAY",
                    "3",
                )?,
            },
            password_hashing: HashingLimits {
                threads: parse(&lookup, "PASSWORD_HASH_THREADS", "2")?,
                queue: parse(&lookup, "PASSWORD_HASH_QUEUE", "64")?,
            },
            http: HttpLimits {
                header_timeout: secs(&lookup, "HTTP_HEADER_TIMEOUT_SECS", "10")?,
                idle_timeout: secs(&lookup, "HTTP_IDLE_TIMEOUT_SECS", "60")?,
                keep_alive: secs(&lookup, "HTTP_KEEP_ALIVE_SECS", "15")?,
                max_connections: parse(&lookup, "HTTP_MAX_CONNECTIONS", "10000")?,
            },
            metrics_token: lookup("METRICS_TOKEN").map(SecretString::from),
            metrics_token_previous: secret_list(lookup("METRICS_TOKEN_PREVIOUS")),
            metrics_addr: lookup("METRICS_ADDR")
                .map(|raw| {
                    raw.parse()
                        .map_err(|e| anyhow::anyhow!("METRICS_ADDR={raw:?} is not valid: {e}"))
                })
                .transpose()?,
            trust_proxy_headers: parse(&lookup, "TRUST_PROXY_HEADERS", "false")?,
            worker_concurrency: parse(&lookup, "WORKER_CONCURRENCY", "4")?,
            queue_concurrency: queue_concurrency(&lookup)?,
            worker_queues: worker_queues(&lookup)?,
            schedules: crate::schedules::configured(&lookup)?,
            backup_keep_daily: parse(&lookup, "BACKUP_KEEP_DAILY", "7")?,
            backup_keep_weekly: parse(&lookup, "BACKUP_KEEP_WEEKLY", "4")?,
            failed_recording_retention_days: parse(
                &lookup,
                "FAILED_RECORDING_RETENTION_DAYS",
                "7",
            )?,
            orphan_object_min_age: Duration::from_secs(parse(
                &lookup,
                "ORPHAN_OBJECT_MIN_AGE_SECS",
                "86400",
            )?),
            job_lease: Duration::from_secs(parse(&lookup, "JOB_LEASE_SECS", "6")?),
            queue_max_in_flight: parse(&lookup, "QUEUE_MAX_IN_FLIGHT", "1000")?,
            shutdown_grace: Duration::from_secs(parse(&lookup, "SHUTDOWN_GRACE_SECS", "30")?),
            storage: storage_backend(&lookup, &data_dir)?,
            max_upload_bytes: parse(&lookup, "MAX_UPLOAD_BYTES", "524288000")?,
            provider: provider_settings(&lookup)?,
            data_dir,
        };
        if settings.environment == Environment::Production && settings.smtp_url.is_none() {
            bail!(
                "SMTP_URL is required when TEND_ENV=production (mail would only be written to files)"
            );
        }
        if settings.job_lease < Duration::from_secs(2) {
            bail!("JOB_LEASE_SECS must be at least 2");
        }
        if settings.password_hashing.threads == 0 {
            bail!("PASSWORD_HASH_THREADS must be at least 1");
        }
        if settings.http.max_connections == 0 {
            bail!("HTTP_MAX_CONNECTIONS must be at least 1");
        }
        if settings.worker_concurrency == 0 {
            bail!("WORKER_CONCURRENCY must be at least 1");
        }
        Ok(settings)
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

    /// The database URL, for the one place that connects.
    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}

/// Reads `WORKER_CONCURRENCY_<QUEUE>` for every queue that sets it.
fn queue_concurrency(
    lookup: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<(Queue, usize)>> {
    let mut found = Vec::new();
    for queue in Queue::ALL {
        let name = format!("WORKER_CONCURRENCY_{}", queue.as_str().to_uppercase());
        if let Some(raw) = lookup(&name) {
            match raw.trim().parse::<usize>() {
                Ok(n) if n > 0 => found.push((queue, n)),
                _ => bail!("{name} must be a whole number of at least 1, not {raw:?}"),
            }
        }
    }
    Ok(found)
}

/// Reads `WORKER_QUEUES`: known queue names only, at least one.
fn worker_queues(lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Vec<Queue>> {
    let Some(raw) = lookup("WORKER_QUEUES") else {
        return Ok(Queue::ALL.to_vec());
    };
    let mut queues = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let queue = Queue::parse(name).with_context(|| {
            let known: Vec<_> = Queue::ALL.iter().map(|q| q.as_str()).collect();
            format!(
                "WORKER_QUEUES names an unknown queue {name:?}; known: {}",
                known.join(", ")
            )
        })?;
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }
    if queues.is_empty() {
        bail!("WORKER_QUEUES is set but names no queue");
    }
    Ok(queues)
}

/// Reads `STORAGE_URL` and the `S3_*` variables.
fn storage_backend(
    lookup: &impl Fn(&str) -> Option<String>,
    data_dir: &std::path::Path,
) -> anyhow::Result<StorageBackend> {
    let raw = lookup("STORAGE_URL")
        .unwrap_or_else(|| format!("file://{}", data_dir.join("objects").display()));
    if let Some(path) = raw.strip_prefix("file://") {
        if path.is_empty() {
            bail!("STORAGE_URL=file:// needs a directory, e.g. file://./data/objects");
        }
        return Ok(StorageBackend::Local(PathBuf::from(path)));
    }
    let Some(rest) = raw.strip_prefix("s3://") else {
        bail!("STORAGE_URL must start with file:// or s3://, not {raw:?}");
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("STORAGE_URL=s3:// needs a bucket, e.g. s3://tend-uploads");
    }
    let either = |a: &str, b: &str| lookup(a).or_else(|| lookup(b));
    let endpoint = lookup("S3_ENDPOINT");
    let force_path_style = match lookup("S3_FORCE_PATH_STYLE") {
        Some(raw) => raw
            .parse()
            .map_err(|e| anyhow::anyhow!("S3_FORCE_PATH_STYLE={raw:?} is not valid: {e}"))?,
        None => endpoint.is_some(),
    };
    Ok(StorageBackend::S3(S3Settings {
        bucket: bucket.to_owned(),
        prefix: prefix.trim_matches('/').to_owned(),
        endpoint,
        region: either("S3_REGION", "AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
        access_key_id: either("S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        secret_access_key: either("S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")
            .map(SecretString::from),
        force_path_style,
    }))
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

/// Reads the `OPENAI_*`, model and price variables.
fn provider_settings(lookup: &impl Fn(&str) -> Option<String>) -> anyhow::Result<ProviderSettings> {
    let settings = ProviderSettings {
        base_url: lookup("OPENAI_BASE_URL")
            .unwrap_or_else(|| OPENAI_BASE_URL.into())
            .trim_end_matches('/')
            .to_owned(),
        api_key: lookup("OPENAI_API_KEY").map(SecretString::from),
        request_timeout: Duration::from_secs(parse(lookup, "OPENAI_TIMEOUT_SECS", "300")?),
        transcription_model: lookup("TRANSCRIPTION_MODEL").unwrap_or_else(|| "whisper-1".into()),
        transcription_max_upload_bytes: parse(
            lookup,
            "TRANSCRIPTION_MAX_UPLOAD_BYTES",
            "26214400",
        )?,
        transcription_chunk_secs: parse(lookup, "TRANSCRIPTION_CHUNK_SECS", "600")?,
        extraction_model: lookup("EXTRACTION_MODEL").unwrap_or_else(|| "gpt-4o-mini".into()),
        extraction_context_tokens: parse(lookup, "EXTRACTION_CONTEXT_TOKENS", "100000")?,
        price_audio_per_minute: parse(lookup, "PRICE_AUDIO_PER_MINUTE_USD", "0.006")?,
        price_prompt_per_mtok: parse(lookup, "PRICE_PROMPT_PER_MTOK_USD", "0.15")?,
        price_completion_per_mtok: parse(lookup, "PRICE_COMPLETION_PER_MTOK_USD", "0.60")?,
    };
    if settings.transcription_max_upload_bytes < 64 * 1024 {
        bail!("TRANSCRIPTION_MAX_UPLOAD_BYTES must be at least 65536");
    }
    if settings.transcription_chunk_secs < 10 {
        bail!("TRANSCRIPTION_CHUNK_SECS must be at least 10");
    }
    if settings.extraction_context_tokens < 1000 {
        bail!("EXTRACTION_CONTEXT_TOKENS must be at least 1000");
    }
    Ok(settings)
}

/// Fragments of secrets copied from examples; refused in production.
const WEAK_SECRETS: &[&str] = &["changeme", "change-me", "secret", "example", "xxxxxxxx"];

/// Parses a whole number of seconds, more than zero.
fn secs(
    lookup: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: &str,
) -> anyhow::Result<Duration> {
    match parse::<u64>(lookup, key, default)? {
        0 => bail!("{key} must be at least 1"),
        n => Ok(Duration::from_secs(n)),
    }
}

/// Parses `key` (or its default) and names the variable when the value is wrong.
fn parse<T>(lookup: &impl Fn(&str) -> Option<String>, key: &str, default: &str) -> anyhow::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let raw = lookup(key).unwrap_or_else(|| default.to_owned());
    raw.parse::<T>()
        .map_err(|e| anyhow::anyhow!("{key}={raw:?} is not valid: {e}"))
}

/// Which public URLs were not set, and follow the address the API listens on.
#[derive(Debug, Clone, Copy)]
pub struct DerivedUrls {
    /// `PUBLIC_URL` was unset.
    pub public_url: bool,
    /// `APP_URL` was unset (it follows `PUBLIC_URL`).
    pub app_url: bool,
}

/// The URL of a local listener on `addr` (the loopback address when it listens on every
/// interface).
fn local_url(addr: SocketAddr) -> Url {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv6() => "[::1]".to_owned(),
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    Url::parse(&format!("http://{host}:{}/", addr.port())).expect("a valid local URL")
}

/// The values of a comma-separated list of secrets (blank items skipped).
fn secret_list(raw: Option<String>) -> Vec<SecretString> {
    raw.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| SecretString::from(item.to_owned()))
        .collect()
}

/// Development only: one random signing secret per data directory, kept across restarts so
/// tokens survive them.
fn load_or_generate_secret(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("jwt_secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= 32 {
            return Ok(existing);
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating DATA_DIR {}", data_dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a JWT signing secret");
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn queues_and_their_concurrency_come_from_the_environment() {
        let data = std::env::temp_dir().join(format!("tend-cfg-{}", uuid::Uuid::new_v4()));
        let data = data.to_str().unwrap();
        let all = settings(&[("DATA_DIR", data), ("JWT_SECRET", "x")]).unwrap();
        assert_eq!(all.worker_queues, Queue::ALL.to_vec());
        assert_eq!(all.concurrency(Queue::Email), 4);

        let some = settings(&[
            ("DATA_DIR", data),
            ("JWT_SECRET", "x"),
            ("WORKER_QUEUES", "transcription, extraction,transcription"),
            ("WORKER_CONCURRENCY", "3"),
            ("WORKER_CONCURRENCY_TRANSCRIPTION", "1"),
        ])
        .unwrap();
        assert_eq!(
            some.worker_queues,
            [Queue::Transcription, Queue::Extraction]
        );
        assert_eq!(some.concurrency(Queue::Transcription), 1);
        assert_eq!(some.concurrency(Queue::Extraction), 3);

        let unknown = settings(&[("DATA_DIR", data), ("WORKER_QUEUES", "emails")]).unwrap_err();
        assert!(
            unknown.to_string().contains("unknown queue \"emails\""),
            "{unknown}"
        );
        let zero = settings(&[("DATA_DIR", data), ("WORKER_CONCURRENCY_EMAIL", "0")]).unwrap_err();
        assert!(
            zero.to_string().contains("WORKER_CONCURRENCY_EMAIL"),
            "{zero}"
        );
        std::fs::remove_dir_all(data).ok();
    }

    #[test]
    fn production_refuses_a_missing_secret() {
        let err = settings(&[("TEND_ENV", "production")]).unwrap_err();
        assert!(err.to_string().contains("JWT_SECRET is required"));
    }

    #[test]
    fn production_refuses_to_write_mail_to_files() {
        let err =
            settings(&[("TEND_ENV", "production"), ("JWT_SECRET", &"k".repeat(40))]).unwrap_err();
        assert!(err.to_string().contains("SMTP_URL is required"));
        let ok = settings(&[
            ("TEND_ENV", "production"),
            ("JWT_SECRET", &"k".repeat(40)),
            ("SMTP_URL", "smtp://mail:25"),
        ]);
        assert!(ok.is_ok());
    }

    #[test]
    fn production_refuses_a_short_or_placeholder_secret() {
        let short = settings(&[
            ("TEND_ENV", "production"),
            ("JWT_SECRET", "abc"),
            ("SMTP_URL", "smtp://mail:25"),
        ])
        .unwrap_err();
        assert!(short.to_string().contains("at least 32 bytes"));
        let weak = settings(&[
            ("TEND_ENV", "production"),
            ("JWT_SECRET", "changeme-changeme-changeme-changeme"),
            ("SMTP_URL", "smtp://mail:25"),
        ])
        .unwrap_err();
        assert!(weak.to_string().contains("placeholder"));
    }

    #[test]
    fn development_generates_a_secret_once_and_keeps_it() {
        let dir = std::env::temp_dir().join(format!("tend-cfg-{}", uuid::Uuid::new_v4()));
        let dir_s = dir.to_str().unwrap();
        let first = settings(&[("DATA_DIR", dir_s)]).unwrap();
        let second = settings(&[("DATA_DIR", dir_s)]).unwrap();
        assert_eq!(
            first.jwt_secret.expose_secret(),
            second.jwt_secret.expose_secret()
        );
        assert!(first.jwt_secret.expose_secret().len() >= 32);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn unset_public_urls_follow_the_address_the_api_listens_on() {
        let data = std::env::temp_dir().join("tend-config-urls");
        let data = data.to_str().unwrap();
        let any = settings(&[("DATA_DIR", data), ("BIND_ADDR", "0.0.0.0:9000")]).unwrap();
        assert_eq!(any.public_url.as_str(), "http://127.0.0.1:9000/");
        let bound = any.listening_on(43_210);
        assert_eq!(bound.public_url.as_str(), "http://127.0.0.1:43210/");
        assert_eq!(bound.app_url.as_str(), "http://127.0.0.1:43210/");
        let v6 = settings(&[("DATA_DIR", data), ("BIND_ADDR", "[::]:8080")]).unwrap();
        assert_eq!(v6.public_url.as_str(), "http://[::1]:8080/");
        // What was set stays as it was.
        let set = settings(&[
            ("DATA_DIR", data),
            ("BIND_ADDR", "0.0.0.0:0"),
            ("PUBLIC_URL", "https://api.example.org"),
        ])
        .unwrap()
        .listening_on(43_210);
        assert_eq!(set.public_url.as_str(), "https://api.example.org/");
        assert_eq!(set.app_url.as_str(), "https://api.example.org/");
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = settings(&[("JWT_SECRET", &"k".repeat(40)), ("BIND_ADDR", "nope")]).unwrap_err();
        assert!(err.to_string().contains("BIND_ADDR"));
    }
}
