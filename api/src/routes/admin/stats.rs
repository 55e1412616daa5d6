//! `/admin/stats`: platform-wide figures for admins, from the daily rollups.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use sqlx::FromRow;

use crate::{error::ApiResult, guards::Admin, routes::ApiTags, state::AppState};

/// One computed day, platform-wide.
#[derive(Debug, Object, FromRow)]
pub struct PlatformDay {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Accounts registered.
    pub users_registered: i64,
    /// Sessions created.
    pub recordings_uploaded: i64,
    /// Sessions whose notes were extracted.
    pub recordings_processed: i64,
    /// Sessions that failed.
    pub recordings_failed: i64,
    /// Audio transcribed, in milliseconds.
    pub audio_ms: i64,
    /// Patients created.
    pub new_patients: i64,
    /// Sum of the mood scores of the day's sessions (with `mood_count`, their average).
    pub mood_sum: i64,
    /// Sessions with a mood score.
    pub mood_count: i64,
    /// Provider cost of the day's calls, in millionths of a US dollar.
    pub cost_micro_usd: i64,
}

/// One job kind's finished jobs on one day.
#[derive(Debug, Object, FromRow)]
pub struct JobKindDay {
    /// The UTC day.
    pub day: String,
    /// The job kind.
    pub kind: String,
    /// Jobs done.
    pub done: i64,
    /// Jobs dead.
    pub dead: i64,
    /// 95th percentile run time, in milliseconds.
    pub p95_run_ms: Option<i64>,
}

/// Platform-wide figures.
#[derive(Debug, Object)]
pub struct PlatformStats {
    /// Accounts now, by role.
    pub admins: i64,
    /// Practitioner accounts.
    pub practitioners: i64,
    /// Patient accounts.
    pub patient_accounts: i64,
    /// Patient records.
    pub patients: i64,
    /// Sessions on record.
    pub sessions: i64,
    /// The last 30 computed days, newest first.
    pub days: Vec<PlatformDay>,
    /// Jobs per kind over the last 7 computed days, newest first.
    pub jobs: Vec<JobKindDay>,
}

#[derive(ApiResponse)]
enum StatsResponse {
    /// The figures.
    #[oai(status = 200)]
    Ok(Json<PlatformStats>),
}

#[derive(FromRow)]
struct RoleCount {
    role: String,
    n: i64,
}

/// The `/admin/stats` operation.
pub struct AdminStatsApi;

#[OpenApi(prefix_path = "/api/v1/admin/stats", tag = "ApiTags::Admin")]
impl AdminStatsApi {
    /// Platform-wide figures: accounts, patients, sessions, the daily rollups and job kinds.
    #[oai(path = "/", method = "get", operation_id = "adminStats")]
    async fn stats(&self, state: Data<&AppState>, _admin: Admin) -> ApiResult<StatsResponse> {
        let db = &state.db;
        let roles: Vec<RoleCount> =
            sqlx::query_as("SELECT role, COUNT(*) AS n FROM users GROUP BY role")
                .fetch_all(db)
                .await?;
        let count = |role: &str| roles.iter().find(|r| r.role == role).map_or(0, |r| r.n);
        let patients: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM patients")
            .fetch_one(db)
            .await?;
        let sessions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
            .fetch_one(db)
            .await?;
        let days: Vec<PlatformDay> = sqlx::query_as(
            "SELECT day, users_registered, recordings_uploaded, recordings_processed, \
             recordings_failed, audio_ms, new_patients, mood_sum, mood_count, cost_micro_usd \
             FROM daily_platform_stats ORDER BY day DESC LIMIT 30",
        )
        .fetch_all(db)
        .await?;
        let since = days.get(6).or(days.last()).map(|d| d.day.clone());
        let jobs: Vec<JobKindDay> = match since {
            Some(since) => {
                sqlx::query_as(
                    "SELECT day, kind, done, dead, p95_run_ms FROM daily_job_stats \
                     WHERE day >= $1 ORDER BY day DESC, kind",
                )
                .bind(since)
                .fetch_all(db)
                .await?
            }
            None => Vec::new(),
        };
        Ok(StatsResponse::Ok(Json(PlatformStats {
            admins: count("admin"),
            practitioners: count("practitioner"),
            patient_accounts: count("patient"),
            patients,
            sessions,
            days,
            jobs,
        })))
    }
}
