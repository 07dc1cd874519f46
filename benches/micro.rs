//! Micro-benchmarks of the per-request work: host normalisation, a tenant
//! lookup that hits the cache, token verification, JSON encoding of a post
//! page, and a password check at the test suite's iteration count.
//!
//! Run with `cargo bench --bench micro` (add `-- --quick` for a short run).
//! The cache-hit benchmark fills its cache from a real PostgreSQL
//! (`DATABASE_URL`, default the local server; it makes a database
//! `botora_micro` there) and is skipped, with a note, when none answers.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use botora::auth::password::{self, Verdict};
use botora::auth::token::{Keys, TokenType};
use botora::config::{AuthConfig, Config, KeyConfig};
use botora::db::{self, migrate};
use botora::metrics::Metrics;
use botora::tenant::host;
use botora::tenant::resolve::Resolver;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use serde::{Serialize, Serializer};

/// PBKDF2 iterations of the integration tests' password hashes.
const ITERATIONS: u32 = 1_000;
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

fn hosts(c: &mut Criterion) {
    let mut group = c.benchmark_group("host_normalize");
    let cases = [
        ("plain", "acme.example.com"),
        ("mixed_case_port_www", "WWW.Acme.Example.COM:8080"),
        ("ipv6_port", "[2001:db8::1]:8443"),
    ];
    for (name, raw) in cases {
        group.bench_function(name, |b| b.iter(|| host::normalize(black_box(raw))));
    }
    group.finish();
}

/// Host of the one tenant the cache-hit benchmark resolves.
const CACHED_HOST: &str = "acme.micro.test";

fn cache_hits(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let resolver = match runtime.block_on(filled_resolver()) {
        Ok(resolver) => resolver,
        Err(error) => {
            eprintln!("tenant_lookup/cache_hit skipped: no database ({error})");
            return;
        }
    };
    c.bench_function("tenant_lookup/cache_hit", |b| {
        b.to_async(&runtime)
            .iter(|| async { resolver.lookup(black_box(CACHED_HOST)).await })
    });
}

/// A resolver whose cache holds [`CACHED_HOST`], looked up once for real.
async fn filled_resolver() -> anyhow::Result<Resolver> {
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = 'botora_micro'",
            &[],
        )
        .await?;
    if exists.is_none() {
        client.batch_execute("CREATE DATABASE botora_micro").await?;
    }
    let mut config = Config::default();
    config.database.url = format!(
        "{}/botora_micro",
        server.rsplit_once('/').map_or("", |s| s.0)
    );
    let pool = db::new_pool(&config.database)?;
    migrate::migrate_public(&pool).await?;
    pool.get()
        .await?
        .batch_execute(&format!(
            "INSERT INTO public.tenants_client (schema_name, name, on_trial, created_on)
             VALUES ('acme', 'Acme', true, current_date) ON CONFLICT DO NOTHING;
             INSERT INTO public.tenants_domain (domain, tenant_id, is_primary)
             SELECT '{CACHED_HOST}', id, true FROM public.tenants_client
             WHERE schema_name = 'acme' ON CONFLICT DO NOTHING;"
        ))
        .await?;
    let resolver = Resolver::new(pool, &config.tenancy, Arc::new(Metrics::new(0)?));
    resolver.start_listening([CACHED_HOST.to_owned()]);
    anyhow::ensure!(
        resolver.lookup(CACHED_HOST).await?.is_some(),
        "tenant not found"
    );
    Ok(resolver)
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
}

fn hs256_keys() -> Keys {
    let auth = AuthConfig {
        algorithm: "HS256".into(),
        signing_key: Some("a-benchmark-signing-key-long-enough-for-hs256".into()),
        ..AuthConfig::default()
    };
    Keys::from_config(&auth).expect("HS256 keys")
}

fn eddsa_keys() -> Keys {
    let key = KeyConfig {
        kid: "ed".into(),
        algorithm: "EdDSA".into(),
        secret: None,
        private_key: Some(fixture("eddsa.key")),
        public_key: Some(fixture("eddsa.pub")),
    };
    let auth = AuthConfig {
        keys: vec![key],
        ..AuthConfig::default()
    };
    Keys::from_config(&auth).expect("EdDSA keys")
}

fn tokens(c: &mut Criterion) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut group = c.benchmark_group("token_verify");
    for (name, keys) in [("hs256", hs256_keys()), ("eddsa", eddsa_keys())] {
        let token = keys
            .mint(TokenType::Access, "7", "acme", TOKEN_LIFETIME, now)
            .expect("mint");
        keys.decode(&token, now, 0).expect("a fresh token verifies");
        group.bench_function(name, |b| b.iter(|| keys.decode(black_box(&token), now, 0)));
    }
    group.finish();
}

/// A post shaped as `/api/posts/` writes it.
#[derive(Serialize)]
struct Post {
    id: i64,
    title: String,
    body: String,
    author: Author,
    #[serde(serialize_with = "rfc3339")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    updated_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct Author {
    id: i64,
    username: String,
}

#[derive(Serialize)]
struct Page {
    count: i64,
    next: Option<String>,
    previous: Option<String>,
    results: Vec<Post>,
}

fn rfc3339<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// Page 1 of 50 posts, 20 to a page, with short bodies as the load test's.
fn sample_page() -> Page {
    let start = Utc.with_ymd_and_hms(2025, 12, 3, 18, 0, 0).unwrap();
    let results = (1..=20)
        .map(|n| Post {
            id: 51 - n,
            title: format!("Post number {n} about tenants"),
            body: "A short body of a benchmark post, about a line long.".into(),
            author: Author {
                id: 1,
                username: "bench".into(),
            },
            created_at: start - chrono::Duration::microseconds(n * 1_000_123),
            updated_at: start,
        })
        .collect();
    Page {
        count: 50,
        next: Some("http://t001.bench/api/posts/?page=2".into()),
        previous: None,
        results,
    }
}

fn json(c: &mut Criterion) {
    let page = sample_page();
    let mut group = c.benchmark_group("json_post_page");
    group.bench_function("to_vec", |b| {
        b.iter(|| serde_json::to_vec(black_box(&page)))
    });
    // The handler today goes through a `Value` first, then to bytes.
    group.bench_function("via_value", |b| {
        b.iter(|| {
            let value = serde_json::to_value(black_box(&page)).unwrap_or_default();
            serde_json::to_vec(&value)
        })
    });
    group.finish();
}

fn passwords(c: &mut Criterion) {
    let encoded = password::make("correct horse battery staple", ITERATIONS);
    let verdict = password::verify("correct horse battery staple", &encoded, ITERATIONS);
    assert_eq!(
        verdict,
        Verdict::Match {
            needs_rehash: false
        }
    );
    c.bench_function("password_verify_pbkdf2_1000", |b| {
        b.iter(|| {
            password::verify(
                black_box("correct horse battery staple"),
                &encoded,
                ITERATIONS,
            )
        })
    });
}

criterion_group!(micro, hosts, cache_hits, tokens, json, passwords);
criterion_main!(micro);
