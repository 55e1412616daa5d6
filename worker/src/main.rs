//! `tend-worker`: runs job workers for every queue (scale it by adding replicas).

use clap::Parser;

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
    tend_worker::run_process(cli.migrate_only).await
}
