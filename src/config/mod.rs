//! Botora's configuration: plain serde structs read from `config.toml`.
//!
//! Every field documents its default and whether a SIGHUP reload changes it.
//! Loading, environment overrides and validation live in [`load`].

mod load;

pub use load::{ConfigError, load, parse};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The public HTTP listener and its limits.
    pub server: ServerConfig,
    /// The optional HTTPS listener.
    pub tls: Option<TlsConfig>,
    /// The PostgreSQL database and its pool.
    pub database: DatabaseConfig,
    /// How hosts map to tenants.
    pub tenancy: TenancyConfig,
    /// Passwords and tokens.
    pub auth: AuthConfig,
    /// Behaviour of the JSON API.
    pub api: ApiConfig,
    /// Logging.
    pub log: LogConfig,
    /// The operators' listener (metrics and health).
    pub admin: AdminConfig,
}

/// The plain HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:8000`. Env `BOTORA_LISTEN`.
    /// Needs a restart.
    pub listen: SocketAddr,
    /// Largest request body in bytes. Default 1 MiB. Reloadable.
    pub max_body_bytes: usize,
    /// Time a client has to send the request head. Default 10s. Needs a
    /// restart (it is set on the connection builder).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// An idle keep-alive connection is closed after this. Default 60s.
    /// Applies to connections accepted after a reload.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Longest time one request may take before `503`. Default 30s.
    /// Reloadable.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// On SIGTERM/SIGINT, in-flight requests get this long to finish.
    /// Default 10s. Reloadable.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Most open client connections; past it new ones are closed at once.
    /// Default 10,000. Needs a restart.
    pub max_connections: usize,
    /// Most request headers per request (more is `431`). Default 100.
    /// Needs a restart.
    pub max_headers: usize,
    /// Largest HTTP/1 request head in bytes (request line and headers);
    /// past it hyper answers `431`. Default 64 KiB, at least 8 KiB (hyper's
    /// floor). Needs a restart.
    pub max_header_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            max_body_bytes: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            max_connections: 10_000,
            max_headers: 100,
            max_header_bytes: 64 * 1024,
        }
    }
}

/// The HTTPS listener. Absent means no HTTPS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Address to listen on, for example `0.0.0.0:8443`. Needs a restart.
    pub listen: SocketAddr,
    /// Certificate chain (PEM) served when no other name matches. Reloadable.
    pub default_cert: PathBuf,
    /// Private key (PEM) of `default_cert`. Reloadable.
    pub default_key: PathBuf,
    /// Extra certificates; each is served for the names it covers
    /// (exact and `*.` wildcard). Default none. Reloadable.
    #[serde(default)]
    pub certs: Vec<CertPair>,
    /// A directory of `name.pem` + `name.key` pairs, loaded like `certs`.
    /// Default none. Reloadable.
    #[serde(default)]
    pub cert_dir: Option<PathBuf>,
    /// Time a client has to finish the TLS handshake. Default 10s.
    /// Reloadable.
    #[serde(default = "default_handshake_timeout", with = "humantime_serde")]
    pub handshake_timeout: Duration,
}

fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}

/// One certificate chain and its key, both PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertPair {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key.
    pub key: PathBuf,
}

/// The database and its pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// libpq-style URL. Default `postgres://postgres@127.0.0.1:5432/botora`.
    /// Env `BOTORA_DATABASE_URL`. Needs a restart.
    pub url: String,
    /// Most pooled connections. Default 16. Needs a restart.
    pub pool_size: usize,
    /// Longest wait for a pooled connection before `503`. Default 2s.
    /// Needs a restart.
    #[serde(with = "humantime_serde")]
    pub checkout_timeout: Duration,
    /// Longest time to open a new connection. Default 2s. Needs a restart.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// `statement_timeout` of every pooled connection. Default 5s.
    /// Needs a restart.
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/botora".into(),
            pool_size: 16,
            checkout_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

/// Tenant resolution.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenancyConfig {
    /// Hosts served by the public (operators') API. Default `["localhost"]`.
    /// Reloadable.
    pub public_hosts: Vec<String>,
    /// IANA time zone in which `paid_until` is compared with today.
    /// Default `UTC`. Reloadable.
    pub timezone: String,
    /// Schema names `tenant create` refuses, beside the built-in ones.
    /// Default none. Reloadable.
    pub reserved_schemas: Vec<String>,
    /// Most cached host lookups (found and not found). Default 100,000.
    /// Reloadable (the cache is rebuilt empty).
    pub cache_capacity: u64,
    /// Lifetime of a cached tenant. Default 5m. Reloadable.
    #[serde(with = "humantime_serde")]
    pub positive_ttl: Duration,
    /// Lifetime of a cached "no such host". Default 30s. Reloadable.
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        Self {
            public_hosts: vec!["localhost".into()],
            timezone: "UTC".into(),
            reserved_schemas: Vec::new(),
            cache_capacity: 100_000,
            positive_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(30),
        }
    }
}

/// Passwords and tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Algorithm of `signing_key`: `HS256` (default), `HS384` or `HS512`.
    /// Ignored when `keys` is set (each key names its own). Reloadable.
    pub algorithm: String,
    /// HMAC secret for the HS algorithms (Django's `SECRET_KEY` when
    /// tokens are shared with simplejwt). Env `BOTORA_SIGNING_KEY`.
    /// Reloadable.
    pub signing_key: Option<String>,
    /// Keys for rotation: the first signs, all verify. Default none.
    /// Reloadable.
    pub keys: Vec<KeyConfig>,
    /// Access token lifetime. Default 5m. Reloadable.
    #[serde(with = "humantime_serde")]
    pub access_lifetime: Duration,
    /// Refresh token lifetime. Default 1d. Reloadable.
    #[serde(with = "humantime_serde")]
    pub refresh_lifetime: Duration,
    /// Clock skew allowed on `exp`. Default 0s. Reloadable.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// Return a new refresh token from `/api/token/refresh/`. Default
    /// false. Reloadable.
    pub rotate_refresh_tokens: bool,
    /// Accept tokens with no `tenant` claim (minted by Django). Default
    /// false. Reloadable.
    pub accept_unbound_tokens: bool,
    /// PBKDF2 iterations of new password hashes. Default 1,000,000.
    /// Reloadable.
    pub password_iterations: u32,
    /// Most password hashes computed at once. Default: the number of
    /// CPUs. Needs a restart.
    pub max_concurrent_hashes: Option<usize>,
    /// How long a login waits for a hashing slot before `503`.
    /// Default 2s. Reloadable.
    #[serde(with = "humantime_serde")]
    pub hash_queue_timeout: Duration,
    /// How long a user's active flag may be cached for token checks.
    /// Default 1s. Needs a restart.
    #[serde(with = "humantime_serde")]
    pub user_cache_ttl: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            algorithm: "HS256".into(),
            signing_key: None,
            keys: Vec::new(),
            access_lifetime: Duration::from_secs(300),
            refresh_lifetime: Duration::from_secs(86_400),
            leeway: Duration::ZERO,
            rotate_refresh_tokens: false,
            accept_unbound_tokens: false,
            password_iterations: 1_000_000,
            max_concurrent_hashes: None,
            hash_queue_timeout: Duration::from_secs(2),
            user_cache_ttl: Duration::from_secs(1),
        }
    }
}

/// One signing or verifying key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The `kid` header of tokens signed with this key.
    pub kid: String,
    /// Algorithm of this key, as `auth.algorithm`.
    pub algorithm: String,
    /// HMAC secret (HS algorithms).
    pub secret: Option<String>,
    /// PEM private key (asymmetric algorithms; needed to sign).
    pub private_key: Option<PathBuf>,
    /// PEM public key (asymmetric algorithms).
    pub public_key: Option<PathBuf>,
}

/// The JSON API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Page size of paginated lists. Default 20. Reloadable.
    pub page_size: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self { page_size: 20 }
    }
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `botora=debug`. Default `info`.
    /// Env `RUST_LOG` wins when set. Reloadable.
    pub level: String,
    /// `text` (default) or `json`. Needs a restart.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The operators' listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of `/metrics`, `/healthz` and `/readyz`. Default
    /// `127.0.0.1:9090`. Env `BOTORA_ADMIN_LISTEN`. Needs a restart.
    pub listen: SocketAddr,
    /// Label request metrics with the tenant's schema, for at most this
    /// many tenants (the rest share `other`). Default 0: no tenant label.
    /// Needs a restart.
    pub tenant_label_cap: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            tenant_label_cap: 0,
        }
    }
}
