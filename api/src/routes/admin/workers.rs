//! `/admin/workers`: the worker processes, live or gone.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, payload::Json};
use tend_shared::db::workers::GONE_AFTER;
use tend_shared::db::{self, workers::WorkerRow};

use crate::{
    error::ApiResult, guards::Admin, routes::ApiTags, state::AppState, views::ms_to_datetime,
};

/// Whether a worker process is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum WorkerStatus {
    /// Heard from within the last three heartbeats.
    Running,
    /// Stopped gracefully.
    Stopped,
    /// Silent past its heartbeat (killed, or its host is down).
    Gone,
}

/// One queue a worker serves.
#[derive(Debug, Object)]
pub struct ServedQueue {
    /// The queue.
    pub queue: String,
    /// Its jobs run at once in this process.
    pub concurrency: u32,
}

/// A worker process.
#[derive(Debug, Object)]
pub struct WorkerView {
    /// Its instance name (written on the jobs it claims).
    pub name: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: i64,
    /// The Tend version it runs.
    pub version: String,
    /// The queues it serves.
    pub queues: Vec<ServedQueue>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it was last heard from.
    pub last_heartbeat_at: DateTime<Utc>,
    /// Jobs it ran at its last heartbeat.
    pub running_jobs: i64,
    /// Running, stopped or gone.
    pub status: WorkerStatus,
}

impl WorkerView {
    fn new(row: WorkerRow, now: i64) -> Self {
        let status = match row.stopped_at {
            Some(_) => WorkerStatus::Stopped,
            None if now - row.heartbeat_at > GONE_AFTER.as_millis() as i64 => WorkerStatus::Gone,
            None => WorkerStatus::Running,
        };
        let queues = row
            .queues
            .split(',')
            .filter_map(|q| q.split_once('='))
            .map(|(queue, n)| ServedQueue {
                queue: queue.to_owned(),
                concurrency: n.parse().unwrap_or(0),
            })
            .collect();
        Self {
            name: row.name,
            host: row.host,
            pid: row.pid,
            version: row.version,
            queues,
            started_at: ms_to_datetime(row.started_at),
            last_heartbeat_at: ms_to_datetime(row.heartbeat_at),
            running_jobs: row.running,
            status,
        }
    }
}

#[derive(ApiResponse)]
enum WorkerList {
    /// Every known process, the latest started first.
    #[oai(status = 200)]
    Ok(Json<Vec<WorkerView>>),
}

/// The admin worker operations.
pub struct AdminWorkersApi;

#[OpenApi(prefix_path = "/api/v1/admin/workers", tag = "ApiTags::Admin")]
impl AdminWorkersApi {
    /// The worker processes: where they run, what they serve, whether they are alive.
    #[oai(path = "/", method = "get", operation_id = "adminListWorkers")]
    async fn list(&self, state: Data<&AppState>, _admin: Admin) -> ApiResult<WorkerList> {
        let now = db::now_ms();
        let rows = db::workers::list(&state.db).await?;
        Ok(WorkerList::Ok(Json(
            rows.into_iter().map(|r| WorkerView::new(r, now)).collect(),
        )))
    }
}
