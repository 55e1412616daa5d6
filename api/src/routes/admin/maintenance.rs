//! `/admin/maintenance`: the periodic jobs (`tend_shared::schedules`), each with when it runs
//! next, its last run and how that ended; and running one now.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use tend_shared::{
    db::{self, audit::AuditAction, job_admin::JobFilter},
    jobs::Enqueued,
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
    /// Whether it deletes, and so takes `?dry_run=true` on `run`.
    pub supports_dry_run: bool,
    /// Its latest job (scheduled or run now): state, attempts, error, times.
    pub last_run: Option<AdminJobView>,
    /// What that job did, or would do in a dry run, for schedules that report.
    pub last_report: Option<MaintenanceReport>,
}

/// One category of what a run removed (or would remove).
#[derive(Debug, Object)]
pub struct ReportCategory {
    /// What it is. Cleanup: `expired_tokens`, `finished_jobs`, `mail_requests`,
    /// `silent_workers`, `transport_deliveries` (real runs only), `abandoned_uploads`,
    /// `failed_recording_audio`, `orphan_objects`, `old_backups`, `stuck_subjects_failed`.
    /// A queue's retry of its dead jobs: `retried`, then `left_dead` once it is over.
    pub category: String,
    /// Rows or objects.
    pub items: u64,
    /// Bytes of the objects, where the category has any.
    pub bytes: Option<u64>,
}

/// What a maintenance run did.
#[derive(Debug, Object)]
pub struct MaintenanceReport {
    /// `true`: nothing was deleted; the figures are what a real run would delete.
    pub dry_run: bool,
    /// Each category.
    pub categories: Vec<ReportCategory>,
}

impl From<db::maintenance::Report> for MaintenanceReport {
    fn from(report: db::maintenance::Report) -> Self {
        Self {
            dry_run: report.dry_run,
            categories: report
                .categories
                .into_iter()
                .map(|c| ReportCategory {
                    category: c.category,
                    items: c.items,
                    bytes: c.bytes,
                })
                .collect(),
        }
    }
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
    /// Follow it at `GET /api/v1/admin/jobs/{id}`; its report shows at
    /// `GET /api/v1/admin/maintenance` once it is done.
    pub job_id: String,
    /// Whether it only counts.
    pub dry_run: bool,
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

    /// Run a schedule's job now, whatever its cron says (audited). `dry_run=true`, for the
    /// schedules that delete, counts what would go per category and deletes nothing; for
    /// the others it is a 409 `no-dry-run`.
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
        /// Count what would be deleted, delete nothing (schedules with `supports_dry_run`).
        #[oai(default)]
        dry_run: Query<bool>,
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
        if dry_run.0 && !schedule.spec.dry_run {
            // The request is well formed; this schedule just cannot do it (see
            // `supports_dry_run`).
            return Err(ApiError::conflict(
                "no-dry-run",
                format!("{name} deletes nothing: it has no dry run."),
            ));
        }
        let job = start_run(&state, &admin.id, &meta, name, dry_run.0).await?;
        Ok(RunStartedResponse::Accepted(Json(MaintenanceRunStarted {
            name: name.to_owned(),
            job_id: job.id,
            dry_run: dry_run.0,
        })))
    }
}

/// Enqueues schedule `name`'s job now for admin `admin_id`, audited in the same transaction.
pub(super) async fn start_run(
    state: &AppState,
    admin_id: &str,
    meta: &RequestMeta,
    name: &str,
    dry_run: bool,
) -> ApiResult<Enqueued> {
    let mut tx = state.begin().await?;
    let job = tend_shared::schedules::run_now(&mut tx, name, dry_run)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::conflict("already-running", "A run was asked for this instant.")
        })?;
    let detail = serde_json::json!({ "schedule": name, "job_id": job.id, "dry_run": dry_run });
    audited(&mut tx, AuditAction::MaintenanceRun, admin_id, meta, detail).await?;
    tx.commit().await?;
    tracing::info!(schedule = name, job_id = %job.id, dry_run, "schedule run now by an admin");
    Ok(job)
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
    let last_report = match last.first() {
        Some(job) => db::maintenance::find(&state.db, &job.id).await?,
        None => None,
    };
    Ok(ScheduleView {
        name: schedule.spec.name.to_owned(),
        description: schedule.spec.description.to_owned(),
        job_kind: schedule.spec.kind.to_owned(),
        cron: schedule.cron.clone(),
        enabled: schedule.cron.is_some(),
        next_run_at: schedule.next_after(now),
        supports_dry_run: schedule.spec.dry_run,
        last_run: last.first().map(AdminJobView::from),
        last_report: last_report.map(Into::into),
    })
}
