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

/// Runs one readiness check, failing it after 3 s.
async fn probe(check: impl std::future::Future<Output = anyhow::Result<()>>) -> Check {
    let result = tokio::time::timeout(std::time::Duration::from_secs(3), check)
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")));
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
        let database = probe(async { Ok(tend_shared::db::ping(&state.db).await?) }).await;
        let queue = probe(state.transport().ping()).await;
        let storage = probe(state.store.ping()).await;
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
