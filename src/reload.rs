//! SIGHUP: re-read `config.toml` and put it in force without dropping a
//! connection. Read, parse, validate, then swap; a file that fails any step
//! is refused with a log line naming the file, line and reason, and the old
//! config keeps serving.

use std::sync::Arc;

use crate::app::{App, Settings};
use crate::config::{self, Config};
use crate::listen::tls;

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file did not load.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// It loaded but could not be put in force.
    #[error("{path}: {reason}")]
    Settings {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// A callback that changes the log filter (the tracing reload handle).
pub type LogLevelSetter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Re-reads the config file and swaps it in. Returns the settings that
/// changed but need a restart to take effect.
pub fn reload(
    app: &App,
    set_log_level: Option<&LogLevelSetter>,
) -> Result<Vec<&'static str>, ReloadError> {
    let outcome = try_reload(app, set_log_level);
    let label = if outcome.is_ok() {
        "success"
    } else {
        "failure"
    };
    app.metrics.reloads.with_label_values(&[label]).inc();
    outcome
}

fn try_reload(
    app: &App,
    set_log_level: Option<&LogLevelSetter>,
) -> Result<Vec<&'static str>, ReloadError> {
    let path = app.config_path.display().to_string();
    let refuse = |reason: String| ReloadError::Settings {
        path: path.clone(),
        reason,
    };

    // Step 1: read, parse and validate everything, certificates included.
    let new = config::load(&app.config_path)?;
    let certs = match &new.tls {
        Some(tls_config) => {
            Some(tls::CertStore::load(tls_config).map_err(|e| refuse(e.to_string()))?)
        }
        None => None,
    };
    let settings = Settings::build(new).map_err(|e| refuse(e.to_string()))?;
    if let Some(setter) = set_log_level {
        setter(&settings.config.log.level).map_err(|e| refuse(format!("log.level: {e}")))?;
    }

    // Step 2: swap in what can change while running.
    let old = app.settings();
    let needs_restart = restart_only_changes(&old.config, &settings.config);
    if let (Some(resolver), Some(store)) = (&app.certs, certs) {
        resolver.replace(store);
    }
    let tenancy_changed = cache_settings(&old.config) != cache_settings(&settings.config);
    app.replace_settings(settings);
    if tenancy_changed {
        app.resolver.reconfigure(&app.settings().config.tenancy);
    }
    Ok(needs_restart)
}

fn cache_settings(config: &Config) -> (u64, std::time::Duration, std::time::Duration) {
    let tenancy = &config.tenancy;
    (
        tenancy.cache_capacity,
        tenancy.positive_ttl,
        tenancy.negative_ttl,
    )
}

/// Settings that differ between `old` and `new` but only take effect on a
/// restart, so the operator can be told rather than ignored.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let tls_listen = |config: &Config| config.tls.as_ref().map(|tls| tls.listen);
    let (o, n) = (old, new);
    let differs = [
        ("server.listen", o.server.listen != n.server.listen),
        (
            "server.header_read_timeout",
            o.server.header_read_timeout != n.server.header_read_timeout,
        ),
        (
            "server.max_connections",
            o.server.max_connections != n.server.max_connections,
        ),
        (
            "server.max_headers",
            o.server.max_headers != n.server.max_headers,
        ),
        (
            "server.max_header_bytes",
            o.server.max_header_bytes != n.server.max_header_bytes,
        ),
        ("database.url", o.database.url != n.database.url),
        (
            "database.pool_size",
            o.database.pool_size != n.database.pool_size,
        ),
        (
            "database.checkout_timeout",
            o.database.checkout_timeout != n.database.checkout_timeout,
        ),
        (
            "database.connect_timeout",
            o.database.connect_timeout != n.database.connect_timeout,
        ),
        (
            "database.statement_timeout",
            o.database.statement_timeout != n.database.statement_timeout,
        ),
        ("admin.listen", o.admin.listen != n.admin.listen),
        (
            "admin.tenant_label_cap",
            o.admin.tenant_label_cap != n.admin.tenant_label_cap,
        ),
        ("log.format", o.log.format != n.log.format),
        (
            "auth.max_concurrent_hashes",
            o.auth.max_concurrent_hashes != n.auth.max_concurrent_hashes,
        ),
        (
            "auth.user_cache_ttl",
            o.auth.user_cache_ttl != n.auth.user_cache_ttl,
        ),
        ("tls.listen", tls_listen(o) != tls_listen(n)),
    ];
    differs
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
}

/// Reloads on every SIGHUP delivered to `hangups` until the process ends.
/// Signals that come close together are coalesced into one reload.
pub async fn on_sighup(
    app: Arc<App>,
    mut hangups: tokio::signal::unix::Signal,
    set_log_level: Option<LogLevelSetter>,
) {
    while hangups.recv().await.is_some() {
        match reload(&app, set_log_level.as_ref()) {
            Ok(restart) if restart.is_empty() => {
                tracing::info!(config.path = %app.config_path.display(), "config reloaded");
            }
            Ok(restart) => tracing::warn!(
                config.path = %app.config_path.display(),
                needs_restart = ?restart,
                "config reloaded; some changes need a restart to take effect"
            ),
            Err(error) => {
                tracing::error!(%error, "config reload refused; the old config stays in force")
            }
        }
    }
}
