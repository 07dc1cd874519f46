//! Log set-up: text or JSON lines to stderr, with a filter that SIGHUP can
//! change. `RUST_LOG`, when set, wins over `log.level`.
//!
//! tokio-postgres logs every statement's parameters at `debug`, password
//! hashes included, so its level stays at `info` unless the filter names
//! it explicitly.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, reload};

use crate::config::{LogConfig, LogFormat};
use crate::reload::LogLevelSetter;

/// Installs the global subscriber; returns the setter a reload uses.
pub(super) fn init(log: &LogConfig) -> anyhow::Result<LogLevelSetter> {
    let from_env = std::env::var("RUST_LOG").ok();
    let filter = EnvFilter::try_new(directives(from_env.as_deref().unwrap_or(&log.level)))?;
    let (filter, handle) = reload::Layer::new(filter);
    let output = match log.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()?;
    Ok(Box::new(move |level: &str| {
        if from_env.is_some() {
            return Ok(());
        }
        let filter = EnvFilter::try_new(directives(level)).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    }))
}

/// The filter for `level`, with the database driver held at `info` unless
/// `level` says otherwise.
fn directives(level: &str) -> String {
    match level.contains("tokio_postgres") {
        true => level.to_owned(),
        false => format!("{level},tokio_postgres=info"),
    }
}

/// Plain log lines for one-shot commands.
pub(super) fn init_plain() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn the_driver_never_logs_parameters_unless_asked() {
        assert_eq!(directives("debug"), "debug,tokio_postgres=info");
        assert_eq!(
            directives("warn,botora=debug"),
            "warn,botora=debug,tokio_postgres=info"
        );
        assert_eq!(directives("tokio_postgres=trace"), "tokio_postgres=trace");
        assert!(tracing_subscriber::EnvFilter::try_new(directives("debug")).is_ok());
    }
}
