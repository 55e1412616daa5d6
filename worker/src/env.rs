//! What every job handler may use, built once per worker process and shared by all jobs.

use tend_shared::{
    Settings,
    db::Db,
    queue::{Relay, Transport},
    storage::ObjectStore,
};

use crate::{mailer::Mailer, provider::Provider, templates::Templates};

/// The handlers' environment: connections and clients, never per-job state.
pub struct JobEnv {
    /// The data and the ledger.
    pub db: Db,
    /// All settings.
    pub settings: Settings,
    /// Outgoing mail.
    pub mailer: Mailer,
    /// Email bodies.
    pub templates: Templates,
    /// Starts follow-up jobs ([`tend_shared::jobs::JobTx`]) and hands them over at once.
    pub relay: Relay,
    /// This process's worker name, written on the jobs it claims.
    pub worker_name: String,
    /// Uploaded audio.
    pub store: ObjectStore,
    /// The transcription and extraction provider.
    pub provider: Provider,
    /// Live events: what a job's record became, after each attempt.
    pub events: tend_shared::events::EventBus,
}

impl JobEnv {
    /// Builds the environment (fails at start if SMTP_URL or a template is wrong).
    pub fn new(
        settings: &Settings,
        relay: Relay,
        store: ObjectStore,
        worker_name: String,
    ) -> anyhow::Result<Self> {
        let provider = Provider::new(&settings.provider, relay.transport().throttle())?;
        let events = tend_shared::events::EventBus::new(relay.transport().redis_client());
        Ok(Self {
            db: relay.db().clone(),
            relay,
            settings: settings.clone(),
            mailer: Mailer::from_settings(settings)?,
            templates: Templates::load()?,
            store,
            provider,
            worker_name,
            events,
        })
    }

    /// The queue transport (maintenance vacuums it).
    pub fn transport(&self) -> &Transport {
        self.relay.transport()
    }
}
