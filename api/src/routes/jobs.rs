//! `GET /jobs/{id}`: the state of a job the caller started (admins see every job).

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, param::Path, payload::Json};
use tend_shared::{
    db::{self, jobs::JobRow},
    domain::Role,
    jobs,
};

use super::ApiTags;
use crate::{
    error::{ApiError, ApiResult},
    guards::SignedIn,
    state::AppState,
    views::ms_to_datetime,
};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting to run.
    Pending,
    /// A worker is running it.
    Running,
    /// Finished.
    Done,
    /// The last attempt failed; another is due at `run_at`.
    Failed,
    /// Will not run again (permanent error or attempts used up).
    Dead,
    /// Waits before it may run: its practice's monthly budget is spent (see `held_reason`).
    Held,
    /// Stopped by its owner or an admin; will not run again.
    Cancelled,
}

impl From<jobs::JobState> for JobState {
    fn from(state: jobs::JobState) -> Self {
        match state {
            jobs::JobState::Pending => JobState::Pending,
            jobs::JobState::Running => JobState::Running,
            jobs::JobState::Done => JobState::Done,
            jobs::JobState::Failed => JobState::Failed,
            jobs::JobState::Dead => JobState::Dead,
            jobs::JobState::Held => JobState::Held,
            jobs::JobState::Cancelled => JobState::Cancelled,
        }
    }
}

/// A job as its starter sees it.
#[derive(Debug, Object)]
pub struct JobView {
    /// The job id.
    pub id: String,
    /// What it does, e.g. `send_email`.
    pub kind: String,
    /// The queue it runs on.
    pub queue: String,
    /// Where it is.
    pub state: JobState,
    /// Attempts started so far.
    pub attempts: i64,
    /// Attempts allowed in all.
    pub max_attempts: i64,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it may run next (a retry's due time).
    pub run_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the latest attempt ended.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<JobRow> for JobView {
    fn from(row: JobRow) -> Self {
        Self {
            state: row.state.into(),
            id: row.id,
            kind: row.kind,
            queue: row.queue,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            last_error: row.last_error,
            created_at: ms_to_datetime(row.created_at),
            run_at: ms_to_datetime(row.run_at),
            started_at: row.started_at.map(ms_to_datetime),
            finished_at: row.finished_at.map(ms_to_datetime),
        }
    }
}

#[derive(ApiResponse)]
enum JobResponse {
    /// The job.
    #[oai(status = 200)]
    Ok(Json<JobView>),
}

/// The jobs operations.
pub struct JobsApi;

#[OpenApi(prefix_path = "/api/v1/jobs", tag = "ApiTags::Jobs")]
impl JobsApi {
    /// One job the caller started (404 for anyone else's, so ids do not leak).
    #[oai(path = "/:id", method = "get", operation_id = "getJob")]
    async fn get(
        &self,
        state: Data<&AppState>,
        SignedIn(user): SignedIn,
        id: Path<String>,
    ) -> ApiResult<JobResponse> {
        let job = db::jobs::find(&state.db, &id.0)
            .await?
            .filter(|job| user.role() == Role::Admin || job.created_by.as_deref() == Some(&user.id))
            .ok_or_else(|| ApiError::not_found("job"))?;
        Ok(JobResponse::Ok(Json(job.into())))
    }
}
