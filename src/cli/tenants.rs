//! `botora tenant …`, `botora domain …` and `botora user create`: thin
//! wrappers over the same store the admin API uses.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::NaiveDate;
use clap::Subcommand;
use deadpool_postgres::Pool;

use crate::app::Settings;
use crate::auth::password;
use crate::config::Config;
use crate::db::{self, Scope};
use crate::tenant::store::{self, NewTenant, TenantInfo, TenantPatch};

#[derive(Debug, Subcommand)]
pub(super) enum TenantCommand {
    /// Create a tenant: schema, tables, row and domains, all or nothing.
    Create {
        /// Schema name (`^[a-z_][a-z0-9_]{0,62}$`).
        #[arg(long)]
        schema: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// A domain; repeat for more. The first is primary.
        #[arg(long = "domain", required = true)]
        domains: Vec<String>,
        /// Paid up to this day (YYYY-MM-DD).
        #[arg(long)]
        paid_until: Option<NaiveDate>,
        /// Put the tenant on trial.
        #[arg(long)]
        on_trial: bool,
    },
    /// List every tenant.
    List,
    /// Show one tenant.
    Show {
        /// Schema name.
        schema: String,
    },
    /// Change a tenant's name, payment or trial.
    Update {
        /// Schema name.
        schema: String,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// New paid-until day (YYYY-MM-DD), or `none` to clear it.
        #[arg(long)]
        paid_until: Option<String>,
        /// New trial flag.
        #[arg(long)]
        on_trial: Option<bool>,
    },
    /// Delete a tenant's row and domains, and drop its schema.
    Delete {
        /// Schema name.
        schema: String,
        /// Keep the schema and its data.
        #[arg(long)]
        keep_schema: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum DomainCommand {
    /// Add a domain to a tenant.
    Add {
        /// Schema name.
        schema: String,
        /// The domain.
        domain: String,
    },
    /// Remove a domain from a tenant.
    Remove {
        /// Schema name.
        schema: String,
        /// The domain.
        domain: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum UserCommand {
    /// Create a user; the password is read from a prompt, or from the first
    /// line of standard input when it is not a terminal.
    Create {
        /// Login name.
        username: String,
        /// The tenant; without it the user is an operator of the public schema.
        #[arg(long)]
        tenant: Option<String>,
        /// Email address.
        #[arg(long, default_value = "")]
        email: String,
        /// Make the user a superuser (and staff).
        #[arg(long)]
        superuser: bool,
        /// Make the user staff.
        #[arg(long)]
        staff: bool,
    },
}

fn setup(config: &Config) -> anyhow::Result<(Pool, Settings)> {
    super::logging::init_plain();
    let pool = db::new_pool(&config.database)?;
    let settings = Settings::build(config.clone())?;
    Ok((pool, settings))
}

fn print(info: &TenantInfo) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(info)?);
    Ok(())
}

pub(super) async fn run_tenant(
    config: &Config,
    command: TenantCommand,
) -> anyhow::Result<ExitCode> {
    let (pool, settings) = setup(config)?;
    match command {
        TenantCommand::Create {
            schema,
            name,
            domains,
            paid_until,
            on_trial,
        } => {
            let new = NewTenant {
                schema_name: schema,
                name,
                paid_until,
                on_trial,
                domains,
            };
            print(&store::create(&pool, &new, &settings.rules).await?)?;
        }
        TenantCommand::List => {
            let (count, tenants) = store::list(&pool, 0, i64::MAX).await?;
            for info in &tenants {
                let domains: Vec<&str> = info.domains.iter().map(|d| d.domain.as_str()).collect();
                let state = if info.tenant.is_active(settings.today()) {
                    "active"
                } else {
                    "inactive"
                };
                println!(
                    "{}\t{}\t{state}\t{}",
                    info.tenant.schema_name,
                    info.tenant.name,
                    domains.join(",")
                );
            }
            println!("{count} tenants");
        }
        TenantCommand::Show { schema } => print(&store::get(&pool, &schema).await?)?,
        TenantCommand::Update {
            schema,
            name,
            paid_until,
            on_trial,
        } => {
            let paid_until = match paid_until.as_deref() {
                None => None,
                Some("none") => Some(None),
                Some(day) => Some(Some(
                    day.parse::<NaiveDate>()
                        .context("--paid-until wants YYYY-MM-DD or none")?,
                )),
            };
            let patch = TenantPatch {
                name,
                paid_until,
                on_trial,
            };
            print(&store::update(&pool, &schema, &patch).await?)?;
        }
        TenantCommand::Delete {
            schema,
            keep_schema,
        } => {
            store::delete(&pool, &schema, keep_schema).await?;
            println!("deleted {schema}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn run_domain(
    config: &Config,
    command: DomainCommand,
) -> anyhow::Result<ExitCode> {
    let (pool, settings) = setup(config)?;
    match command {
        DomainCommand::Add { schema, domain } => {
            let added = store::add_domain(&pool, &schema, &domain, &settings.rules).await?;
            println!(
                "added {} to {schema} (primary: {})",
                added.domain, added.is_primary
            );
        }
        DomainCommand::Remove { schema, domain } => {
            store::remove_domain(&pool, &schema, &domain).await?;
            println!("removed {domain} from {schema}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn run_user(config: &Config, command: UserCommand) -> anyhow::Result<ExitCode> {
    let (pool, _) = setup(config)?;
    let UserCommand::Create {
        username,
        tenant,
        email,
        superuser,
        staff,
    } = command;
    let schema = tenant.unwrap_or_else(|| "public".to_owned());
    if schema != "public" {
        store::get(&pool, &schema)
            .await
            .with_context(|| format!("no tenant with schema {schema:?}"))?;
    }
    let password = read_password()?;
    let iterations = config.auth.password_iterations;
    let encoded =
        tokio::task::spawn_blocking(move || password::make(&password, iterations)).await?;
    let id = create_user(
        &pool, &schema, &username, &email, &encoded, superuser, staff,
    )
    .await?;
    println!("created user {username} (id {id}) in {schema}");
    Ok(ExitCode::SUCCESS)
}

/// Inserts a user with an already-hashed password; returns its id.
pub(crate) async fn create_user(
    pool: &Pool,
    schema: &str,
    username: &str,
    email: &str,
    encoded: &str,
    superuser: bool,
    staff: bool,
) -> anyhow::Result<i64> {
    let length = username.chars().count();
    anyhow::ensure!(
        (1..=150).contains(&length),
        "username must be 1 to 150 characters"
    );
    let scope = Scope::begin(pool, schema).await?;
    let row = scope
        .client()
        .query_one(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                 email, is_staff, is_active, date_joined)
             VALUES ($1, $2, $3, '', '', $4, $5, true, now()) RETURNING id::int8",
            &[
                &encoded,
                &superuser,
                &username,
                &email,
                &(staff || superuser),
            ],
        )
        .await
        .with_context(|| format!("cannot create user {username:?} in {schema}"))?;
    scope.commit().await?;
    Ok(row.get(0))
}

fn read_password() -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Password (again): ")?;
        anyhow::ensure!(first == again, "the passwords differ");
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    anyhow::ensure!(
        password.len() <= password::MAX_PASSWORD_LEN,
        "the password is too long"
    );
    Ok(password)
}
