//! `tend-api`: the HTTP API, and by default the whole of Tend in one process.

use std::{io::BufRead, sync::Arc};

use clap::{Parser, Subcommand};
use tend_api::startup::Components;
use tend_app::{Roles, run};
use tend_shared::{Settings, config::QueueBackend, db, telemetry};

/// Tend's API server.
#[derive(Parser)]
#[command(name = "tend-api", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// API, workers and scheduler in one process (the default with the embedded SQLite queue).
    All,
    /// The HTTP API only; run `tend-worker` and `tend-scheduler` beside it (the default when
    /// QUEUE_URL is Redis).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Create an admin account (or promote an existing one). The password is read from
    /// TEND_ADMIN_PASSWORD, or from the first line of standard input.
    CreateAdmin {
        /// The admin's email address.
        #[arg(long)]
        email: String,
    },
    /// Take a backup of the whole database into the object store now, and print its id.
    Backup,
    /// Restore a backup (an id from `GET /api/v1/admin/backups`, or `latest`) into the
    /// database DATABASE_URL names, which must be empty, and verify every table.
    Restore {
        /// The backup id, or `latest`.
        backup: String,
        /// Replace the rows of a database that is not empty.
        #[arg(long)]
        force: bool,
    },
    /// Statistics: recompute the rollups of a past range.
    Stats {
        #[command(subcommand)]
        command: StatsCommand,
    },
    /// The keys that sign access tokens: list, rotate, remove.
    SigningKeys {
        #[command(subcommand)]
        command: SigningKeysCommand,
    },
}

#[derive(Subcommand)]
enum SigningKeysCommand {
    /// The keys in force, the signing one first (never their secrets).
    List,
    /// A new key signs from now on (every API process within 10 s); the one it replaces
    /// keeps verifying its tokens until they expire.
    Rotate,
    /// Remove a leaked key: every token it signed is refused.
    Remove {
        /// The key's id (its `kid`).
        kid: String,
    },
}

#[derive(Subcommand)]
enum StatsCommand {
    /// Recompute the daily stats of every day from FROM to TO (UTC dates, inclusive) and the
    /// weekly snapshots of every ISO week that ends within the range.
    Backfill {
        /// First day, e.g. 2026-11-01.
        #[arg(long)]
        from: chrono::NaiveDate,
        /// Last day, e.g. 2026-11-30.
        #[arg(long)]
        to: chrono::NaiveDate,
    },
}

/// Runs the command; a failure is one clear line on stderr and a non-zero exit, never a
/// backtrace (whatever `RUST_BACKTRACE` says).
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tend-api: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_command(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tend-api: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_command(cli: Cli) -> anyhow::Result<()> {
    let settings = Arc::new(Settings::from_env()?);
    telemetry::init(settings.log_format);
    // No subcommand: everything in one process on the embedded queue (a laptop), the API alone
    // on Redis (production, where workers and the scheduler are their own processes).
    let default = match settings.queue {
        QueueBackend::Sqlite(_) => Command::All,
        QueueBackend::Redis(_) => Command::Serve,
    };
    match cli.command.unwrap_or(default) {
        Command::Migrate => {
            let db = settings.open_database().await?;
            db::migrate(&db).await?;
            println!("migrations applied");
        }
        Command::CreateAdmin { email } => {
            let password = match std::env::var("TEND_ADMIN_PASSWORD") {
                Ok(pw) => pw,
                Err(_) => {
                    eprintln!("admin password (12-128 characters):");
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let db = settings.open_database().await?;
            db::migrate(&db).await?;
            let id = tend_api::commands::create_admin(&db, &email, &password).await?;
            println!("admin ready: {id}");
        }
        Command::Backup => {
            let db = settings.open_database().await?;
            db::migrate(&db).await?;
            let store = tend_shared::storage::ObjectStore::connect(&settings).await?;
            let manifest = tend_shared::backup::take(&db, &store, &settings.staging_dir()).await?;
            println!(
                "backup {} written: {} tables, {} rows, {} bytes",
                manifest.id,
                manifest.tables.len(),
                manifest.total_rows(),
                manifest.total_bytes()
            );
        }
        Command::Restore { backup, force } => {
            let db = settings.open_database().await?;
            let store = tend_shared::storage::ObjectStore::connect(&settings).await?;
            let restored =
                tend_shared::backup::restore(&db, &store, &backup, force, &settings.staging_dir())
                    .await?;
            println!(
                "backup {} restored and verified: {} tables, {} rows",
                restored.id, restored.tables, restored.rows
            );
        }
        Command::Stats {
            command: StatsCommand::Backfill { from, to },
        } => {
            let db = settings.open_database().await?;
            db::migrate(&db).await?;
            let done = tend_api::commands::backfill_stats(&db, from, to).await?;
            println!(
                "recomputed {} days and {} weeks in {:.1} s",
                done.days,
                done.weeks,
                done.elapsed.as_secs_f64()
            );
        }
        Command::SigningKeys { command } => {
            let db = settings.open_database().await?;
            db::migrate(&db).await?;
            let done = match command {
                SigningKeysCommand::List => {
                    tend_api::commands::list_signing_keys(&db, &settings).await?
                }
                SigningKeysCommand::Rotate => {
                    tend_api::commands::rotate_signing_key(&db, &settings).await?
                }
                SigningKeysCommand::Remove { kid } => {
                    tend_api::commands::remove_signing_key(&db, &settings, &kid).await?
                }
            };
            print!("{done}");
        }
        command @ (Command::All | Command::Serve) => {
            let roles = match command {
                Command::Serve => Roles::ApiOnly,
                _ => Roles::AllInOne,
            };
            let components = Components::connect(&settings).await?;
            let running = run(settings.clone(), components, roles).await?;
            tracing::info!(
                url = %format!("http://{}:{}", settings.bind_addr.ip(), running.port),
                docs = %format!(
                    "{}/docs",
                    running.settings.public_url.as_str().trim_end_matches('/')
                ),
                ?roles,
                "Tend is running"
            );
            if settings.mail_to_files() {
                tracing::info!(outbox = %settings.outbox_dir().display(), "no SMTP_URL: emails are written as .eml files");
            }
            telemetry::shutdown_signal().await;
            tracing::info!("shutting down: finishing requests and running jobs");
            running.shutdown.cancel();
            running.wait().await;
        }
    }
    Ok(())
}
