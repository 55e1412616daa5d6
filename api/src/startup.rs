//! Building and running the application, as the binary and the tests both do.
//!
//! [`Components`] connects the database (migrating it) and the queue once. [`Application`]
//! binds the HTTP listener (port 0 in tests) and serves until told to stop. [`run`] starts
//! the roles this process should play: API only, or API + workers + scheduler (embedded).

use std::sync::Arc;

use anyhow::Context;
use poem::{
    EndpointExt, Route, Server,
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
    middleware::Cors,
};
use tend_shared::{
    Settings,
    db::{self, Db},
    queue::{Relay, Transport},
    storage::ObjectStore,
};
use tokio_util::sync::CancellationToken;

use crate::{
    listener::{GuardedAcceptor, connection_cap},
    middleware::{limit_body, limit_user_requests, request_context},
    routes,
    state::AppState,
};

/// The connections every role shares, made once per process.
#[derive(Clone)]
pub struct Components {
    /// The database, migrated.
    pub db: Db,
    /// The job transport.
    pub transport: Transport,
    /// Uploaded audio.
    pub store: ObjectStore,
}

impl Components {
    /// Connects and migrates.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let db = db::connect(settings).await?;
        db::migrate(&db).await?;
        let transport = Transport::connect(settings).await?;
        let store = ObjectStore::connect(settings).await?;
        Ok(Self {
            db,
            transport,
            store,
        })
    }
}

/// The HTTP server, bound and ready to serve.
pub struct Application {
    acceptor: GuardedAcceptor<TcpAcceptor>,
    port: u16,
    state: AppState,
}

impl Application {
    /// Binds `BIND_ADDR` (port 0 picks a free port), with the connection limits of
    /// [`crate::listener`].
    pub async fn build(settings: Arc<Settings>, components: &Components) -> anyhow::Result<Self> {
        let acceptor = TcpListener::bind(settings.bind_addr.to_string())
            .into_acceptor()
            .await
            .with_context(|| format!("binding {}", settings.bind_addr))?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().map(|s| s.port()))
            .context("the listener has no TCP address")?;
        let cap = connection_cap(&settings.http);
        let acceptor = GuardedAcceptor::new(acceptor, settings.http, cap);
        let settings = Arc::new(settings.listening_on(port));
        let state = AppState::new(
            settings,
            components.db.clone(),
            components.transport.clone(),
            components.store.clone(),
        )
        .await?;
        Ok(Self {
            acceptor,
            port,
            state,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The settings as this process runs with them: the URLs that were not set name the port
    /// actually bound ([`Settings::listening_on`]).
    pub fn settings(&self) -> &Arc<Settings> {
        &self.state.settings
    }

    /// Serves until `shutdown`, then lets in-flight requests finish (up to 30 s).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let app = routes(self.state);
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(
                app,
                async move { shutdown.cancelled().await },
                Some(std::time::Duration::from_secs(30)),
            )
            .await
            .context("HTTP server failed")
    }
}

/// The full route tree: the OpenAPI operations, `/docs` (Swagger UI), `/redoc`,
/// `/openapi.json`, `/metrics`, the pages, middleware.
pub fn routes(state: AppState) -> impl poem::Endpoint {
    let settings = state.settings.clone();
    let max_body = settings.max_body_bytes;
    let max_upload = settings.max_upload_bytes;
    let api = routes::api(settings.public_url.as_str().trim_end_matches('/'));
    // One document for clients, Swagger UI and ReDoc alike (see `crate::spec`).
    let raw = api.spec();
    let spec = crate::spec::for_clients(&raw);
    crate::spec::remember_routes(&spec);
    let with_spec = |html: String| poem::web::Html(html.replace(&raw, &spec));
    let docs = with_spec(api.swagger_ui_html());
    let redoc = with_spec(api.redoc_html());
    let spec_json = spec.clone();
    let cors = (!settings.cors_origins.is_empty()).then(|| {
        Cors::new()
            .allow_origins(settings.cors_origins.iter().map(String::as_str))
            .expose_header("x-request-id")
            .expose_header("retry-after")
    });
    crate::pages::add(Route::new())
        .at("/metrics", poem::get(crate::metrics::scrape))
        .at(
            "/docs",
            poem::get(poem::endpoint::make_sync(move |_| docs.clone())),
        )
        .at(
            "/redoc",
            poem::get(poem::endpoint::make_sync(move |_| redoc.clone())),
        )
        .at(
            "/openapi.json",
            poem::get(poem::endpoint::make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/json; charset=utf-8")
                    .body(spec_json.clone())
            })),
        )
        .nest("/", api)
        .around(limit_user_requests)
        .around(move |ep, req| limit_body(ep, req, max_body, max_upload))
        .with_if(cors.is_some(), cors.unwrap_or_default())
        .data(state)
        .around(request_context)
}

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
        tasks.push(tokio::spawn(crate::metrics::refresh_periodically(
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
