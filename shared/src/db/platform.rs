//! The platform-wide figures admins read (`GET /admin/stats`): accounts by role, records on
//! file, and the daily rollups the `daily_stats` job writes ([`super::stats`]).

use sqlx::FromRow;

use super::Db;

/// Accounts now, by role: `(role, count)`.
pub async fn accounts_by_role(db: &Db) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as("SELECT role, COUNT(*) AS n FROM users GROUP BY role")
        .fetch_all(db)
        .await
}

/// Patient records on file.
pub async fn patients(db: &Db) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM patients")
        .fetch_one(db)
        .await
}

/// Sessions on file.
pub async fn sessions(db: &Db) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(db)
        .await
}

/// One computed day, platform-wide (`daily_platform_stats`).
#[derive(Debug, Clone, FromRow)]
pub struct PlatformDay {
    pub day: String,
    pub users_registered: i64,
    pub recordings_uploaded: i64,
    pub recordings_processed: i64,
    pub recordings_failed: i64,
    pub audio_ms: i64,
    pub new_patients: i64,
    pub mood_sum: i64,
    pub mood_count: i64,
    pub cost_micro_usd: i64,
}

/// The last `limit` computed days, newest first.
pub async fn last_days(db: &Db, limit: i64) -> sqlx::Result<Vec<PlatformDay>> {
    sqlx::query_as(
        "SELECT day, users_registered, recordings_uploaded, recordings_processed, \
         recordings_failed, audio_ms, new_patients, mood_sum, mood_count, cost_micro_usd \
         FROM daily_platform_stats ORDER BY day DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await
}

/// One job kind's finished jobs on one day (`daily_job_stats`).
#[derive(Debug, Clone, FromRow)]
pub struct JobKindDay {
    pub day: String,
    pub kind: String,
    pub done: i64,
    pub dead: i64,
    pub p95_run_ms: Option<i64>,
}

/// Every kind's days from `since` (`YYYY-MM-DD`) on, newest first.
pub async fn job_days_since(db: &Db, since: &str) -> sqlx::Result<Vec<JobKindDay>> {
    sqlx::query_as(
        "SELECT day, kind, done, dead, p95_run_ms FROM daily_job_stats \
         WHERE day >= $1 ORDER BY day DESC, kind",
    )
    .bind(since)
    .fetch_all(db)
    .await
}
