//! Reading the settings from the environment: every variable, its default, and the checks
//! that refuse an unsafe production set-up, each error naming its variable.

use super::*;

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
            job_priority_aging: Duration::from_secs(parse(
                &lookup,
                "JOB_PRIORITY_AGING_SECS",
                "300",
            )?),
            shutdown_grace: Duration::from_secs(parse(&lookup, "SHUTDOWN_GRACE_SECS", "30")?),
            live: LiveSettings {
                speaking_rate_threshold: parse(&lookup, "SPEAKING_RATE_THRESHOLD", "3.0")?,
                overlap_ratio_threshold: parse(&lookup, "OVERLAP_RATIO_THRESHOLD", "0.3")?,
                nudge_every: secs(&lookup, "NUDGE_RATE_LIMIT_SECONDS", "10")?,
                heartbeat: secs(&lookup, "WEBSOCKET_HEARTBEAT_INTERVAL", "30")?,
                timeout: secs(&lookup, "WEBSOCKET_TIMEOUT", "60")?,
            },
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
}

/// Reads `WORKER_CONCURRENCY_<QUEUE>` for every queue that sets it.
pub(super) fn queue_concurrency(
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
pub(super) fn worker_queues(
    lookup: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<Queue>> {
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
pub(super) fn storage_backend(
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

/// Reads the `OPENAI_*`, model and price variables.
pub(super) fn provider_settings(
    lookup: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<ProviderSettings> {
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
        limits: ModelLimits::parse(lookup("PROVIDER_LIMITS").as_deref())?,
        default_monthly_budget_micro_usd: match lookup("PRACTICE_MONTHLY_BUDGET_USD") {
            None => None,
            Some(raw) if raw.trim().is_empty() => None,
            Some(raw) => Some(raw.trim().parse().ok().and_then(crate::budget::micro_usd).ok_or_else(|| {
                anyhow::anyhow!(
                    "PRACTICE_MONTHLY_BUDGET_USD={raw:?} is not valid: a number of dollars, 0 or more"
                )
            })?),
        },
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
pub(super) const WEAK_SECRETS: &[&str] =
    &["changeme", "change-me", "secret", "example", "xxxxxxxx"];

/// Parses a whole number of seconds, more than zero.
pub(super) fn secs(
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
pub(super) fn parse<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: &str,
) -> anyhow::Result<T>
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
pub(super) fn local_url(addr: SocketAddr) -> Url {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv6() => "[::1]".to_owned(),
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    Url::parse(&format!("http://{host}:{}/", addr.port())).expect("a valid local URL")
}

/// The values of a comma-separated list of secrets (blank items skipped).
pub(super) fn secret_list(raw: Option<String>) -> Vec<SecretString> {
    raw.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| SecretString::from(item.to_owned()))
        .collect()
}
