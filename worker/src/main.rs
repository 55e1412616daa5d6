//! `tend-worker`: runs job workers for every queue (scale it by adding replicas).

use clap::Parser;
use tend_shared::{Settings, db, queue::Transport, storage::ObjectStore, telemetry};
use tokio_util::sync::CancellationToken;

/// Tend's job worker.
#[derive(Parser)]
#[command(name = "tend-worker", version, about)]
struct Cli {
    /// Apply database migrations and exit.
    #[arg(long)]
    migrate_only: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::from_env()?;
    telemetry::init(settings.log_format);
    let db = db::connect(&settings).await?;
    db::migrate(&db).await?;
    if cli.migrate_only {
        return Ok(());
    }
    let transport = Transport::connect(&settings).await?;
    let store = ObjectStore::connect(&settings).await?;
    let shutdown = CancellationToken::new();
    let handle = tend_worker::start(&settings, db, transport, store, shutdown.clone()).await?;
    tend_shared::telemetry::shutdown_signal().await;
    tracing::info!("shutting down: finishing running jobs");
    shutdown.cancel();
    handle.wait().await;
    Ok(())
}
