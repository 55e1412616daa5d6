//! `/admin/jobs`: every job, filtered and paginated; one job with every attempt, what it cost
//! and what it belongs to; retry, re-prioritise, kill, cancel and delete.

mod views;

pub use views::*;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use tend_shared::jobs::kinds::{self, RetryRefused};
use tend_shared::{
    db::{
        self,
        audit::AuditAction,
        job_admin::{AttemptRow, JobFilter},
        jobs::{JobRow, holds::Selection},
    },
    jobs::{Enqueued, JobState as LedgerState, JobTx, Priority, Queue},
};

use super::{audited, maintenance::MaintenanceReport, parse_since};
use crate::{
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    fields::{PageCursor, SearchText, Timestamp},
    guards::Admin,
    pagination::PageRequest,
    routes::{ApiTags, jobs::JobState},
    state::AppState,
    views::{QueueName, ms_to_datetime},
};

/// The admin job operations.
pub struct AdminJobsApi;

#[OpenApi(prefix_path = "/api/v1/admin/jobs", tag = "ApiTags::Admin")]
impl AdminJobsApi {
    /// Every job, newest first, filtered by queue, kind, state and creation time.
    #[oai(path = "/", method = "get", operation_id = "adminListJobs")]
    #[allow(clippy::too_many_arguments)] // one per query parameter
    async fn list(
        &self,
        state: Data<&AppState>,
        _admin: Admin,
        /// Only this queue's jobs.
        queue: Query<Option<QueueName>>,
        /// Only this kind's jobs (e.g. `send_email`).
        kind: Query<Option<SearchText>>,
        /// Only jobs in this state.
        #[oai(name = "state")]
        job_state: Query<Option<JobState>>,
        /// Only jobs created at or after this time (RFC 3339).
        since: Query<Option<Timestamp>>,
        /// Only this tenant's jobs (a practice's account id, as the jobs show it).
        tenant: Query<Option<SearchText>>,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<i64>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<PageCursor>>,
    ) -> ApiResult<JobPageResponse> {
        let page = PageRequest::parse(limit.0, cursor.0.map(|c| c.0))?;
        let since = parse_since(since.0.as_deref())?;
        let filter = JobFilter {
            queue: queue.0.map(|q| Queue::from(q).as_str()),
            kind: kind.0.as_deref(),
            state: job_state.0.map(ledger_state),
            tenant: tenant.0.as_deref(),
            since,
        };
        let rows = db::job_admin::list(
            &state.db,
            &filter,
            page.cursor.as_deref(),
            page.fetch_limit(),
        )
        .await?;
        let (rows, next_cursor) = page.finish(rows, |j| j.id.clone());
        Ok(JobPageResponse::Ok(Json(AdminJobPage {
            items: rows.iter().map(Into::into).collect(),
            next_cursor,
        })))
    }

    /// One job: every attempt, its payload's ids, what it belongs to and what it cost.
    #[oai(path = "/:id", method = "get", operation_id = "adminGetJob")]
    async fn get(
        &self,
        state: Data<&AppState>,
        _admin: Admin,
        id: Path<String>,
    ) -> ApiResult<JobDetailResponse> {
        let job = find(&state, &id.0).await?;
        let mut attempts: Vec<AttemptView> = db::job_admin::attempts(&state.db, &job.id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect();
        // A running attempt has no history row until it ends: the job row shows it.
        if let (LedgerState::Running, Some(started)) = (job.state, job.started_at) {
            attempts.push(AttemptView {
                attempt: job.attempts,
                worker: job.worker.clone(),
                started_at: ms_to_datetime(started),
                finished_at: job.finished_at.map(ms_to_datetime),
                outcome: job.state.as_str().to_owned(),
                error: None,
            });
        }
        let cost = db::job_admin::cost_micro_usd(&state.db, &job.id).await?;
        let report = db::maintenance::find(&state.db, &job.id).await?;
        let payload: serde_json::Value =
            serde_json::from_str(&job.payload).unwrap_or(serde_json::Value::Null);
        Ok(JobDetailResponse::Ok(Json(AdminJobDetail {
            subject: subject_of(&payload),
            payload,
            attempts,
            cost_usd: cost as f64 / 1e6,
            report: report.map(Into::into),
            job: (&job).into(),
        })))
    }

    /// Retry a dead or failed job now, with its attempts counted afresh. 409 for a job in
    /// another state, or whose subject moved on (a session retried meanwhile).
    #[oai(path = "/:id/retry", method = "post", operation_id = "adminRetryJob")]
    async fn retry(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
        id: Path<String>,
    ) -> ApiResult<JobActionResponse> {
        let job = find(&state, &id.0).await?;
        let mut tx = state.begin().await?;
        retry_in(&mut tx, &job).await?;
        audit_job(&mut tx, AuditAction::JobRetried, &admin.id, &meta, &job).await?;
        tx.commit().await?;
        tracing::info!(job_id = %job.id, kind = %job.kind, "job retried by an admin");
        Ok(JobActionResponse::Ok(Json(
            (&find(&state, &job.id).await?).into(),
        )))
    }

    /// Change the priority of a waiting job (0 goes first, 9 last). A job already handed to
    /// the transport (at most a few per worker slot) keeps its place there. 409 for a job that
    /// is not waiting.
    #[oai(
        path = "/:id/priority",
        method = "post",
        operation_id = "adminSetJobPriority"
    )]
    async fn set_priority(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
        id: Path<String>,
        body: Json<SetPriorityRequest>,
    ) -> ApiResult<JobActionResponse> {
        let job = find(&state, &id.0).await?;
        let priority = Priority::new(body.0.priority)
            .ok_or_else(|| ApiError::bad_request("invalid-priority", "A priority is 0 to 9."))?;
        let mut tx = state.begin().await?;
        if !db::job_admin::set_priority(&mut tx, &job.id, priority).await? {
            return Err(ApiError::conflict(
                "job-not-waiting",
                format!(
                    "Only a waiting job's priority can change; this one is {}.",
                    job.state
                ),
            ));
        }
        let detail = serde_json::json!({
            "job_id": job.id,
            "kind": job.kind,
            "from": job.priority.value(),
            "to": priority.value(),
        });
        audited(
            &mut tx,
            AuditAction::JobReprioritised,
            &admin.id,
            &meta,
            detail,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(job_id = %job.id, kind = %job.kind, %priority, "job priority changed by an admin");
        Ok(JobActionResponse::Ok(Json(
            (&find(&state, &job.id).await?).into(),
        )))
    }

    /// Kill a waiting or running job: it will not run (again), and its kind's dead hook runs
    /// (a session says `failed`). 409 for a finished job.
    #[oai(path = "/:id/kill", method = "post", operation_id = "adminKillJob")]
    async fn kill(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
        id: Path<String>,
    ) -> ApiResult<JobActionResponse> {
        let job = find(&state, &id.0).await?;
        let mut tx = state.begin().await?;
        if !db::job_admin::kill(&mut tx, &job.id).await? {
            return Err(ApiError::conflict(
                "job-not-killable",
                format!(
                    "Only a waiting or running job can be killed; this one is {}{}.",
                    job.state,
                    if job.killed_at.is_some() {
                        " and already being killed"
                    } else {
                        ""
                    }
                ),
            ));
        }
        if job.state != LedgerState::Running {
            // A worker must take it to bury it (and run its kind's hook).
            tx.hand_over_too(enqueued(&job)?);
        }
        audit_job(&mut tx, AuditAction::JobKilled, &admin.id, &meta, &job).await?;
        tx.commit().await?;
        tracing::warn!(job_id = %job.id, kind = %job.kind, "job killed by an admin");
        Ok(JobActionResponse::Accepted(Json(
            (&find(&state, &job.id).await?).into(),
        )))
    }

    /// Cancel a waiting, held or running job: a waiting one ends `cancelled` at once and never
    /// runs; a running one is stopped at its worker's next lease renewal (within seconds, 202).
    /// What it works on reads `cancelled` (a session, an export, a draft) and its partial work
    /// goes. 409 for a finished job.
    #[oai(path = "/:id/cancel", method = "post", operation_id = "adminCancelJob")]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
        id: Path<String>,
    ) -> ApiResult<JobActionResponse> {
        let job = find(&state, &id.0).await?;
        let mut tx = state.begin().await?;
        let selection = Selection::Job(&job.id);
        let done = kinds::cancel(&mut tx, selection, &admin.id, "cancelled by an admin").await?;
        if done.is_empty() {
            return Err(ApiError::conflict(
                "job-not-cancellable",
                format!(
                    "Only a waiting, held or running job on a session, an export, a data export \
                     or a draft can be cancelled (kill any other); this {} job is {}.",
                    job.kind, job.state
                ),
            ));
        }
        audit_job(&mut tx, AuditAction::JobCancelled, &admin.id, &meta, &job).await?;
        tx.commit().await?;
        tracing::warn!(job_id = %job.id, kind = %job.kind, "job cancelled by an admin");
        let view = (&find(&state, &job.id).await?).into();
        Ok(if done.stopping.is_empty() {
            JobActionResponse::Ok(Json(view))
        } else {
            JobActionResponse::Accepted(Json(view))
        })
    }

    /// Delete a finished (done, dead or cancelled) job with its history. 409 for one that may
    /// still run.
    #[oai(path = "/:id", method = "delete", operation_id = "adminDeleteJob")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
        id: Path<String>,
    ) -> ApiResult<JobDeleted> {
        let job = find(&state, &id.0).await?;
        let mut tx = state.begin().await?;
        if !db::job_admin::delete_finished(&mut tx, &job.id).await? {
            return Err(ApiError::conflict(
                "job-not-finished",
                format!(
                    "Only a done, dead or cancelled job can be deleted; this one is {}.",
                    job.state
                ),
            ));
        }
        audit_job(&mut tx, AuditAction::JobDeleted, &admin.id, &meta, &job).await?;
        tx.commit().await?;
        Ok(JobDeleted::Done)
    }
}

/// Writes an admin's action on `job` to the audit log, naming the job and its kind.
async fn audit_job(
    tx: &mut JobTx,
    action: AuditAction,
    admin_id: &str,
    meta: &RequestMeta,
    job: &JobRow,
) -> ApiResult<()> {
    let detail = serde_json::json!({ "job_id": job.id, "kind": job.kind });
    audited(tx, action, admin_id, meta, detail).await
}

async fn find(state: &AppState, id: &str) -> ApiResult<JobRow> {
    db::jobs::find(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("job"))
}

fn enqueued(job: &JobRow) -> ApiResult<Enqueued> {
    let queue = Queue::parse(&job.queue)
        .ok_or_else(|| ApiError::internal(format!("job {} has an unknown queue", job.id)))?;
    Ok(Enqueued {
        id: job.id.clone(),
        queue,
    })
}

/// Makes `job` due again in `tx` (its kind's hook puts its subject back), to be handed over
/// at commit. 409 when it is not dead or failed, or its subject moved on.
async fn retry_in(tx: &mut JobTx, job: &JobRow) -> ApiResult<()> {
    let dead = job.state == LedgerState::Dead;
    match kinds::admin_retry(tx, &job.id, &job.kind, &job.payload, dead).await? {
        Ok(()) => {}
        Err(RetryRefused::NotRetryable) => {
            return Err(ApiError::conflict(
                "job-not-retryable",
                format!(
                    "Only a dead or failed job can be retried; this one is {}.",
                    job.state
                ),
            ));
        }
        Err(RetryRefused::SubjectMovedOn(reason)) => {
            return Err(ApiError::conflict(
                "job-subject-moved-on",
                format!("The job cannot be retried: {reason}."),
            ));
        }
    }
    tx.hand_over_too(enqueued(job)?);
    Ok(())
}
