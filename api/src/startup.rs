//! Building the API, as the `tend-api` binary (crate `tend-app`) and the tests both do.
//!
//! [`Components`] connects the database (migrating it) and the queue once. [`Application`]
//! binds the HTTP listener (port 0 in tests) and serves until told to stop. Which roles a
//! process plays (the API alone, or with workers and the scheduler) is decided by `tend-app`,
//! the one place where the API, the worker and the scheduler meet.

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
    queue::Transport,
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
        let db = settings.open_database().await?;
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
