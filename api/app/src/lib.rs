//! Tend's processes, composed: the one place where the API, the worker and the scheduler
//! meet. `tend-api` (this crate's binary) runs the API alone (production, beside
//! `tend-worker` and `tend-scheduler`) or all three in one process (the embedded default); the
//! tests start it the same way. Neither `tend-api`'s library nor `tend-scheduler` depends on
//! `tend-worker`: only this crate links them together.

use std::sync::Arc;

use tend_api::startup::{Application, Components};
use tend_shared::{Settings, queue::Relay};
use tokio_util::sync::CancellationToken;

/// Which roles a process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roles {
    /// The HTTP API only (production `tend-api serve`).
    ApiOnly,
    /// API, workers and scheduler in one process (the embedded default).
    AllInOne,
}

/// A started process: its port, and how to stop it and wait for it.
pub struct Running {
    /// The HTTP port.
    pub port: u16,
    /// The settings it runs with (the URLs that were not set name `port`).
    pub settings: Arc<Settings>,
    /// Cancel to shut down gracefully.
    pub shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    workers: Option<tend_worker::WorkerHandle>,
}

impl Running {
    /// Waits until every role has stopped (after `shutdown` is cancelled).
    pub async fn wait(self) {
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(workers) = self.workers {
            workers.wait().await;
        }
    }
}

/// Starts the roles over connected components.
pub async fn run(
    settings: Arc<Settings>,
    components: Components,
    roles: Roles,
) -> anyhow::Result<Running> {
    let shutdown = CancellationToken::new();
    tend_shared::metrics::install(settings.metrics_addr)?;
    let app = Application::build(settings, &components).await?;
    let port = app.port();
    let settings = app.settings().clone();
    let mut tasks = Vec::new();
    let mut workers = None;
    if roles == Roles::AllInOne {
        workers = Some(
            tend_worker::start(
                &settings,
                components.db.clone(),
                components.transport.clone(),
                components.store.clone(),
                shutdown.clone(),
            )
            .await?,
        );
        let relay = Relay::new(
            components.db.clone(),
            components.transport.clone(),
            &settings,
        );
        tasks.push(tend_scheduler::start(relay, &settings.schedules, shutdown.clone()).await?);
    }
    if settings.metrics_addr.is_some() {
        tasks.push(tokio::spawn(tend_api::metrics::refresh_periodically(
            components.db.clone(),
            shutdown.clone(),
        )));
    }
    let server_shutdown = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(err) = app.run_until_stopped(server_shutdown).await {
            tracing::error!(error = %format!("{err:#}"), "HTTP server stopped");
        }
    }));
    Ok(Running {
        port,
        settings,
        shutdown,
        tasks,
        workers,
    })
}
