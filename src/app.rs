//! The state every request shares: the config in force (swapped whole on
//! reload), the pool, the tenant resolver, metrics and the hashing pool.
//! It travels as an `Arc<App>`; nothing is global.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use chrono::NaiveDate;
use chrono_tz::Tz;
use deadpool_postgres::Pool;

use crate::auth::hashing::Hasher;
use crate::auth::token::Keys;
use crate::auth::users::UserCache;
use crate::config::Config;
use crate::db::{self, SetupError};
use crate::listen::tls;
use crate::metrics::Metrics;
use crate::tenant::host;
use crate::tenant::resolve::Resolver;
use crate::tenant::store::Rules;

/// A config, checked and turned into what requests use.
pub struct Settings {
    /// The config as read.
    pub config: Config,
    /// `tenancy.public_hosts`, normalised.
    pub public_hosts: HashSet<String>,
    /// `tenancy.timezone`.
    pub timezone: Tz,
    /// Signing and verifying keys.
    pub keys: Keys,
    /// Rules for new tenants and domains.
    pub rules: Rules,
    /// When this config was loaded.
    pub loaded_at: SystemTime,
}

/// Why a config could not be put in force.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value that parsed but cannot be used.
    #[error("{0}")]
    Invalid(String),
}

impl Settings {
    /// Derives everything requests need from `config`.
    pub fn build(config: Config) -> Result<Settings, SettingsError> {
        let invalid = |e: &dyn std::fmt::Display| SettingsError::Invalid(e.to_string());
        let timezone = config
            .tenancy
            .timezone
            .parse::<Tz>()
            .map_err(|e| invalid(&e))?;
        let keys = Keys::from_config(&config.auth).map_err(|e| invalid(&e))?;
        let mut public_hosts = HashSet::new();
        for raw in &config.tenancy.public_hosts {
            let normalised = host::normalize(raw).map_err(|e| invalid(&format!("{raw:?}: {e}")))?;
            public_hosts.insert(normalised.into_owned());
        }
        let rules = Rules {
            reserved_schemas: config.tenancy.reserved_schemas.clone(),
            public_hosts: public_hosts.iter().cloned().collect(),
        };
        Ok(Settings {
            config,
            public_hosts,
            timezone,
            keys,
            rules,
            loaded_at: SystemTime::now(),
        })
    }

    /// Today in `tenancy.timezone`, the day `paid_until` is compared with.
    pub fn today(&self) -> NaiveDate {
        chrono::Utc::now()
            .with_timezone(&self.timezone)
            .date_naive()
    }
}

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config is unusable.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The pool could not be built.
    #[error(transparent)]
    Database(#[from] SetupError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Certificates could not be loaded.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Shared state of a running server.
pub struct App {
    settings: ArcSwap<Settings>,
    /// The file the config came from (re-read on SIGHUP).
    pub config_path: PathBuf,
    /// Connections for requests.
    pub pool: Pool,
    /// Host → tenant.
    pub resolver: Arc<Resolver>,
    /// Everything counted.
    pub metrics: Arc<Metrics>,
    /// The bounded pool that computes password hashes.
    pub hasher: Hasher,
    /// Recently checked users, for token authentication.
    pub users: UserCache,
    /// Certificates by name, when HTTPS is on.
    pub certs: Option<Arc<tls::Resolver>>,
}

impl App {
    /// Builds the app from a loaded config. Connects to nothing yet.
    pub fn new(config_path: PathBuf, config: Config) -> Result<Arc<App>, StartError> {
        let metrics = Arc::new(Metrics::new(config.admin.tenant_label_cap)?);
        let pool = db::new_request_pool(&config.database)?;
        let resolver = Arc::new(Resolver::new(
            pool.clone(),
            &config.tenancy,
            Arc::clone(&metrics),
        ));
        let hasher = Hasher::new(&config.auth, Arc::clone(&metrics));
        let users = UserCache::new(config.auth.user_cache_ttl);
        let certs = match &config.tls {
            Some(tls_config) => Some(Arc::new(tls::Resolver::new(tls::CertStore::load(
                tls_config,
            )?))),
            None => None,
        };
        let settings = Settings::build(config)?;
        metrics.config_loaded.set(unix_seconds(settings.loaded_at));
        Ok(Arc::new(App {
            settings: ArcSwap::from_pointee(settings),
            config_path,
            pool,
            resolver,
            metrics,
            hasher,
            users,
            certs,
        }))
    }

    /// The config in force now. Hold it for a whole request, so that one
    /// request never mixes two configs.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.load_full()
    }

    /// Puts new settings in force for requests that start from now on.
    pub fn replace_settings(&self, settings: Settings) {
        self.metrics
            .config_loaded
            .set(unix_seconds(settings.loaded_at));
        self.settings.store(Arc::new(settings));
    }

    /// Publishes the pool's state to the metrics.
    pub fn observe_pool(&self) {
        let status = self.pool.status();
        let gauge = |state: &str, value: usize| {
            self.metrics
                .pool
                .with_label_values(&[state])
                .set(value as i64);
        };
        gauge("size", status.size);
        gauge("available", status.available);
        gauge("waiting", status.waiting);
    }
}

fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
