//! Prometheus metrics. Counters and histograms are recorded through the `metrics` facade
//! wherever the event happens (a request, a job's outcome, a hand-over, a provider call); the
//! Prometheus exporter renders them. The facade's recorder is process-wide by design, so it is
//! installed once per process ([`install`]) and every role of the all-in-one process shares it.
//!
//! The names, one place for all (the README's "Metrics" lists them too):
//! - `tend_http_requests_total{operation,method,status}`,
//!   `tend_http_request_duration_seconds{operation,method}`;
//! - `tend_jobs_finished_total{kind,outcome}`, `tend_job_run_duration_seconds{kind}`;
//! - `tend_relay_handed_over_total{queue}`;
//! - `tend_provider_requests_total{endpoint,status}`,
//!   `tend_provider_request_duration_seconds{endpoint}`, `tend_provider_tokens_total{model,kind}`,
//!   `tend_provider_audio_seconds_total{model}`, `tend_provider_cost_micro_usd_total{model}`
//!   (counters count whole units: a millionth of a dollar);
//! - from the ledger, refreshed by the API every few seconds: `tend_jobs{queue,state}`,
//!   `tend_jobs_oldest_due_age_seconds{queue}`, `tend_queue_paused{queue}`,
//!   `tend_workers_alive`.

use std::{net::SocketAddr, sync::OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Requests and jobs: from a millisecond to a long transcription.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder, serving `http://listen/metrics` too when `listen` is given
/// (`METRICS_ADDR`). The first call installs, once even when several roles or test apps call
/// it at the same moment; later ones get the same handle. Call it within the tokio runtime.
pub fn install(listen: Option<SocketAddr>) -> anyhow::Result<PrometheusHandle> {
    let mut failed = None;
    let handle = HANDLE.get_or_init(|| match build(listen) {
        Ok(handle) => handle,
        Err(err) => {
            failed = Some(err);
            // A handle that renders nothing: /metrics answers, empty, and the error says why.
            PrometheusBuilder::new().build_recorder().handle()
        }
    });
    match failed {
        Some(err) => Err(err),
        None => Ok(handle.clone()),
    }
}

/// Builds the recorder, makes it the process's, and starts its upkeep (and listener).
fn build(listen: Option<SocketAddr>) -> anyhow::Result<PrometheusHandle> {
    let builder = PrometheusBuilder::new().set_buckets(BUCKETS)?;
    let (recorder, exporter) = match listen {
        Some(addr) => {
            let (recorder, exporter) = builder.with_http_listener(addr).build()?;
            tracing::info!(%addr, "metrics served at /metrics");
            (recorder, Some(exporter))
        }
        None => (builder.build_recorder(), None),
    };
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|_| anyhow::anyhow!("another metrics recorder is installed in this process"))?;
    match exporter {
        // The listener's exporter runs the upkeep itself.
        Some(exporter) => {
            tokio::spawn(async move {
                if let Err(err) = exporter.await {
                    tracing::error!(error = ?err, "the metrics listener stopped");
                }
            });
        }
        // Drain the histograms' buffers now and then, so memory stays flat between scrapes.
        None => {
            let upkeep = handle.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    upkeep.run_upkeep();
                }
            });
        }
    }
    Ok(handle)
}
