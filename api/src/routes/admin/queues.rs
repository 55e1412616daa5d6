//! `/admin/queues`: each queue's figures, and the actions on a whole queue.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use tend_shared::jobs::kinds::retry_dead::RetryDeadJobs;
use tend_shared::{
    db::{self, audit::AuditAction, job_admin::QueueCounts},
    jobs::Queue,
};

use super::audited;
use crate::{
    error::{ApiError, ApiResult},
    extract::RequestMeta,
    guards::Admin,
    routes::ApiTags,
    state::AppState,
    views::{QueueName, ms_to_datetime},
};

/// Finished jobs per minute, over three windows.
#[derive(Debug, Object)]
pub struct Throughput {
    /// Over the last minute.
    pub last_1m: f64,
    /// Over the last 5 minutes.
    pub last_5m: f64,
    /// Over the last 15 minutes.
    pub last_15m: f64,
}

/// How long jobs ran, over the latest finished ones.
#[derive(Debug, Object)]
pub struct RunTimes {
    /// How many finished jobs the figures are taken from (at most 1,000, the latest).
    pub sample: u32,
    /// The median, in milliseconds.
    pub p50_ms: i64,
    /// The 95th percentile, in milliseconds.
    pub p95_ms: i64,
}

/// One queue as admins watch it.
#[derive(Debug, Object)]
pub struct QueueView {
    /// The queue's name.
    pub name: String,
    /// Paused: nothing is handed out; running jobs finish.
    pub paused: bool,
    /// Waiting and due now.
    pub due: i64,
    /// Waiting for a later time (retries in backoff).
    pub scheduled: i64,
    /// Held by a worker now.
    pub running: i64,
    /// Will not run again unless retried.
    pub dead: i64,
    /// Held: waiting for their practice's budget (they never reach a worker until released).
    pub held: i64,
    /// Finished in the last hour.
    pub done_last_hour: i64,
    /// Finished jobs per minute.
    pub throughput_per_minute: Throughput,
    /// Seconds the longest-due job has waited since it became due.
    pub oldest_due_age_seconds: Option<f64>,
    /// Run times of the latest finished jobs (absent before any finished).
    pub run_times: Option<RunTimes>,
    /// Handed to the transport and not yet started.
    pub in_transport: i64,
    /// Jobs finished in each of the last 60 minutes, oldest first (the last is the current,
    /// partial minute): the throughput chart.
    pub done_per_minute: Vec<i64>,
}

/// A retry of a queue's dead jobs, started.
#[derive(Debug, Object)]
pub struct RetryDeadStarted {
    /// The queue.
    pub queue: String,
    /// The job doing it: follow it at `GET /api/v1/admin/jobs/{id}`.
    pub job_id: String,
    /// Jobs that died up to this instant come back; those that die later stay dead.
    pub died_by: DateTime<Utc>,
}

#[derive(ApiResponse)]
enum QueueList {
    /// Every queue, in a fixed order.
    #[oai(status = 200)]
    Ok(Json<Vec<QueueView>>),
}

#[derive(ApiResponse)]
enum QueueResponse {
    /// The queue.
    #[oai(status = 200)]
    Ok(Json<QueueView>),
}

#[derive(ApiResponse)]
enum RetryDeadResponse {
    /// Started.
    #[oai(status = 202)]
    Accepted(Json<RetryDeadStarted>),
}

/// The admin queue operations.
pub struct AdminQueuesApi;

#[OpenApi(prefix_path = "/api/v1/admin/queues", tag = "ApiTags::Admin")]
impl AdminQueuesApi {
    /// Every queue's figures: waiting, running, dead, throughput, oldest due job, run times.
    #[oai(path = "/", method = "get", operation_id = "adminListQueues")]
    async fn list(&self, state: Data<&AppState>, _admin: Admin) -> ApiResult<QueueList> {
        Ok(QueueList::Ok(Json(views(&state, &Queue::ALL).await?)))
    }

    /// Pause a queue: nothing more is handed out; running jobs finish.
    #[oai(
        path = "/:queue/pause",
        method = "post",
        operation_id = "adminPauseQueue"
    )]
    async fn pause(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
        queue: Path<QueueName>,
    ) -> ApiResult<QueueResponse> {
        set_paused(&state, &admin.id, &meta, queue.0.into(), true).await
    }

    /// Resume a paused queue: its waiting jobs are handed out again.
    #[oai(
        path = "/:queue/resume",
        method = "post",
        operation_id = "adminResumeQueue"
    )]
    async fn resume(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
        queue: Path<QueueName>,
    ) -> ApiResult<QueueResponse> {
        set_paused(&state, &admin.id, &meta, queue.0.into(), false).await
    }

    /// Retry every dead job of a queue, as a job: the jobs that died up to now come back
    /// in batches (kinds with a subject, such as a session's stage, put it back to waiting;
    /// jobs whose subject moved on stay dead). Follow it at `GET /api/v1/admin/jobs/{id}`:
    /// its report counts `retried` as it goes and `left_dead` once it is done.
    #[oai(
        path = "/:queue/retry-dead",
        method = "post",
        operation_id = "adminRetryDeadJobs"
    )]
    async fn retry_dead(
        &self,
        state: Data<&AppState>,
        Admin(admin): Admin,
        meta: RequestMeta,
        queue: Path<QueueName>,
    ) -> ApiResult<RetryDeadResponse> {
        let queue = Queue::from(queue.0);
        let payload = RetryDeadJobs {
            queue: queue.as_str().to_owned(),
            died_by: db::now_ms(),
        };
        let mut tx = state.begin().await?;
        let job = tx
            .enqueue(&payload, &meta.system_job_origin(&admin.id))
            .await?;
        let detail = serde_json::json!({ "queue": queue.as_str(), "job_id": job.id });
        audited(
            &mut tx,
            AuditAction::QueueDeadRetried,
            &admin.id,
            &meta,
            detail,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(queue = queue.as_str(), job_id = %job.id, "dead jobs retried by an admin");
        Ok(RetryDeadResponse::Accepted(Json(RetryDeadStarted {
            queue: queue.as_str().to_owned(),
            job_id: job.id,
            died_by: ms_to_datetime(payload.died_by),
        })))
    }
}

/// Pauses or resumes the queue named `raw` (audited) and answers with its figures.
async fn set_paused(
    state: &AppState,
    admin_id: &str,
    meta: &RequestMeta,
    queue: Queue,
    paused: bool,
) -> ApiResult<QueueResponse> {
    let mut tx = state.begin().await?;
    let action = if paused {
        db::job_admin::pause(&mut tx, queue, admin_id).await?;
        AuditAction::QueuePaused
    } else {
        db::job_admin::resume(&mut tx, queue).await?;
        AuditAction::QueueResumed
    };
    let detail = serde_json::json!({ "queue": queue.as_str() });
    audited(&mut tx, action, admin_id, meta, detail).await?;
    tx.commit().await?;
    if !paused {
        state.relay.nudge();
    }
    tracing::warn!(
        queue = queue.as_str(),
        paused,
        "queue paused or resumed by an admin"
    );
    Ok(QueueResponse::Ok(Json(view(state, queue).await?)))
}

/// The figures of `queues`, now. The ledger-wide reads (counts, pauses, the per-minute
/// series) are made once for all of them; run times are read per queue.
async fn views(state: &AppState, queues: &[Queue]) -> ApiResult<Vec<QueueView>> {
    let now = db::now_ms();
    let counts = db::job_admin::queue_counts(&state.db, now).await?;
    let paused = db::job_admin::paused_queues(&state.db).await?;
    let per_minute = db::job_admin::done_per_minute(&state.db, now, 60).await?;
    let this_minute = now / 60_000;
    let mut views = Vec::with_capacity(queues.len());
    for &queue in queues {
        let name = queue.as_str();
        let c = counts
            .iter()
            .find(|c| c.queue == name)
            .cloned()
            .unwrap_or_default();
        let mut times = db::job_admin::recent_run_times(&state.db, name, 1000).await?;
        times.sort_unstable();
        let mut done_per_minute = vec![0; 60];
        for (q, minute, n) in &per_minute {
            let ago = this_minute - minute;
            if q == name && (0..60).contains(&ago) {
                done_per_minute[59 - ago as usize] = *n;
            }
        }
        let is_paused = paused.iter().any(|q| q == name);
        views.push(to_view(queue, c, is_paused, &times, done_per_minute, now));
    }
    Ok(views)
}

/// One queue's figures, now.
async fn view(state: &AppState, queue: Queue) -> ApiResult<QueueView> {
    let mut one = views(state, &[queue]).await?;
    one.pop()
        .ok_or_else(|| ApiError::internal("no figures for a known queue"))
}

fn to_view(
    queue: Queue,
    c: QueueCounts,
    paused: bool,
    sorted_times: &[i64],
    done_per_minute: Vec<i64>,
    now: i64,
) -> QueueView {
    let percentile = |p: f64| {
        let rank = ((sorted_times.len() as f64 * p).ceil() as usize).max(1) - 1;
        sorted_times[rank.min(sorted_times.len() - 1)]
    };
    QueueView {
        name: queue.as_str().to_owned(),
        paused,
        due: c.due,
        scheduled: c.scheduled,
        running: c.running,
        dead: c.dead,
        held: c.held,
        done_last_hour: c.done_last_hour,
        throughput_per_minute: Throughput {
            last_1m: c.done_last_minute as f64,
            last_5m: c.done_last_5_minutes as f64 / 5.0,
            last_15m: c.done_last_15_minutes as f64 / 15.0,
        },
        oldest_due_age_seconds: c
            .oldest_due_run_at
            .map(|run_at| (now - run_at).max(0) as f64 / 1000.0),
        run_times: (!sorted_times.is_empty()).then(|| RunTimes {
            sample: sorted_times.len() as u32,
            p50_ms: percentile(0.5),
            p95_ms: percentile(0.95),
        }),
        in_transport: c.in_transport,
        done_per_minute,
    }
}
