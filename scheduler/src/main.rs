//! `tend-scheduler`: enqueues maintenance jobs on schedule. Run one (or two, for availability:
//! ticks are deduplicated).

use tend_shared::{
    Settings, db,
    queue::{Relay, Transport},
    telemetry,
};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    telemetry::init(settings.log_format);
    let db = settings.open_database().await?;
    db::migrate(&db).await?;
    // Ticks are handed to the queue as soon as they are stored, like any job.
    let transport = Transport::connect(&settings).await?;
    let relay = Relay::new(db, transport, &settings);
    let shutdown = CancellationToken::new();
    let handle = tend_scheduler::start(relay, &settings.schedules, shutdown.clone()).await?;
    tracing::info!("scheduler started");
    telemetry::shutdown_signal().await;
    shutdown.cancel();
    let _ = handle.await;
    Ok(())
}
