//! `/admin/maintenance`: the periodic jobs (`tend_shared::schedules`), each with when it runs
//! next, its last run and how that ended; and running one now.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use tend_shared::{
    db::{self, audit::AuditAction, job_admin::JobFilter},
    schedules::Schedule,
};

use super::{audited, jobs::AdminJobView};
use crate::{
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    guards::Admin,
    routes::ApiTags,
    state::AppState,
};

/// One periodic job.
#[derive(Debug, Object)]
pub struct ScheduleView {
    /// The schedule's name (`SCHEDULE_<NAME>` configures it).
    pub name: String,
    /// What it does.
    pub description: String,
    /// The job kind each run enqueues.
    pub job_kind: String,
    /// The cron expression in force (UTC, with seconds); absent when turned off.
    pub cron: Option<String>,
    /// Whether it fires on its own (`SCHEDULE_<NAME>=off` turns it off; it can still be run
    /// now).
    pub enabled: bool,
    /// When it fires next.
    pub next_run_at: Option<DateTime<Utc>>,
    /// Its latest job (scheduled or run now): state, attempts, error, times.
    pub last_run: Option<AdminJobView>,
}

/// Every periodic job.
#[derive(Debug, Object)]
pub struct ScheduleList {
    /// In declaration order.
    pub items: Vec<ScheduleView>,
}

/// A run started by an admin.
#[derive(Debug, Object)]
pub struct MaintenanceRunStarted {
    /// The schedule.
    pub name: String,
    /// Follow it at `GET /api/v1/admin/jobs/{id}`.
    pub job_id: String,
}

#[derive(ApiResponse)]
enum ScheduleListResponse {
    /// The schedules.
    #[oai(status = 200)]
    Ok(Json<ScheduleList>),
}

#[derive(ApiResponse)]
enum RunStartedResponse {
    /// The run is queued.
    #[oai(status = 202)]
    Accepted(Json<MaintenanceRunStarted>),
}

/// The `/admin/maintenance` operations.
pub struct AdminMaintenanceApi;

#[OpenApi(prefix_path = "/api/v1/admin/maintenance", tag = "ApiTags::Admin")]
impl AdminMaintenanceApi {
    /// The periodic jobs: when each runs next, and how its last run went.
    #[oai(path = "/", method = "get", operation_id = "adminListSchedules")]
    async fn list(&self, state: Data<&AppState>, _admin: Admin) -> ApiResult<ScheduleListResponse> {
        let now = Utc::now();
        let mut items = Vec::new();
        for schedule in &state.settings.schedules {
            items.push(view(&state, schedule, now).await?);
        }
        Ok(ScheduleListResponse::Ok(Json(ScheduleList { items })))
    }

    /// Run a schedule's job now, whatever its cron says (audited).
    #[oai(
        path = "/:name/run",
        method = "post",
        operation_id = "adminRunSchedule"
    )]
    async fn run(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
        /// The schedule's name, as `GET /admin/maintenance` lists it.
        name: Path<String>,
    ) -> ApiResult<RunStartedResponse> {
        let Some(schedule) = state
            .settings
            .schedules
            .iter()
            .find(|s| s.spec.name == name.0)
        else {
            return Err(ApiError::not_found("schedule"));
        };
        let name = schedule.spec.name;
        let mut tx = state.begin().await?;
        let job = tend_scheduler::run_now(&mut tx, name)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| {
                ApiError::conflict("already-running", "A run was asked for this instant.")
            })?;
        let detail = serde_json::json!({ "schedule": name, "job_id": job.id });
        audited(
            &mut tx,
            AuditAction::MaintenanceRun,
            &admin.id,
            &meta,
            detail,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(schedule = name, job_id = %job.id, "schedule run now by an admin");
        Ok(RunStartedResponse::Accepted(Json(MaintenanceRunStarted {
            name: name.to_owned(),
            job_id: job.id,
        })))
    }
}

/// `schedule` as admins see it at `now`.
async fn view(
    state: &AppState,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> ApiResult<ScheduleView> {
    let filter = JobFilter {
        kind: Some(schedule.spec.kind),
        ..Default::default()
    };
    let last = db::job_admin::list(&state.db, &filter, None, 1).await?;
    Ok(ScheduleView {
        name: schedule.spec.name.to_owned(),
        description: schedule.spec.description.to_owned(),
        job_kind: schedule.spec.kind.to_owned(),
        cron: schedule.cron.clone(),
        enabled: schedule.cron.is_some(),
        next_run_at: schedule.next_after(now),
        last_run: last.first().map(AdminJobView::from),
    })
}
