//! The LISTEN task: keeps every instance's domain directory and tenant
//! cache fresh.
//!
//! The triggers of `migrations/public/0002_tenant_notify.sql` send a
//! notification on channel `botora_tenants` for every change to tenants or
//! domains. This task holds one connection that listens for them. Once
//! `LISTEN` is in place it reads every domain into the directory; then it
//! applies each notification to the directory and drops the cached entries
//! it names. When the connection is lost it tells the resolver (which then
//! bypasses directory and cache), reconnects with back-off, and starts
//! again from a fresh read and an empty cache, so changes made while it was
//! away are never served stale.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use super::resolve::Resolver;
use crate::config::DatabaseConfig;
use crate::db::pg_config;
use crate::metrics::Metrics;

/// The channel the triggers notify.
pub const CHANNEL: &str = "botora_tenants";

/// Every domain name, for the directory.
const ALL_DOMAINS: &str = "SELECT domain::text FROM public.tenants_domain";

/// How often the idle LISTEN connection is checked for life.
const PING_EVERY: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What a notification says changed.
#[derive(Debug, Deserialize)]
struct Change {
    table: String,
    tenant_id: Option<i64>,
    old_tenant_id: Option<i64>,
    domain: Option<String>,
    old_domain: Option<String>,
}

/// Runs until `shutdown` turns true.
pub async fn run(
    database: DatabaseConfig,
    resolver: Arc<Resolver>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let session = listen_once(&database, &resolver, &metrics, &mut backoff);
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            reason = session => {
                resolver.stop_listening();
                metrics.listen_connected.set(0);
                tracing::warn!(%reason, retry_in = ?backoff, "tenant LISTEN connection lost; cache bypassed until it is back");
            }
        }
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: connect, LISTEN, apply notifications until it
/// fails. Returns why it ended.
async fn listen_once(
    database: &DatabaseConfig,
    resolver: &Resolver,
    metrics: &Metrics,
    backoff: &mut Duration,
) -> String {
    // Connect, and forward the connection's notifications to a channel.
    let config = match pg_config(database) {
        Ok(config) => config,
        Err(error) => return error.to_string(),
    };
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(pair) => pair,
        Err(error) => return format!("connect failed: {error}"),
    };
    let (sender, mut messages) = mpsc::unbounded_channel();
    let mut incoming = stream::poll_fn(move |cx| connection.poll_message(cx));
    let driver = tokio::spawn(async move {
        while let Some(message) = incoming.next().await {
            if sender.send(message).is_err() {
                break;
            }
        }
    });

    // Subscribe, then read every domain: a change committed after the read
    // is in a notification, and one before it is in the read (and maybe in
    // a notification too, which does no harm). Then serve from a fresh
    // cache.
    if let Err(error) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
        driver.abort();
        return format!("LISTEN failed: {error}");
    }
    let domains = match all_domains(&client).await {
        Ok(domains) => domains,
        Err(error) => {
            driver.abort();
            return format!("reading the domains failed: {error}");
        }
    };
    let known = domains.len();
    resolver.start_listening(domains);
    metrics.listen_connected.set(1);
    *backoff = Duration::from_millis(50);
    tracing::info!(
        channel = CHANNEL,
        domains = known,
        "listening for tenant changes"
    );

    // Apply notifications; ping when idle to notice a dead connection.
    let mut ping = tokio::time::interval(PING_EVERY);
    let reason = loop {
        tokio::select! {
            message = messages.recv() => match message {
                Some(Ok(AsyncMessage::Notification(note))) => {
                    if let Err(error) = apply(resolver, &client, note.payload()).await {
                        break format!("reloading the domains failed: {error}");
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => break format!("connection error: {error}"),
                None => break "connection closed".to_owned(),
            },
            _ = ping.tick() => {
                let alive = tokio::time::timeout(PING_EVERY, client.simple_query("")).await;
                if !matches!(alive, Ok(Ok(_))) {
                    break format!("no answer to a ping within {PING_EVERY:?}");
                }
            }
        }
    };
    driver.abort();
    reason
}

async fn all_domains(
    client: &tokio_postgres::Client,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client.query(ALL_DOMAINS, &[]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Applies a notification to the directory and drops the cache entries it
/// names. A notification that says everything changed, or that cannot be
/// read, reloads every domain on `client`.
async fn apply(
    resolver: &Resolver,
    client: &tokio_postgres::Client,
    payload: &str,
) -> Result<(), tokio_postgres::Error> {
    let change: Change = match serde_json::from_str(payload) {
        Ok(change) => change,
        Err(error) => {
            tracing::warn!(%error, payload, "unreadable tenant notification; reloading the domains");
            resolver.reload(all_domains(client).await?);
            return Ok(());
        }
    };
    tracing::debug!(table = %change.table, tenant.id = ?change.tenant_id, "tenant change");
    if change.table == "all" {
        resolver.reload(all_domains(client).await?);
        return Ok(());
    }
    if change.table == "domain" {
        resolver
            .domain_changed(change.old_domain.as_deref(), change.domain.as_deref())
            .await;
    }
    for id in [change.tenant_id, change.old_tenant_id]
        .into_iter()
        .flatten()
    {
        resolver.invalidate_tenant(id);
    }
    Ok(())
}
