//! Prometheus metrics, in a registry owned by the app (not the global one),
//! so that tests running side by side each count their own.
//!
//! Labels are bounded: routes are the matched route's name or `unmatched`,
//! never a raw path or host. A per-tenant label is opt-in and capped
//! (`admin.tenant_label_cap`) because tenants are unbounded in number.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric Botora exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method class and status.
    pub requests: IntCounterVec,
    /// Request latency by route.
    pub request_duration: HistogramVec,
    /// Requests being served now.
    pub in_flight: IntGauge,
    /// Open client connections by listener (`http`, `https`).
    pub connections: IntGaugeVec,
    /// Connections refused because `server.max_connections` was reached.
    pub connections_refused: IntCounter,
    /// TLS handshakes by outcome (`ok`, `failed`, `timeout`).
    pub tls_handshakes: IntCounterVec,
    /// Requests whose SNI and Host named different tenants.
    pub sni_mismatches: IntCounter,
    /// Tenant cache events: `hit`, `miss`, `bypass`, `eviction`, `invalidation`.
    pub tenant_cache: IntCounterVec,
    /// Tenant resolution outcomes: `found`, `public`, `not_found`, `inactive`, `bad_host`, `error`.
    pub resolutions: IntCounterVec,
    /// Pool state: `size`, `available`, `waiting`.
    pub pool: IntGaugeVec,
    /// Time to check a connection out of the pool.
    pub pool_checkout: Histogram,
    /// 1 while the tenant LISTEN connection is up.
    pub listen_connected: IntGauge,
    /// Config reloads by outcome (`success`, `failure`).
    pub reloads: IntCounterVec,
    /// Unix time the running config was loaded.
    pub config_loaded: IntGauge,
    /// Password hashes waiting for or holding a hashing slot.
    pub hash_queue: IntGauge,
    /// Logins refused because no hashing slot freed up in time.
    pub hash_rejected: IntCounter,
    /// Token failures by reason.
    pub token_failures: IntCounterVec,
    /// Requests by tenant (only when opted in), capped.
    pub tenant_requests: IntCounterVec,
    tenant_label_cap: usize,
    tenants_labelled: Mutex<HashSet<String>>,
}

impl Metrics {
    /// Registers every metric in a new registry.
    pub fn new(tenant_label_cap: usize) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(metric.clone()))?;
                Ok(metric)
            };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let metric = IntGauge::new(name, help)?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let single = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let metric = IntCounter::new(name, help)?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };

        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "botora_request_duration_seconds",
                "Time from request head to response head.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route"],
        )?;
        registry.register(Box::new(request_duration.clone()))?;
        let pool_checkout = Histogram::with_opts(
            HistogramOpts::new(
                "botora_db_pool_checkout_seconds",
                "Time to get a pooled connection.",
            )
            .buckets(vec![
                0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0,
            ]),
        )?;
        registry.register(Box::new(pool_checkout.clone()))?;
        let connections = IntGaugeVec::new(
            Opts::new("botora_open_connections", "Open client connections."),
            &["listener"],
        )?;
        registry.register(Box::new(connections.clone()))?;
        let pool = IntGaugeVec::new(
            Opts::new("botora_db_pool_connections", "Database pool state."),
            &["state"],
        )?;
        registry.register(Box::new(pool.clone()))?;

        Ok(Metrics {
            requests: counter(
                "botora_requests_total",
                "Requests served.",
                &["route", "method", "status"],
            )?,
            request_duration,
            in_flight: gauge("botora_requests_in_flight", "Requests being served.")?,
            connections,
            connections_refused: single(
                "botora_connections_refused_total",
                "Connections closed at the connection limit.",
            )?,
            tls_handshakes: counter(
                "botora_tls_handshakes_total",
                "TLS handshakes by outcome.",
                &["outcome"],
            )?,
            sni_mismatches: single(
                "botora_sni_host_mismatch_total",
                "Requests whose SNI and Host named different tenants.",
            )?,
            tenant_cache: counter(
                "botora_tenant_cache_events_total",
                "Tenant cache events.",
                &["event"],
            )?,
            resolutions: counter(
                "botora_tenant_resolutions_total",
                "Tenant resolution outcomes.",
                &["outcome"],
            )?,
            pool,
            pool_checkout,
            listen_connected: gauge(
                "botora_tenant_listen_connected",
                "1 while the tenant LISTEN connection is up.",
            )?,
            reloads: counter(
                "botora_config_reloads_total",
                "Config reloads by outcome.",
                &["outcome"],
            )?,
            config_loaded: gauge(
                "botora_config_loaded_timestamp_seconds",
                "Unix time the running config was loaded.",
            )?,
            hash_queue: gauge(
                "botora_password_hash_queue",
                "Password hashes waiting or running.",
            )?,
            hash_rejected: single(
                "botora_password_hash_rejected_total",
                "Logins refused for want of a hashing slot.",
            )?,
            token_failures: counter(
                "botora_token_failures_total",
                "Token failures by reason.",
                &["reason"],
            )?,
            tenant_requests: counter(
                "botora_tenant_requests_total",
                "Requests by tenant (opt-in, capped).",
                &["tenant"],
            )?,
            tenant_label_cap,
            tenants_labelled: Mutex::new(HashSet::new()),
            registry,
        })
    }

    /// Counts a request for `schema` when the tenant label is enabled: the
    /// first `tenant_label_cap` tenants get their own label, the rest `other`.
    pub fn count_tenant(&self, schema: &str) {
        if self.tenant_label_cap == 0 {
            return;
        }
        let label = {
            let mut seen = self
                .tenants_labelled
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if seen.contains(schema) || seen.len() < self.tenant_label_cap {
                seen.insert(schema.to_owned());
                schema
            } else {
                "other"
            }
        };
        self.tenant_requests.with_label_values(&[label]).inc();
    }

    /// The registry in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(error) = encoder.encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%error, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
