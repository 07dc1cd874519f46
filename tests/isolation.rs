//! Tenant isolation under load: 20 tenants, 50,000 mixed requests from 64
//! concurrent clients (HTTP/1.1 and HTTP/2), some of them cancelled by the
//! client mid-flight. No body may carry another tenant's marker, domain,
//! user or post id; tokens never cross tenants; every acknowledged write is
//! in its own schema afterwards; nothing answers 5xx; and the pool ends
//! with every connection back and none idle in a transaction.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use botora::db::Scope;
use botora::tenant::store::{self, NewTenant, Rules};
use common::*;
use rand::rngs::SmallRng;
use rand::{RngExt as _, SeedableRng as _};
use serde_json::{Value, json};

const TENANTS: usize = 20;
const REQUESTS: usize = 50_000;
const CLIENTS: usize = 64;
/// Every fourth client speaks HTTP/2.
const HTTP2_EVERY: usize = 4;
/// Posts each tenant starts with; never deleted, so page 2 always exists.
const SEED_POSTS: i64 = 40;
/// Tenant `n`'s post ids lie in `n * ID_STRIDE + 1 ..= (n + 1) * ID_STRIDE`.
const ID_STRIDE: i64 = 1_000_000;
/// One request in this many is cancelled after a random short delay.
const CANCEL_ONE_IN: u32 = 20;
const PASSWORD: &str = "iso-password";
/// In titles sent with a token of another tenant: must never be stored.
const FORGED: &str = "iso-forged";

/// One tenant and what its clients need.
struct Site {
    index: usize,
    schema: String,
    domain: String,
    mark: String,
    seeds: Vec<i64>,
    access: String,
    refresh: String,
    bob: String,
    /// Ids created (201) and not yet picked for deletion.
    live: Mutex<Vec<i64>>,
    /// Ids acknowledged by a 201.
    created: Mutex<Vec<i64>>,
    /// Ids acknowledged by a 204.
    deleted: Mutex<Vec<i64>>,
    /// Ids whose delete was cancelled: their fate is unknown.
    unsure: Mutex<Vec<i64>>,
}

impl Site {
    fn ids(&self) -> std::ops::RangeInclusive<i64> {
        let base = self.index as i64 * ID_STRIDE;
        base + 1..=base + ID_STRIDE
    }
}

fn mark(index: usize) -> String {
    format!("iso-mark-{index:02}")
}

fn domain(index: usize) -> String {
    format!("t{index:02}.iso.test")
}

fn alice(index: usize) -> String {
    format!("alice-{index:02}")
}

/// Creates tenant `index`: its users, its id range and its seed posts.
async fn build_site(pool: &deadpool_postgres::Pool, index: usize) -> (String, Vec<i64>) {
    let schema = unique("iso_t");
    let new = NewTenant {
        schema_name: schema.clone(),
        name: format!("Tenant {}", mark(index)),
        paid_until: None,
        on_trial: true,
        domains: vec![domain(index)],
    };
    store::create(pool, &new, &Rules::default())
        .await
        .expect("tenant");
    common::wait_for_domain(&domain(index)).await;
    let author = user(pool, &schema, &alice(index), PASSWORD, false).await;
    user(pool, &schema, &format!("bob-{index:02}"), PASSWORD, false).await;

    // Post ids of this tenant start at its own stride.
    let scope = Scope::begin(pool, &schema).await.unwrap();
    let client = scope.client();
    let start = index as i64 * ID_STRIDE;
    client
        .execute(
            "SELECT setval(pg_get_serial_sequence('blog_post', 'id'), $1::int8 + 1, false)",
            &[&start],
        )
        .await
        .unwrap();
    let rows = client
        .query(
            "INSERT INTO blog_post (title, body, author_id, created_at, updated_at)
             SELECT $1 || ' seed ' || n, 'body of ' || $1, $2::int8,
                    now() - n * interval '1 second', now()
             FROM generate_series(1, $3::int8) AS n RETURNING id",
            &[&mark(index), &author, &SEED_POSTS],
        )
        .await
        .unwrap();
    scope.commit().await.unwrap();
    (schema, rows.iter().map(|row| row.get(0)).collect())
}

async fn build_sites(server: &TestServer) -> Vec<Site> {
    let fixtures = pool();
    let mut sites = Vec::with_capacity(TENANTS);
    for index in 0..TENANTS {
        let (schema, seeds) = build_site(&fixtures, index).await;
        let (access, refresh) = server.login(&domain(index), &alice(index), PASSWORD).await;
        let bob = format!("bob-{index:02}");
        let (bob, _) = server.login(&domain(index), &bob, PASSWORD).await;
        sites.push(Site {
            index,
            schema,
            domain: domain(index),
            mark: mark(index),
            seeds,
            access,
            refresh,
            bob,
            live: Mutex::default(),
            created: Mutex::default(),
            deleted: Mutex::default(),
            unsure: Mutex::default(),
        });
    }
    sites
}

/// What a request is for, and so which statuses it may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    List,
    ListPage2,
    ReadSeed,
    ReadCreated,
    Me,
    TenantInfo,
    Create,
    Patch,
    Delete,
    Login,
    BadLogin,
    Refresh,
    UnknownId,
    BadJson,
    BadTitle,
    BadPage,
    NotAuthor,
    ForeignAccess,
    ForeignCreate,
    ForeignRefresh,
}

/// Kinds and their weights per thousand requests.
const MIX: [(Kind, u32); 20] = [
    (Kind::List, 220),
    (Kind::ListPage2, 60),
    (Kind::ReadSeed, 150),
    (Kind::ReadCreated, 60),
    (Kind::Me, 40),
    (Kind::TenantInfo, 30),
    (Kind::Create, 120),
    (Kind::Patch, 70),
    (Kind::Delete, 50),
    (Kind::Login, 6),
    (Kind::BadLogin, 4),
    (Kind::Refresh, 17),
    (Kind::UnknownId, 30),
    (Kind::BadJson, 25),
    (Kind::BadTitle, 20),
    (Kind::BadPage, 20),
    (Kind::NotAuthor, 25),
    (Kind::ForeignAccess, 30),
    (Kind::ForeignCreate, 10),
    (Kind::ForeignRefresh, 13),
];

fn pick_kind(rng: &mut SmallRng) -> Kind {
    let mut roll = rng.random_range(0..MIX.iter().map(|(_, w)| w).sum::<u32>());
    for (kind, weight) in MIX {
        if roll < weight {
            return kind;
        }
        roll -= weight;
    }
    unreachable!("the roll is below the sum of the weights")
}

/// One planned request.
struct Call {
    kind: Kind,
    method: reqwest::Method,
    path: String,
    token: Option<String>,
    body: Option<String>,
    /// The created post this call reads, patches or deletes.
    target: Option<i64>,
}

impl Call {
    fn new(kind: Kind, method: reqwest::Method, path: impl Into<String>) -> Call {
        Call {
            kind,
            method,
            path: path.into(),
            token: None,
            body: None,
            target: None,
        }
    }

    fn token(mut self, token: &str) -> Call {
        self.token = Some(token.to_owned());
        self
    }

    fn body(mut self, body: Value) -> Call {
        self.body = Some(body.to_string());
        self
    }
}

/// The run's shared state.
struct Run {
    sites: Vec<Site>,
    base: String,
    http1: reqwest::Client,
    http2: reqwest::Client,
    counts: Mutex<BTreeMap<(Kind, u16), u64>>,
    cancelled: AtomicU64,
    violations: Mutex<Vec<String>>,
}

impl Run {
    fn violation(&self, text: String) {
        let mut violations = self.violations.lock().unwrap();
        if violations.len() < 50 {
            violations.push(text);
        }
    }
}

fn plan(run: &Run, site: &Site, rng: &mut SmallRng, serial: &str) -> Call {
    use reqwest::Method;
    let other = &run.sites[(site.index + rng.random_range(1..TENANTS)) % TENANTS];
    let seed = site.seeds[rng.random_range(0..site.seeds.len())];
    let title = format!("{} {serial}", site.mark);
    let login = |password: &str| json!({"username": alice(site.index), "password": password});
    let kind = pick_kind(rng);
    let created = {
        let live = site.live.lock().unwrap();
        (!live.is_empty()).then(|| live[rng.random_range(0..live.len())])
    };
    match (kind, created) {
        (Kind::List, _) => Call::new(kind, Method::GET, "/api/posts/").token(&site.access),
        (Kind::ListPage2, _) => {
            Call::new(kind, Method::GET, "/api/posts/?page=2").token(&site.access)
        }
        (Kind::ReadCreated, Some(id)) => {
            let call = Call::new(kind, Method::GET, format!("/api/posts/{id}/"));
            Call {
                target: Some(id),
                ..call.token(&site.access)
            }
        }
        (Kind::Patch, Some(id)) => {
            let call = Call::new(kind, Method::PATCH, format!("/api/posts/{id}/"));
            let call = call.token(&site.access).body(json!({"title": title}));
            Call {
                target: Some(id),
                ..call
            }
        }
        (Kind::Delete, Some(_)) => {
            let Some(id) = site.live.lock().unwrap().pop() else {
                return Call::new(Kind::Me, Method::GET, "/api/me/").token(&site.access);
            };
            let call = Call::new(kind, Method::DELETE, format!("/api/posts/{id}/"));
            Call {
                target: Some(id),
                ..call.token(&site.access)
            }
        }
        (Kind::ReadSeed | Kind::ReadCreated | Kind::Patch | Kind::Delete, _) => {
            Call::new(Kind::ReadSeed, Method::GET, format!("/api/posts/{seed}/"))
                .token(&site.access)
        }
        (Kind::Me, _) => Call::new(kind, Method::GET, "/api/me/").token(&site.access),
        (Kind::TenantInfo, _) => Call::new(kind, Method::GET, "/api/tenant/").token(&site.access),
        (Kind::Create, _) => Call::new(kind, Method::POST, "/api/posts/")
            .token(&site.access)
            .body(json!({"title": title, "body": format!("body of {title}")})),
        (Kind::Login, _) => Call::new(kind, Method::POST, "/api/token/").body(login(PASSWORD)),
        (Kind::BadLogin, _) => Call::new(kind, Method::POST, "/api/token/").body(login("wrong")),
        (Kind::Refresh, _) => Call::new(kind, Method::POST, "/api/token/refresh/")
            .body(json!({"refresh": site.refresh})),
        (Kind::UnknownId, _) => {
            let id = site.index as i64 * ID_STRIDE + ID_STRIDE - rng.random_range(1..1000);
            Call::new(kind, Method::GET, format!("/api/posts/{id}/")).token(&site.access)
        }
        (Kind::BadJson, _) => {
            let call = Call::new(kind, Method::POST, "/api/posts/").token(&site.access);
            Call {
                body: Some(format!("{{\"title\": \"{title}\", ")),
                ..call
            }
        }
        (Kind::BadTitle, _) => Call::new(kind, Method::POST, "/api/posts/")
            .token(&site.access)
            .body(json!({"title": "x".repeat(201), "body": title})),
        (Kind::BadPage, _) => {
            let page = ["abc", "0", "-1", "999"][rng.random_range(0..4)];
            Call::new(kind, Method::GET, format!("/api/posts/?page={page}")).token(&site.access)
        }
        (Kind::NotAuthor, _) => Call::new(kind, Method::PATCH, format!("/api/posts/{seed}/"))
            .token(&site.bob)
            .body(json!({"title": title})),
        (Kind::ForeignAccess, _) => {
            let path = ["/api/posts/", "/api/me/", "/api/tenant/"][rng.random_range(0..3)];
            Call::new(kind, Method::GET, path).token(&other.access)
        }
        (Kind::ForeignCreate, _) => Call::new(kind, Method::POST, "/api/posts/")
            .token(&other.access)
            .body(json!({"title": format!("{FORGED} {serial}"), "body": FORGED})),
        (Kind::ForeignRefresh, _) => {
            let path = ["/api/token/refresh/", "/api/token/verify/"][rng.random_range(0..2)];
            let body = match path.ends_with("refresh/") {
                true => json!({"refresh": other.refresh}),
                false => json!({"token": other.access}),
            };
            Call::new(kind, Method::POST, path).body(body)
        }
    }
}

/// The statuses `call` may get. A created post may be gone by the time its
/// read or patch arrives, but only if a delete took it off the live list.
fn allowed(site: &Site, call: &Call) -> &'static [u16] {
    let gone = || {
        call.target
            .is_some_and(|id| !site.live.lock().unwrap().contains(&id))
    };
    match call.kind {
        Kind::List | Kind::ListPage2 | Kind::ReadSeed | Kind::Me | Kind::TenantInfo => &[200],
        Kind::Login | Kind::Refresh => &[200],
        Kind::ReadCreated | Kind::Patch if gone() => &[200, 404],
        Kind::ReadCreated | Kind::Patch => &[200],
        Kind::Delete => &[204, 404],
        Kind::Create => &[201],
        Kind::BadLogin | Kind::ForeignAccess | Kind::ForeignCreate | Kind::ForeignRefresh => &[401],
        Kind::UnknownId | Kind::BadPage => &[404],
        Kind::BadJson | Kind::BadTitle => &[400],
        Kind::NotAuthor => &[403],
    }
}

async fn send(run: &Run, site: &Site, call: &Call, http2: bool) -> reqwest::Result<(u16, String)> {
    let port = run.base.rsplit(':').next().unwrap_or_default();
    let request = match http2 {
        true => run.http2.request(
            call.method.clone(),
            format!("http://{}:{port}{}", site.domain, call.path),
        ),
        false => run
            .http1
            .request(call.method.clone(), format!("{}{}", run.base, call.path))
            .header("Host", &site.domain),
    };
    let mut request = request.header("Content-Type", "application/json");
    if let Some(token) = &call.token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = &call.body {
        request = request.body(body.clone());
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

/// Every two-digit tag that follows `prefix` in `text`.
fn tags_after<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    text.match_indices(prefix).map(move |(at, _)| {
        text.get(at + prefix.len()..at + prefix.len() + 2)
            .unwrap_or("")
    })
}

/// Problems with a body: anything naming another tenant.
fn foreign_traces(site: &Site, text: &str) -> Vec<String> {
    let own = format!("{:02}", site.index);
    let mut found: Vec<String> = tags_after(text, "iso-mark-")
        .chain(tags_after(text, "alice-"))
        .chain(tags_after(text, "bob-"))
        .filter(|tag| *tag != own)
        .map(|tag| format!("tag {tag}"))
        .collect();
    for (at, _) in text.match_indices(".iso.test") {
        if text.get(at.saturating_sub(2)..at) != Some(own.as_str()) {
            found.push("another tenant's domain".into());
        }
    }
    let Ok(json) = serde_json::from_str::<Value>(text) else {
        return found;
    };
    let posts = match json.get("results") {
        Some(Value::Array(results)) => results.clone(),
        _ if json.get("author").is_some() => vec![json.clone()],
        _ => Vec::new(),
    };
    for post in posts {
        let id = post["id"].as_i64().unwrap_or(0);
        if !site.ids().contains(&id) {
            found.push(format!("post id {id}"));
        }
    }
    if let Some(schema) = json.get("schema_name")
        && schema != site.schema.as_str()
    {
        found.push(format!("schema {schema}"));
    }
    found
}

/// The tenant a JWT claims, read without verification.
fn token_tenant(token: &str) -> Option<String> {
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    let claims: Value = serde_json::from_slice(&payload).ok()?;
    claims["tenant"].as_str().map(str::to_owned)
}

/// Checks one answer and records what it acknowledged.
fn judge(run: &Run, site: &Site, call: &Call, status: u16, text: &str) {
    *run.counts
        .lock()
        .unwrap()
        .entry((call.kind, status))
        .or_default() += 1;
    let what = format!(
        "{:?} {} {} on {}",
        call.kind, call.method, call.path, site.domain
    );
    if !allowed(site, call).contains(&status) {
        run.violation(format!("{what}: status {status}: {text}"));
    }
    let json: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    // Tokens are random base64: their tenant is checked below instead.
    let scanned = match json.get("access") {
        Some(_) => "",
        None => text,
    };
    for trace in foreign_traces(site, scanned) {
        run.violation(format!("{what}: {trace} in {text}"));
    }
    for field in ["access", "refresh"] {
        if let Some(token) = json[field].as_str()
            && token_tenant(token).as_deref() != Some(site.schema.as_str())
        {
            run.violation(format!("{what}: {field} token bound elsewhere"));
        }
    }
    match (call.kind, status) {
        (Kind::Create, 201) => {
            let id = json["id"].as_i64().unwrap_or(0);
            site.created.lock().unwrap().push(id);
            site.live.lock().unwrap().push(id);
        }
        (Kind::Delete, 204) => site.deleted.lock().unwrap().extend(call.target),
        _ => {}
    }
}

/// A planned delete that never got an answer leaves its post's fate open.
fn abandon(site: &Site, call: &Call) {
    if call.kind == Kind::Delete {
        site.unsure.lock().unwrap().extend(call.target);
    }
}

async fn client_loop(run: Arc<Run>, worker: usize, requests: usize) {
    let mut rng = SmallRng::seed_from_u64(0x1507 + worker as u64);
    let http2 = worker.is_multiple_of(HTTP2_EVERY);
    for n in 0..requests {
        let site = &run.sites[rng.random_range(0..TENANTS)];
        let call = plan(&run, site, &mut rng, &format!("w{worker}-{n}"));
        let exchange = send(&run, site, &call, http2);
        let outcome = match rng.random_ratio(1, CANCEL_ONE_IN) {
            true => {
                let delay = Duration::from_micros(rng.random_range(0..3_000));
                tokio::time::timeout(delay, exchange).await.ok()
            }
            false => Some(exchange.await),
        };
        match outcome {
            Some(Ok((status, text))) => judge(&run, site, &call, status, &text),
            Some(Err(error)) => {
                abandon(site, &call);
                run.violation(format!(
                    "{:?} {}: transport error {error}",
                    call.kind, call.path
                ));
            }
            None => {
                abandon(site, &call);
                run.cancelled.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn clients(server: &TestServer, sites: &[Site]) -> (reqwest::Client, reqwest::Client) {
    let timeout = Duration::from_secs(30);
    let http1 = reqwest::Client::builder()
        .http1_only()
        .timeout(timeout)
        .build()
        .unwrap();
    let mut http2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(timeout);
    for site in sites {
        http2 = http2.resolve(&site.domain, server.http);
    }
    (http1, http2.build().unwrap())
}

/// Every post, by schema: (id, title, body).
async fn stored_posts(sites: &[Site]) -> Vec<Vec<(i64, String, String)>> {
    let fixtures = pool();
    let mut all = Vec::new();
    for site in sites {
        let scope = Scope::begin(&fixtures, &site.schema).await.unwrap();
        let rows = scope
            .client()
            .query("SELECT id, title::text, body FROM blog_post", &[])
            .await
            .unwrap();
        scope.commit().await.unwrap();
        all.push(
            rows.iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect(),
        );
    }
    all
}

/// Every acknowledged write is where it belongs, and nothing else is.
fn assert_writes_in_place(sites: &[Site], stored: &[Vec<(i64, String, String)>]) {
    let ids: Vec<HashSet<i64>> = stored
        .iter()
        .map(|posts| posts.iter().map(|p| p.0).collect())
        .collect();
    for (site, posts) in sites.iter().zip(stored) {
        for (id, title, body) in posts {
            assert!(
                site.ids().contains(id),
                "{}: post {id} out of range",
                site.schema
            );
            assert!(
                title.starts_with(&site.mark),
                "{}: title {title}",
                site.schema
            );
            assert!(body.contains(&site.mark), "{}: body {body}", site.schema);
        }
        let deleted = site.deleted.lock().unwrap().clone();
        let unsure = site.unsure.lock().unwrap().clone();
        for id in site.created.lock().unwrap().iter() {
            let owners: Vec<usize> = (0..sites.len()).filter(|&n| ids[n].contains(id)).collect();
            let expected = match deleted.contains(id) {
                true => vec![],
                false if unsure.contains(id) => continue,
                false => vec![site.index],
            };
            assert_eq!(owners, expected, "created post {id} of {}", site.schema);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_mixed_requests_never_cross_tenants() {
    let mut config = test_config();
    config.database.pool_size = 16;
    // The run measures isolation, not the machine: a shared two-core box
    // may queue for a connection or a hashing slot for a while.
    config.database.checkout_timeout = Duration::from_secs(15);
    config.auth.hash_queue_timeout = Duration::from_secs(15);
    config.log.level = "warn".into();
    let server = TestServer::start_with(config).await;
    let sites = build_sites(&server).await;
    let (http1, http2) = clients(&server, &sites);
    let run = Arc::new(Run {
        sites,
        base: server.url(""),
        http1,
        http2,
        counts: Mutex::default(),
        cancelled: AtomicU64::new(0),
        violations: Mutex::default(),
    });

    // The load: every client runs its share, one request at a time.
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..CLIENTS {
        let share = REQUESTS / CLIENTS + usize::from(worker < REQUESTS % CLIENTS);
        tasks.spawn(client_loop(Arc::clone(&run), worker, share));
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("client task");
    }
    let elapsed = started.elapsed();

    // The counts, for the record.
    let counts = run.counts.lock().unwrap().clone();
    let cancelled = run.cancelled.load(Ordering::Relaxed);
    for ((kind, status), count) in &counts {
        eprintln!("isolation: {kind:?} {status}: {count}");
    }
    let answered: u64 = counts.values().sum();
    eprintln!("isolation: {answered} answered, {cancelled} cancelled, {elapsed:.1?}");

    // Every request answered or cancelled, within its rules.
    let violations = run.violations.lock().unwrap().clone();
    assert!(
        violations.is_empty(),
        "violations:\n{}",
        violations.join("\n")
    );
    assert_eq!(answered + cancelled, REQUESTS as u64);
    assert!(counts.keys().all(|(_, status)| *status < 500));

    // The pool, then every schema's rows.
    assert_pool_clean(&server).await;
    let stored = stored_posts(&run.sites).await;
    assert_writes_in_place(&run.sites, &stored);
    let forged = stored.iter().flatten().filter(|p| p.1.contains(FORGED));
    assert_eq!(forged.count(), 0, "a post written with a foreign token");
    server.stop().await;
}
