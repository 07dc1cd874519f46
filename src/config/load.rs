//! Reading `config.toml`: parse, apply environment overrides, validate.
//!
//! Errors name the file, the line and the reason, like `nginx -t`, so that
//! `botora check` and a refused SIGHUP reload say exactly what to fix.

use std::path::{Path, PathBuf};

use super::Config;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema.
    #[error("{path}:{line}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem (0 when unknown).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The values parse but are not usable.
    #[error("{path}:{line}: {key}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the key (0 when it is not in the file).
        line: usize,
        /// Dotted name of the setting.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// Reads, parses and validates the file at `path`, then applies the
/// `BOTORA_*` environment overrides.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Parses and validates `text` as if read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    // Step 1: TOML into the typed structs; unknown keys are refused here.
    let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        line: e.span().map_or(0, |span| line_at(text, span.start)),
        reason: e.message().to_owned(),
    })?;

    // Step 2: secrets and per-deployment values from the environment.
    apply_env(&mut config, |name| std::env::var(name).ok()).map_err(|(key, reason)| {
        ConfigError::Invalid {
            path: path.to_owned(),
            line: 0,
            key,
            reason,
        }
    })?;

    // Step 3: cross-field checks, each pointing at the key's line.
    validate(&config).map_err(|(key, reason)| ConfigError::Invalid {
        path: path.to_owned(),
        line: line_of_key(text, &key),
        key,
        reason,
    })?;
    Ok(config)
}

type Problem = (String, String);

fn apply_env(config: &mut Config, var: impl Fn(&str) -> Option<String>) -> Result<(), Problem> {
    if let Some(url) = var("BOTORA_DATABASE_URL") {
        config.database.url = url;
    }
    if let Some(key) = var("BOTORA_SIGNING_KEY") {
        config.auth.signing_key = Some(key);
    }
    if let Some(listen) = var("BOTORA_LISTEN") {
        config.server.listen = listen.parse().map_err(|e| {
            (
                "BOTORA_LISTEN".to_owned(),
                format!("{listen:?} is not an address: {e}"),
            )
        })?;
    }
    if let Some(listen) = var("BOTORA_ADMIN_LISTEN") {
        config.admin.listen = listen.parse().map_err(|e| {
            (
                "BOTORA_ADMIN_LISTEN".to_owned(),
                format!("{listen:?} is not an address: {e}"),
            )
        })?;
    }
    Ok(())
}

/// hyper refuses (panics on) an HTTP/1 read buffer smaller than this.
const MIN_HEADER_BYTES: usize = 8192;

fn validate(config: &Config) -> Result<(), Problem> {
    let problem = |key: &str, reason: String| Err((key.to_owned(), reason));

    if config.server.max_body_bytes == 0 {
        return problem("server.max_body_bytes", "must be above 0".into());
    }
    if config.server.max_header_bytes < MIN_HEADER_BYTES {
        let floor = MIN_HEADER_BYTES;
        return problem(
            "server.max_header_bytes",
            format!("must be at least {floor}"),
        );
    }
    if config.database.pool_size == 0 {
        return problem("database.pool_size", "must be above 0".into());
    }
    if let Err(e) = config.database.url.parse::<tokio_postgres::Config>() {
        return problem("database.url", format!("not a PostgreSQL URL: {e}"));
    }
    if config.tenancy.timezone.parse::<chrono_tz::Tz>().is_err() {
        let tz = &config.tenancy.timezone;
        return problem("tenancy.timezone", format!("unknown time zone {tz:?}"));
    }
    for host in &config.tenancy.public_hosts {
        if crate::tenant::host::normalize(host).is_err() {
            return problem(
                "tenancy.public_hosts",
                format!("{host:?} is not a host name"),
            );
        }
    }
    if config.tenancy.cache_capacity == 0 {
        return problem("tenancy.cache_capacity", "must be above 0".into());
    }
    if config.api.page_size == 0 || config.api.page_size > 1000 {
        return problem("api.page_size", "must be between 1 and 1000".into());
    }
    if config.auth.password_iterations == 0 {
        return problem("auth.password_iterations", "must be above 0".into());
    }
    crate::auth::token::Keys::from_config(&config.auth)
        .map_err(|e| ("auth.keys".to_owned(), e.to_string()))?;
    if let Some(tls) = &config.tls {
        crate::listen::tls::CertStore::load(tls).map_err(|e| ("tls".to_owned(), e.to_string()))?;
    }
    Ok(())
}

/// 1-based line holding byte `offset` of `text`.
fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Best-effort line of `section.key` in `text`: the first `key =` line under
/// a `[section]` header (or the header itself). 0 when not found.
fn line_of_key(text: &str, dotted: &str) -> usize {
    let (section, key) = dotted.rsplit_once('.').unwrap_or((dotted, ""));
    let mut in_section = false;
    let mut header_line = 0;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = name.trim() == section;
            if in_section {
                header_line = index + 1;
            }
            continue;
        }
        let assigned = line.split('=').next().map(str::trim);
        if in_section && !key.is_empty() && assigned == Some(key) {
            return index + 1;
        }
    }
    header_line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("test.toml"), text)
    }

    #[test]
    fn a_file_with_only_the_key_gives_defaults() {
        let config =
            parse_str("[auth]\nsigning_key = \"0123456789abcdef0123456789abcdef\"\n").unwrap();
        assert_eq!(config.api.page_size, 20);
        assert_eq!(config.tenancy.public_hosts, vec!["localhost"]);
    }

    #[test]
    fn syntax_error_names_the_line() {
        let err = parse_str("[server]\nlisten = \n").unwrap_err().to_string();
        assert!(err.starts_with("test.toml:2:"), "{err}");
    }

    #[test]
    fn unknown_key_is_refused_with_its_line() {
        let err = parse_str("[api]\npage_size = 5\nfoo = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("test.toml:3:"), "{err}");
        assert!(err.contains("foo"), "{err}");
    }

    #[test]
    fn wrong_type_is_refused() {
        let err = parse_str("[api]\npage_size = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("test.toml:2:"), "{err}");
    }

    #[test]
    fn invalid_value_names_key_and_line() {
        let text = "[api]\npage_size = 5\n[tenancy]\n\ntimezone = \"Mars/Base\"\n";
        let err = parse_str(text).unwrap_err().to_string();
        assert_eq!(
            err,
            "test.toml:5: tenancy.timezone: unknown time zone \"Mars/Base\""
        );
    }

    #[test]
    fn a_header_limit_below_hypers_floor_is_refused() {
        let key = "[auth]\nsigning_key = \"0123456789abcdef0123456789abcdef\"\n";
        let err = parse_str(&format!("[server]\nmax_header_bytes = 4096\n{key}"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "test.toml:2: server.max_header_bytes: must be at least 8192"
        );
        assert!(parse_str(&format!("[server]\nmax_header_bytes = 8192\n{key}")).is_ok());
    }

    #[test]
    fn unreadable_path_is_an_error() {
        let err = load(Path::new("/nonexistent/botora.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
    }

    #[test]
    fn env_overrides_apply() {
        let mut config = Config::default();
        let env = |name: &str| match name {
            "BOTORA_DATABASE_URL" => Some("postgres://x@h/db".to_owned()),
            "BOTORA_LISTEN" => Some("127.0.0.1:1".to_owned()),
            _ => None,
        };
        apply_env(&mut config, env).unwrap();
        assert_eq!(config.database.url, "postgres://x@h/db");
        assert_eq!(config.server.listen.port(), 1);
    }

    #[test]
    fn bad_env_address_is_refused() {
        let mut config = Config::default();
        let env = |name: &str| (name == "BOTORA_LISTEN").then(|| "nowhere".to_owned());
        assert!(apply_env(&mut config, env).is_err());
    }
}
