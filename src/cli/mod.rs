//! The `botora` command line: serve, check the config, migrate, and manage
//! tenants, domains and users. `anyhow` is used here, at the edge only.

mod demo;
mod logging;
mod migrate;
mod tenants;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

use crate::config;

/// A multi-tenant HTTP edge for django-tenants style PostgreSQL databases.
#[derive(Debug, Parser)]
#[command(name = "botora", version)]
pub struct Cli {
    /// The config file.
    #[arg(
        long,
        short,
        global = true,
        default_value = "config.toml",
        env = "BOTORA_CONFIG"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server until SIGTERM or SIGINT; SIGHUP reloads the config.
    Serve,
    /// Validate the config file and say what is wrong with it.
    Check,
    /// Apply pending migrations: public schema first, then every tenant.
    Migrate {
        /// Only this tenant's schema (after the public one).
        #[arg(long)]
        tenant: Option<String>,
        /// Tenants migrated at once.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
    },
    /// Create, list, show, update or delete tenants.
    #[command(subcommand)]
    Tenant(tenants::TenantCommand),
    /// Add or remove a tenant's domains.
    #[command(subcommand)]
    Domain(tenants::DomainCommand),
    /// Create users.
    #[command(subcommand)]
    User(tenants::UserCommand),
    /// Migrate, create the demo tenants, users and certificate, then serve.
    Demo(demo::DemoArgs),
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("botora: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Check = cli.command {
        return Ok(check(&cli.config));
    }
    let config = config::load(&cli.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve(cli.config, config).await,
            Command::Migrate { tenant, jobs } => {
                migrate::run(&config, tenant.as_deref(), jobs).await
            }
            Command::Tenant(command) => tenants::run_tenant(&config, command).await,
            Command::Domain(command) => tenants::run_domain(&config, command).await,
            Command::User(command) => tenants::run_user(&config, command).await,
            Command::Demo(args) => demo::run(cli.config, config, args).await,
            Command::Check => unreachable!("handled above"),
        }
    })
}

/// `botora check`: like `nginx -t`, the file, line and reason, or "ok".
fn check(path: &std::path::Path) -> ExitCode {
    let loaded = config::load(path)
        .map_err(|e| e.to_string())
        .and_then(|config| {
            crate::app::Settings::build(config)
                .map(|_| ())
                .map_err(|e| format!("{}: {e}", path.display()))
        });
    match loaded {
        Ok(()) => {
            println!("{}: configuration is valid", path.display());
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("{reason}");
            ExitCode::FAILURE
        }
    }
}

/// `botora serve`.
async fn serve(path: PathBuf, config: config::Config) -> anyhow::Result<ExitCode> {
    // Signal handlers first: until one is registered, SIGHUP and SIGTERM
    // keep their default action and would end the process mid-start. One
    // that comes early waits in its stream.
    let hangups = signal(SignalKind::hangup())?;
    let terminations = signal(SignalKind::terminate())?;

    let set_level = logging::init(&config.log)?;
    let app = crate::app::App::new(path, config)?;
    let server = crate::server::start(app.clone()).await?;
    tokio::spawn(crate::reload::on_sighup(app, hangups, Some(set_level)));
    crate::server::termination(terminations).await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
