//! `GET /health` (the process answers) and `GET /ready` (its dependencies answer too).

use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use super::ApiTags;
use crate::state::AppState;
use poem::web::Data;

/// Readiness of one dependency.
#[derive(Debug, Object)]
pub struct Check {
    /// `ok` or `error`.
    pub status: String,
    /// Why it failed (no secrets).
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

/// The state of the process and its dependencies.
#[derive(Debug, Object)]
pub struct Readiness {
    /// `ok` when every check passed.
    pub status: String,
    /// The database.
    pub database: Check,
    /// The job queue.
    pub queue: Check,
    /// The object store (uploads).
    pub storage: Check,
}

/// Liveness answer.
#[derive(Debug, Object)]
pub struct Liveness {
    /// Always `ok`.
    pub status: String,
    /// The running version.
    pub version: String,
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// Ready to serve.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// A dependency is down; take this replica out of rotation.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

/// Ops endpoints (outside `/api/v1`, as load balancers expect).
pub struct HealthApi;

fn check(result: anyhow::Result<()>) -> Check {
    match result {
        Ok(()) => Check {
            status: "ok".into(),
            error: None,
        },
        Err(err) => Check {
            status: "error".into(),
            error: Some(err.to_string()),
        },
    }
}

#[OpenApi(tag = "ApiTags::Ops")]
impl HealthApi {
    /// Liveness: the process is up.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> Json<Liveness> {
        Json(Liveness {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    /// Readiness: the database, the queue and the object store answer.
    #[oai(path = "/ready", method = "get", operation_id = "ready")]
    async fn ready(&self, state: Data<&AppState>) -> ReadyResponse {
        let timeout = std::time::Duration::from_secs(3);
        let database = check(
            tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(&state.db))
                .await
                .map_err(|_| anyhow::anyhow!("timed out"))
                .and_then(|r| r.map(|_| ()).map_err(Into::into)),
        );
        let queue = check(
            tokio::time::timeout(timeout, state.transport().ping())
                .await
                .map_err(|_| anyhow::anyhow!("timed out"))
                .and_then(|r| r),
        );
        let storage = check(
            tokio::time::timeout(timeout, state.store.ping())
                .await
                .map_err(|_| anyhow::anyhow!("timed out"))
                .and_then(|r| r),
        );
        let ok = [&database, &queue, &storage]
            .iter()
            .all(|c| c.status == "ok");
        let body = Readiness {
            status: if ok { "ok" } else { "error" }.into(),
            database,
            queue,
            storage,
        };
        if ok {
            ReadyResponse::Ready(Json(body))
        } else {
            ReadyResponse::NotReady(Json(body))
        }
    }
}
