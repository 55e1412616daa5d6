//! The database: one `sqlx::Any` pool over SQLite (embedded) or PostgreSQL (production).
//!
//! Queries are plain, portable SQL (`$1` placeholders work on both), grouped one module per
//! table. The test suite runs on both databases; that is the check the `query!` macros cannot
//! give for two back-ends at once.

pub mod analytics;
pub mod audit;
pub mod budgets;
pub mod chunks;
pub mod data_exports;
pub mod exports;
pub mod idempotency;
pub mod installation;
pub mod job_admin;
pub mod jobs;
pub mod mail_requests;
pub mod maintenance;
pub mod metrics;
pub mod missions;
pub mod patients;
pub mod platform;
pub mod repair;
pub mod sessions;
pub mod sign_ins;
pub mod signing_keys;
pub mod stats;
pub mod tokens;
pub mod uploads;
pub mod usage;
pub mod users;
pub mod workers;

use std::time::Duration;

use anyhow::Context;
use sqlx::{AnyPool, Executor, any::AnyPoolOptions};

/// The pool type every query function takes.
pub type Db = AnyPool;

/// The migrations embedded at compile time, shared by every binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

pub(crate) use patients::escape_like;

/// Milliseconds since the Unix epoch: the one time format stored in the database.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Opens a pool on `url`: SQLite files (and their folder) are created when missing, with WAL
/// and foreign keys on. The settings' database is opened through
/// [`Settings::open_database`](crate::config::Settings::open_database); a second database (a
/// restore's target) directly.
pub async fn connect_url(url: &str, max_connections: u32) -> anyhow::Result<Db> {
    sqlx::any::install_default_drivers();
    let mut url = url.to_owned();
    let is_sqlite = url.starts_with("sqlite:");
    if is_sqlite {
        prepare_sqlite_path(&url)?;
        if !url.contains("mode=") {
            url.push_str(if url.contains('?') {
                "&mode=rwc"
            } else {
                "?mode=rwc"
            });
        }
    }
    let options = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10));
    let options = if is_sqlite {
        // WAL lets readers run beside the writer; busy_timeout makes writers wait for each
        // other instead of failing; foreign keys are off by default in SQLite.
        options.after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                )
                .await?;
                Ok(())
            })
        })
    } else {
        options
    };
    options
        .connect(&url)
        .await
        .context("connecting to DATABASE_URL")
}

/// Applies pending migrations (safe to call from several replicas: sqlx takes a lock).
pub async fn migrate(db: &Db) -> anyhow::Result<()> {
    MIGRATOR.run(db).await.context("applying migrations")
}

/// Creates the folder of a `sqlite://path` URL so a fresh checkout starts without set-up.
pub fn prepare_sqlite_path(url: &str) -> anyhow::Result<()> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(())
}

/// True when a database error violates the unique index `index` on `table_column`.
/// PostgreSQL names the index; SQLite names the column ("UNIQUE constraint failed: users.email").
pub fn is_unique_violation(err: &sqlx::Error, index: &str, table_column: &str) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                && (db.constraint() == Some(index)
                    || db.message().contains(index)
                    || db.message().contains(table_column))
        }
        _ => false,
    }
}

/// True when `err` says the database is out of reach rather than that the statement was wrong:
/// no connection to be had, a connection cut, or the server shutting down or starting up
/// (SQLSTATE class 57, e.g. 57P01 "terminating connection due to administrator command", and
/// class 08, connection exceptions). Callers answer these with 503 and try again later.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("57") || code.starts_with("08")),
        _ => false,
    }
}

/// Whether the database answers a query (the readiness probe).
pub async fn ping(db: &Db) -> sqlx::Result<()> {
    sqlx::query("SELECT 1").execute(db).await?;
    Ok(())
}

/// True when the pool is PostgreSQL (a few statements lock rows in ways SQLite has no words
/// for, and needs none of).
pub fn is_postgres(db: &Db) -> bool {
    db.connect_options()
        .database_url
        .scheme()
        .starts_with("postgres")
}

/// A new time-ordered id.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
