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
    let mut changed = Vec::new();
    let mut check = |name: &'static str, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("server.listen", old.server.listen != new.server.listen);
    check(
        "server.header_read_timeout",
        old.server.header_read_timeout != new.server.header_read_timeout,
    );
    check(
        "server.max_connections",
        old.server.max_connections != new.server.max_connections,
    );
    check(
        "server.max_headers",
        old.server.max_headers != new.server.max_headers,
    );
    check("database.url", old.database.url != new.database.url);
    check(
        "database.pool_size",
        old.database.pool_size != new.database.pool_size,
    );
    check(
        "database.checkout_timeout",
        old.database.checkout_timeout != new.database.checkout_timeout,
    );
    check(
        "database.statement_timeout",
        old.database.statement_timeout != new.database.statement_timeout,
    );
    check("admin.listen", old.admin.listen != new.admin.listen);
    check("log.format", old.log.format != new.log.format);
    check(
        "auth.max_concurrent_hashes",
        old.auth.max_concurrent_hashes != new.auth.max_concurrent_hashes,
    );
    check(
        "auth.user_cache_ttl",
        old.auth.user_cache_ttl != new.auth.user_cache_ttl,
    );
    let tls_listen = |config: &Config| config.tls.as_ref().map(|tls| tls.listen);
    check("tls.listen", tls_listen(old) != tls_listen(new));
    changed
}

/// Reloads on every SIGHUP until the process ends.
pub async fn on_sighup(app: Arc<App>, set_log_level: Option<LogLevelSetter>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::error!("cannot listen for SIGHUP; config reload is off");
        return;
    };
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
