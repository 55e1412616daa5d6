//! `/admin/stats`: platform-wide figures for admins, from the daily rollups.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use tend_shared::db::platform;

use crate::{error::ApiResult, guards::Admin, routes::ApiTags, state::AppState};

/// One computed day, platform-wide.
#[derive(Debug, Object)]
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
#[derive(Debug, Object)]
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

impl From<platform::PlatformDay> for PlatformDay {
    fn from(d: platform::PlatformDay) -> Self {
        Self {
            day: d.day,
            users_registered: d.users_registered,
            recordings_uploaded: d.recordings_uploaded,
            recordings_processed: d.recordings_processed,
            recordings_failed: d.recordings_failed,
            audio_ms: d.audio_ms,
            new_patients: d.new_patients,
            mood_sum: d.mood_sum,
            mood_count: d.mood_count,
            cost_micro_usd: d.cost_micro_usd,
        }
    }
}

impl From<platform::JobKindDay> for JobKindDay {
    fn from(d: platform::JobKindDay) -> Self {
        Self {
            day: d.day,
            kind: d.kind,
            done: d.done,
            dead: d.dead,
            p95_run_ms: d.p95_run_ms,
        }
    }
}

/// The `/admin/stats` operation.
pub struct AdminStatsApi;

#[OpenApi(prefix_path = "/api/v1/admin/stats", tag = "ApiTags::Admin")]
impl AdminStatsApi {
    /// Platform-wide figures: accounts, patients, sessions, the daily rollups and job kinds.
    #[oai(path = "/", method = "get", operation_id = "adminStats")]
    async fn stats(&self, state: Data<&AppState>, _admin: Admin) -> ApiResult<StatsResponse> {
        let db = &state.db;
        let roles = platform::accounts_by_role(db).await?;
        let count = |role: &str| roles.iter().find(|(r, _)| r == role).map_or(0, |(_, n)| *n);
        let patients = platform::patients(db).await?;
        let sessions = platform::sessions(db).await?;
        let days = platform::last_days(db, 30).await?;
        let since = days.get(6).or(days.last()).map(|d| d.day.clone());
        let jobs = match since {
            Some(since) => platform::job_days_since(db, &since).await?,
            None => Vec::new(),
        };
        Ok(StatsResponse::Ok(Json(PlatformStats {
            admins: count("admin"),
            practitioners: count("practitioner"),
            patient_accounts: count("patient"),
            patients,
            sessions,
            days: days.into_iter().map(Into::into).collect(),
            jobs: jobs.into_iter().map(Into::into).collect(),
        })))
    }
}
