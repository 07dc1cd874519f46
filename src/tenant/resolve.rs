//! From a normalised host to a tenant, through the domain directory and a
//! moka cache.
//!
//! A host that is not in the [`Directory`] is refused at once: no query,
//! nothing cached. Any other host goes through the cache, which holds both
//! answers: a tenant, and "no such host" (for the rare name the directory
//! keeps a moment after its row is gone). Concurrent misses on one host
//! share a single database lookup, and misses on many hosts share a query
//! ([`super::lookup`]). [`super::notify`] keeps the directory and the cache
//! fresh when `tenants_client` or `tenants_domain` change; while it is not
//! listening, lookups bypass both so that nothing stale is served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;

use super::Tenant;
use super::directory::Directory;
use super::lookup::Lookups;
use crate::config::TenancyConfig;
use crate::db::DbError;
use crate::metrics::Metrics;

/// What the cache remembers of a host.
#[derive(Debug, Clone)]
pub enum Cached {
    /// The host belongs to this tenant.
    Found(Arc<Tenant>),
    /// No domain row has this host.
    Missing,
}

type HostCache = Cache<String, Cached>;

/// Host → tenant lookups, cached.
pub struct Resolver {
    cache: ArcSwap<HostCache>,
    directory: Directory,
    lookups: Lookups,
    listening: AtomicBool,
    /// Bumped by every invalidation, so a lookup that raced one can tell.
    generation: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Resolver {
    /// A resolver with an empty cache sized by `settings`. It bypasses the
    /// directory and the cache until [`Resolver::start_listening`] says
    /// invalidations flow.
    pub fn new(
        pool: deadpool_postgres::Pool,
        settings: &TenancyConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            cache: ArcSwap::from_pointee(build_cache(settings, &metrics)),
            directory: Directory::new(),
            lookups: Lookups::new(pool),
            listening: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            metrics,
        }
    }

    /// The tenant owning `host` (already normalised), or `None`.
    pub async fn lookup(&self, host: &str) -> Result<Option<Arc<Tenant>>, DbError> {
        if !self.listening.load(Ordering::Acquire) {
            self.metrics
                .tenant_cache
                .with_label_values(&["bypass"])
                .inc();
            return Ok(self.lookups.find(host).await?.map(Arc::new));
        }
        if self.directory.knows(host) == Some(false) {
            self.metrics
                .tenant_cache
                .with_label_values(&["unknown"])
                .inc();
            return Ok(None);
        }
        let cache = self.cache.load();
        let generation = self.generation.load(Ordering::Acquire);
        let entry = cache
            .entry_by_ref(host)
            .or_try_insert_with(self.load(host))
            .await
            .map_err(DbError::Shared)?;
        let outcome = if entry.is_fresh() { "miss" } else { "hit" };
        self.metrics
            .tenant_cache
            .with_label_values(&[outcome])
            .inc();

        // An invalidation while we queried may have come before our insert.
        if entry.is_fresh() && self.generation.load(Ordering::Acquire) != generation {
            cache.invalidate(host).await;
        }
        Ok(match entry.into_value() {
            Cached::Found(tenant) => Some(tenant),
            Cached::Missing => None,
        })
    }

    async fn load(&self, host: &str) -> Result<Cached, DbError> {
        Ok(match self.lookups.find(host).await? {
            Some(tenant) => Cached::Found(Arc::new(tenant)),
            None => Cached::Missing,
        })
    }

    /// Records that domain row `old` is gone and `new` exists (either may
    /// be absent), as a notification says, and drops what is cached for
    /// both.
    pub async fn domain_changed(&self, old: Option<&str>, new: Option<&str>) {
        self.directory.apply(old, new);
        for domain in [old, new].into_iter().flatten() {
            self.invalidate_domain(domain).await;
        }
    }

    /// Records a domain this instance has just committed, so that its
    /// first request does not wait for the notification.
    pub async fn domain_added(&self, domain: &str) {
        self.directory.add(domain);
        self.invalidate_domain(domain).await;
    }

    /// Drops what is cached for `domain`.
    pub async fn invalidate_domain(&self, domain: &str) {
        self.bump();
        let key = domain.to_ascii_lowercase();
        self.cache.load().invalidate(&key).await;
    }

    /// Drops every cached host of tenant `id`.
    pub fn invalidate_tenant(&self, id: i64) {
        self.bump();
        let predicate = move |_: &String, cached: &Cached| matches!(cached, Cached::Found(tenant) if tenant.id == id);
        if let Err(error) = self.cache.load().invalidate_entries_if(predicate) {
            tracing::warn!(%error, tenant.id = id, "cannot invalidate by tenant; clearing the cache");
            self.clear();
        }
    }

    /// Drops everything cached.
    pub fn clear(&self) {
        self.bump();
        self.cache.load().invalidate_all();
    }

    /// Invalidations flow from now on: `domains` (every domain, read after
    /// `LISTEN`) fill the directory, and the cache starts empty.
    pub fn start_listening(&self, domains: impl IntoIterator<Item = String>) {
        self.directory.fill(domains);
        self.clear();
        self.listening.store(true, Ordering::Release);
    }

    /// Invalidations have stopped: until [`Resolver::start_listening`],
    /// every host is looked up in the database.
    pub fn stop_listening(&self) {
        self.listening.store(false, Ordering::Release);
        self.directory.forget();
    }

    /// Reloads the directory from `domains` and empties the cache, when a
    /// notification says everything may have changed (a `TRUNCATE`).
    pub fn reload(&self, domains: impl IntoIterator<Item = String>) {
        self.directory.fill(domains);
        self.clear();
    }

    /// The domain directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Replaces the cache with an empty one sized by new settings.
    pub fn reconfigure(&self, settings: &TenancyConfig) {
        self.bump();
        self.cache
            .store(Arc::new(build_cache(settings, &self.metrics)));
    }

    /// Entries currently cached (approximate, as moka counts).
    pub fn cached_entries(&self) -> u64 {
        self.cache.load().entry_count()
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.metrics
            .tenant_cache
            .with_label_values(&["invalidation"])
            .inc();
    }
}

struct Lifetimes {
    found: Duration,
    missing: Duration,
}

impl Expiry<String, Cached> for Lifetimes {
    fn expire_after_create(&self, _: &String, value: &Cached, _: Instant) -> Option<Duration> {
        Some(match value {
            Cached::Found(_) => self.found,
            Cached::Missing => self.missing,
        })
    }
}

fn build_cache(settings: &TenancyConfig, metrics: &Arc<Metrics>) -> HostCache {
    let metrics = Arc::clone(metrics);
    Cache::builder()
        .max_capacity(settings.cache_capacity)
        .expire_after(Lifetimes {
            found: settings.positive_ttl,
            missing: settings.negative_ttl,
        })
        .support_invalidation_closures()
        .eviction_listener(move |_, _, cause| {
            if cause == RemovalCause::Size {
                metrics.tenant_cache.with_label_values(&["eviction"]).inc();
            }
        })
        .build()
}
