//! `/metrics` after real traffic, read by a Prometheus text parser.

use std::collections::HashMap;

use prometheus_parse::{LineInfo, SampleType, Scrape, Value};

use crate::clients::{Conn, Protocol};
use crate::harness::{Botora, unix_now};
use crate::site::Site;
use crate::{DOMAIN, SCHEMA};

/// Metric families of the README's table and their types.
const FAMILIES: [(&str, SampleType); 18] = [
    ("botora_requests_total", SampleType::Counter),
    ("botora_request_duration_seconds", SampleType::Histogram),
    ("botora_requests_in_flight", SampleType::Gauge),
    ("botora_open_connections", SampleType::Gauge),
    ("botora_connections_refused_total", SampleType::Counter),
    ("botora_tls_handshakes_total", SampleType::Counter),
    ("botora_sni_host_mismatch_total", SampleType::Counter),
    ("botora_tenant_cache_events_total", SampleType::Counter),
    ("botora_tenant_resolutions_total", SampleType::Counter),
    ("botora_db_pool_connections", SampleType::Gauge),
    ("botora_db_pool_checkout_seconds", SampleType::Histogram),
    ("botora_tenant_listen_connected", SampleType::Gauge),
    ("botora_config_reloads_total", SampleType::Counter),
    ("botora_config_loaded_timestamp_seconds", SampleType::Gauge),
    ("botora_password_hash_queue", SampleType::Gauge),
    ("botora_password_hash_rejected_total", SampleType::Counter),
    ("botora_token_failures_total", SampleType::Counter),
    ("botora_tenant_requests_total", SampleType::Counter),
];

/// The declared type of every family, checking that each line of the text
/// is a comment, a type, a sample or blank, and each sample is typed.
fn declared_types(text: &str) -> HashMap<String, SampleType> {
    let mut types = HashMap::new();
    for line in text.lines() {
        match LineInfo::parse(line) {
            LineInfo::Type {
                metric_name,
                metric_alias,
                sample_type,
            } => {
                types.insert(metric_alias.unwrap_or(metric_name), sample_type);
            }
            LineInfo::Sample {
                metric_name, value, ..
            } => {
                assert!(value.parse::<f64>().is_ok(), "not a number: {line:?}");
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| metric_name.strip_suffix(suffix))
                    .filter(|base| types.get(*base) == Some(&SampleType::Histogram))
                    .unwrap_or(metric_name);
                assert!(types.contains_key(family), "no TYPE before {line:?}");
            }
            LineInfo::Doc { .. } | LineInfo::Empty => {}
            LineInfo::Ignored => panic!("not Prometheus text: {line:?}"),
        }
    }
    types
}

/// The value of the counter `metric` with exactly `labels`.
fn counter(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let sample = scrape.samples.iter().find(|sample| {
        sample.metric == metric
            && sample.labels.len() == labels.len()
            && labels.iter().all(|(k, v)| sample.labels.get(k) == Some(*v))
    })?;
    match sample.value {
        Value::Counter(value) => Some(value),
        ref other => panic!("{metric} is not a counter: {other:?}"),
    }
}

/// Buckets rise with their bounds, end at `+Inf`, and `+Inf` is `_count`.
fn check_histograms(scrape: &Scrape) -> usize {
    let mut checked = 0;
    for sample in &scrape.samples {
        let Value::Histogram(buckets) = &sample.value else {
            continue;
        };
        let name = &sample.metric;
        assert!(!buckets.is_empty(), "{name} has no buckets");
        for pair in buckets.windows(2) {
            assert!(
                pair[0].less_than < pair[1].less_than,
                "{name}: bounds out of order"
            );
            assert!(pair[0].count <= pair[1].count, "{name}: buckets fall");
        }
        let last = buckets.last().expect("a bucket");
        assert!(last.less_than.is_infinite(), "{name} has no +Inf bucket");
        let count = scrape
            .samples
            .iter()
            .find(|other| other.metric == format!("{name}_count") && other.labels == sample.labels);
        let count = count.map(|other| other.value.clone());
        assert_eq!(count, Some(Value::Untyped(last.count)), "{name}_count");
        checked += 1;
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text() {
    let site = Site::prepare("metrics", "5s").await;
    let lapsed = ["tenant", "create", "--schema", "lapsed", "--name", "Lapsed"];
    let paid = ["--domain", "lapsed.test", "--paid-until", "2020-01-01"];
    site.cli(&[&lapsed[..], &paid[..]].concat(), None).await;
    let server = Botora::start(&site).await;

    // Traffic: a 200 over HTTPS, a 404, a 403, a 401 and a reload.
    let token = server.login().await;
    let (mut conn, _) = Conn::open(server.https, &site.file.cert.der, Protocol::Http2)
        .await
        .expect("handshake");
    assert_eq!(conn.posts(&token).await, Ok(()));
    let plain = |host: &str, token: &str| {
        let url = format!("http://{}/api/posts/", server.http);
        let request = server.web.get(url).header("Host", host).bearer_auth(token);
        async { request.send().await.expect("an answer").status().as_u16() }
    };
    assert_eq!(plain("nobody.test", &token).await, 404);
    assert_eq!(plain("lapsed.test", &token).await, 403);
    assert_eq!(plain(DOMAIN, "not.a.token").await, 401);
    let reloaded_after = unix_now().floor();
    server.signal("HUP").await;
    server.wait_reloads((1, 0)).await;

    // The whole body parses, and each family has the README's type.
    let (code, text) = server.admin_get("/metrics").await;
    assert_eq!(code, 200);
    let types = declared_types(&text);
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = Scrape::parse(lines).expect("Prometheus text");
    for (family, expected) in FAMILIES {
        assert_eq!(types.get(family), Some(&expected), "type of {family}");
        assert!(scrape.docs.contains_key(family), "no HELP for {family}");
    }

    // The requests we made, by route, method class and status.
    let requests = "botora_requests_total";
    let read = |route, status| [("route", route), ("method", "read"), ("status", status)];
    let ok = counter(&scrape, requests, &read("posts", "200"));
    assert!(ok >= Some(1.0), "posts 200: {ok:?}");
    let login = [("route", "token"), ("method", "write"), ("status", "200")];
    assert_eq!(counter(&scrape, requests, &login), Some(1.0));
    for status in ["404", "403"] {
        let seen = counter(&scrape, requests, &read("unmatched", status));
        assert_eq!(seen, Some(1.0), "unmatched {status}");
    }
    assert_eq!(counter(&scrape, requests, &read("posts", "401")), Some(1.0));

    // Other counters the traffic moved.
    let one = |metric, label, value| counter(&scrape, metric, &[(label, value)]);
    assert_eq!(
        one("botora_tls_handshakes_total", "outcome", "ok"),
        Some(1.0)
    );
    let resolutions = "botora_tenant_resolutions_total";
    assert_eq!(one(resolutions, "outcome", "not_found"), Some(1.0));
    assert_eq!(one(resolutions, "outcome", "inactive"), Some(1.0));
    assert!(one(resolutions, "outcome", "found") >= Some(3.0));
    assert_eq!(
        one("botora_config_reloads_total", "outcome", "success"),
        Some(1.0)
    );
    assert!(one("botora_tenant_requests_total", "tenant", SCHEMA) >= Some(2.0));
    let failures = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "botora_token_failures_total");
    assert_eq!(failures.count(), 1, "one token failure reason");

    // Gauges and histograms are well-formed.
    let gauge = |metric: &str| {
        let sample = scrape.samples.iter().find(|s| s.metric == metric);
        match sample.map(|s| &s.value) {
            Some(Value::Gauge(value)) => *value,
            other => panic!("{metric}: {other:?}"),
        }
    };
    assert_eq!(gauge("botora_tenant_listen_connected"), 1.0);
    let loaded = gauge("botora_config_loaded_timestamp_seconds");
    let reload = reloaded_after..=unix_now();
    assert!(
        reload.contains(&loaded),
        "loaded at {loaded}, reloaded {reload:?}"
    );
    assert!(check_histograms(&scrape) >= 3, "too few histograms");

    // Health and readiness.
    assert_eq!(server.admin_get("/healthz").await.0, 200);
    assert_eq!(server.admin_get("/readyz").await.0, 200);
}
