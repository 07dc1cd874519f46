//! `botora demo`: a working demo from an empty database. Migrates, creates
//! two active tenants and one lapsed one with a user and a post each, an
//! operator, and a self-signed certificate for the demo domains, then
//! serves HTTP and HTTPS. Safe to run again: what exists is kept.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::Args;
use deadpool_postgres::Pool;

use crate::app::Settings;
use crate::auth::password;
use crate::config::{Config, TlsConfig};
use crate::db::{self, Scope, migrate};
use crate::listen::tls;
use crate::tenant::store::{self, NewTenant, StoreError};

#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Where the self-signed certificate is written.
    #[arg(long, default_value = "demo")]
    dir: PathBuf,
    /// HTTPS address; the HTTP one is `server.listen`.
    #[arg(long, default_value = "127.0.0.1:8443")]
    https: SocketAddr,
}

/// A tenant the demo creates, with its one user.
struct DemoTenant {
    schema: &'static str,
    name: &'static str,
    domain: &'static str,
    /// Year, month and day it is paid until; `None`: on trial.
    paid_until: Option<(i32, u32, u32)>,
    user: &'static str,
}

const TENANTS: [DemoTenant; 3] = [
    DemoTenant {
        schema: "acme",
        name: "Acme Corp",
        domain: "acme.localhost",
        paid_until: None,
        user: "alice",
    },
    DemoTenant {
        schema: "globex",
        name: "Globex",
        domain: "globex.localhost",
        paid_until: Some((2099, 12, 31)),
        user: "bob",
    },
    DemoTenant {
        schema: "lapsed",
        name: "Lapsed Ltd",
        domain: "lapsed.localhost",
        paid_until: Some((2020, 1, 1)),
        user: "carol",
    },
];
const DEMO_PASSWORD: &str = "demo-password";

pub(super) async fn run(
    path: PathBuf,
    mut config: Config,
    args: DemoArgs,
) -> anyhow::Result<ExitCode> {
    let pool = db::new_pool(&config.database)?;
    migrate::migrate_public(&pool).await?;
    let settings = Settings::build(config.clone())?;

    // Tenants, users and a post each; the operator in public.
    let encoded = password::make(DEMO_PASSWORD, config.auth.password_iterations);
    for tenant in &TENANTS {
        ensure_tenant(&pool, &settings, tenant).await?;
        ensure_user(&pool, tenant.schema, tenant.user, &encoded, false).await?;
    }
    ensure_user(&pool, "public", "admin", &encoded, true).await?;
    let pending = migrate::pending_tenants(&pool, None).await?;
    migrate::migrate_tenants(&pool, pending, 4, |_| {}).await;

    // A certificate for the demo domains, and HTTPS on.
    std::fs::create_dir_all(&args.dir)?;
    let mut names: Vec<String> = TENANTS.iter().map(|t| t.domain.to_owned()).collect();
    names.push("localhost".to_owned());
    let (cert, key) = tls::write_self_signed(&args.dir, &names)?;
    config.tls = Some(TlsConfig {
        listen: args.https,
        default_cert: cert,
        default_key: key,
        certs: Vec::new(),
        cert_dir: None,
        handshake_timeout: std::time::Duration::from_secs(10),
    });
    print_guide(&config, &args);
    super::serve(path, config).await
}

async fn ensure_tenant(
    pool: &Pool,
    settings: &Settings,
    tenant: &DemoTenant,
) -> anyhow::Result<()> {
    let paid = tenant.paid_until;
    let new = NewTenant {
        schema_name: tenant.schema.to_owned(),
        name: tenant.name.to_owned(),
        paid_until: paid.and_then(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d)),
        on_trial: paid.is_none(),
        domains: vec![tenant.domain.to_owned()],
    };
    match store::create(pool, &new, &settings.rules).await {
        Ok(_) | Err(StoreError::Taken { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

async fn ensure_user(
    pool: &Pool,
    schema: &str,
    username: &str,
    encoded: &str,
    superuser: bool,
) -> anyhow::Result<()> {
    let scope = Scope::begin(pool, schema).await?;
    let exists = scope
        .client()
        .query_opt("SELECT 1 FROM auth_user WHERE username = $1", &[&username])
        .await?
        .is_some();
    scope.commit().await?;
    if exists {
        return Ok(());
    }
    let id = super::tenants::create_user(pool, schema, username, "", encoded, superuser, superuser)
        .await?;
    if schema != "public" {
        let scope = Scope::begin(pool, schema).await?;
        let title = format!("Hello from {schema}");
        scope
            .client()
            .execute(
                "INSERT INTO blog_post (title, body, author_id, created_at, updated_at)
                 VALUES ($1, 'The first post of this tenant.', $2::int8, now(), now())",
                &[&title, &id],
            )
            .await?;
        scope.commit().await?;
    }
    Ok(())
}

fn print_guide(config: &Config, args: &DemoArgs) {
    let http = config.server.listen;
    let https = args.https;
    println!(
        "Botora demo: tenants acme (trial), globex (paid), lapsed (403); password {DEMO_PASSWORD:?}"
    );
    println!("  curl -s -H 'Host: acme.localhost' -H 'Content-Type: application/json' \\");
    println!(
        "       -d '{{\"username\":\"alice\",\"password\":\"{DEMO_PASSWORD}\"}}' http://{http}/api/token/"
    );
    println!(
        "  curl -sk --resolve acme.localhost:{port}:127.0.0.1 https://acme.localhost:{port}/api/posts/ \\",
        port = https.port()
    );
    println!("       -H \"Authorization: Bearer $ACCESS\"");
    println!(
        "  curl -s -H 'Host: lapsed.localhost' http://{http}/api/posts/   # 403 tenant_inactive"
    );
    println!("  metrics: http://{}/metrics", config.admin.listen);
}
