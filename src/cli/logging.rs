//! Log set-up: text or JSON lines to stderr, with a filter that SIGHUP can
//! change. `RUST_LOG`, when set, wins over `log.level`.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, reload};

use crate::config::{LogConfig, LogFormat};
use crate::reload::LogLevelSetter;

/// Installs the global subscriber; returns the setter a reload uses.
pub(super) fn init(log: &LogConfig) -> anyhow::Result<LogLevelSetter> {
    let from_env = std::env::var("RUST_LOG").ok();
    let filter = EnvFilter::try_new(from_env.as_deref().unwrap_or(&log.level))?;
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
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    }))
}

/// Plain log lines for one-shot commands.
pub(super) fn init_plain() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
