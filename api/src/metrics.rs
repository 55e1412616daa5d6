//! The API's `/metrics`: Prometheus text for scrapers with `METRICS_TOKEN` (or an admin's
//! access token), with the ledger's gauges refreshed at each scrape. When `METRICS_ADDR` is
//! set the figures are served there instead (a port kept off the public network), refreshed
//! every few seconds, and this route answers 404.

use std::time::Duration;

use poem::{
    IntoResponse, Request, Response, handler,
    http::{StatusCode, header},
    web::Data,
};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;
use tend_shared::{
    db::{self, Db},
    jobs::Queue,
};
use tokio_util::sync::CancellationToken;

use crate::{error::ApiError, state::AppState};

/// How often the ledger's gauges are refreshed when scrapes go to `METRICS_ADDR`.
const REFRESH: Duration = Duration::from_secs(5);

/// `GET /metrics`.
#[handler]
pub async fn scrape(req: &Request, state: Data<&AppState>) -> Response {
    if state.settings.metrics_addr.is_some() {
        return ApiError::not_found("route").into_response();
    }
    let token = crate::extract::bearer_token(req.headers()).unwrap_or_default();
    // METRICS_TOKEN, or one of METRICS_TOKEN_PREVIOUS while scrapers move to a new one.
    let by_token = state
        .settings
        .metrics_token
        .iter()
        .chain(&state.settings.metrics_token_previous)
        .any(|t| bool::from(t.expose_secret().as_bytes().ct_eq(token.as_bytes())));
    let allowed = by_token
        || state
            .authenticate(&token)
            .await
            .is_ok_and(|(user, _)| user.role() == tend_shared::domain::Role::Admin);
    if !allowed {
        return ApiError::unauthorized(
            "metrics-token",
            "Send METRICS_TOKEN (or an admin's access token) as a bearer token.",
        )
        .into_response();
    }
    if let Err(err) = refresh_ledger_gauges(&state.db).await {
        tracing::warn!(error = %err, "ledger gauges not refreshed");
    }
    let body = tend_shared::metrics::install(None)
        .map(|handle| handle.render())
        .unwrap_or_default();
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        // Figures of the moment, behind a token: no cache may keep them.
        .header(header::CACHE_CONTROL, "no-store")
        .body(body)
}

/// Keeps the ledger's gauges fresh for scrapes of `METRICS_ADDR`, until `shutdown`.
pub async fn refresh_periodically(db: Db, shutdown: CancellationToken) {
    loop {
        if let Err(err) = refresh_ledger_gauges(&db).await {
            tracing::warn!(error = %err, "ledger gauges not refreshed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(REFRESH) => {}
        }
    }
}

/// Jobs by queue and state, the oldest due job's age, paused queues and live workers.
async fn refresh_ledger_gauges(db: &Db) -> sqlx::Result<()> {
    let now = db::now_ms();
    let counts = db::job_admin::queue_counts(db, now).await?;
    let paused = db::job_admin::paused_queues(db).await?;
    for queue in Queue::ALL {
        let name = queue.as_str();
        let c = counts
            .iter()
            .find(|c| c.queue == name)
            .cloned()
            .unwrap_or_default();
        for (state, n) in [
            ("due", c.due),
            ("scheduled", c.scheduled),
            ("running", c.running),
            ("dead", c.dead),
            ("held", c.held),
        ] {
            metrics::gauge!("tend_jobs", "queue" => name, "state" => state).set(n as f64);
        }
        let age = c
            .oldest_due_run_at
            .map_or(0.0, |run_at| (now - run_at).max(0) as f64 / 1000.0);
        metrics::gauge!("tend_jobs_oldest_due_age_seconds", "queue" => name).set(age);
        let is_paused = paused.iter().any(|p| p == name);
        metrics::gauge!("tend_queue_paused", "queue" => name).set(f64::from(u8::from(is_paused)));
    }
    let gone_before = now - tend_shared::db::workers::GONE_AFTER.as_millis() as i64;
    let alive = db::workers::list(db)
        .await?
        .iter()
        .filter(|w| w.stopped_at.is_none() && w.heartbeat_at >= gone_before)
        .count();
    metrics::gauge!("tend_workers_alive").set(alive as f64);
    Ok(())
}
