//! Tracing set-up: pretty lines on a laptop, JSON lines in production.
//!
//! Spans carry the request id (and job id); nothing here ever formats a secret or patient text,
//! which is why handlers use `#[instrument(skip_all, fields(..ids..))]`.

use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::LogFormat;

/// Silenced whatever `RUST_LOG` says: async-openai logs response bodies (patient text) when an
/// answer fails to parse, and provider error bodies.
const ALWAYS_OFF: &str = "async_openai=off";

/// apalis logs every failed poll and restart of a worker whose queue is away (1,100 lines a
/// minute per worker process while Redis was down, measured by the chaos run); the runtime
/// reports those quietly instead (`RestartLog`, `Outage`). Its worker stream logs each failed
/// poll at error level ("WorkerError: Failed to poll backend", 1,113 of a 100,000-job chaos
/// run's 1,368 worker lines), so that module is off. On top of `RUST_LOG` unless it names
/// apalis itself.
const APALIS_QUIET: [&str; 2] = ["apalis_core=error", "apalis_core::worker=off"];

/// `RUST_LOG`, or `default`, with [`ALWAYS_OFF`] (and [`APALIS_QUIET`]) on top.
fn filter(default: &str) -> EnvFilter {
    let from_env = std::env::var("RUST_LOG").ok();
    let mut filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default))
        .add_directive(ALWAYS_OFF.parse().expect("a valid directive"));
    if !from_env.is_some_and(|v| v.contains("apalis")) {
        for directive in APALIS_QUIET {
            filter = filter.add_directive(directive.parse().expect("a valid directive"));
        }
    }
    filter
}

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(format: LogFormat) {
    let filter = filter("info,sqlx=warn,apalis=warn");
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_target(false)).try_init(),
    };
    // A second init (several apps in one test binary) is not an error worth reporting.
    drop(result);
}

/// Resolves on SIGTERM or Ctrl-C: the start of a graceful shutdown.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// For test binaries: lines go through the test harness's capture (shown only for a failing
/// test), at `warn` unless `RUST_LOG` says otherwise.
pub fn init_for_tests() {
    let filter = filter("warn");
    let result = tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_target(false).with_test_writer())
        .try_init();
    drop(result);
}
