//! Fault injection with a real database: a proxy between Botora and
//! PostgreSQL cuts or stalls the traffic, locks make statements slow, and
//! clients walk away mid-request. Botora must answer `503` quickly (never a
//! hang, never a `500`), recover on its own, and leave nothing half-written
//! or any pooled connection dirty.

mod common;
mod proxy;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use botora::config::Config;
use common::*;
use proxy::Proxy;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_postgres::NoTls;

/// `server.request_timeout` of every server here.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Past this a request counts as hung: the request timeout plus room for
/// a busy two-core machine.
const HANG: Duration = Duration::from_secs(5);

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// A server whose database traffic all goes through its own proxy, with a
/// tenant, a user who wrote three posts, and that user's access token.
struct Rig {
    proxy: Proxy,
    server: TestServer,
    fixtures: deadpool_postgres::Pool,
    schema: String,
    domain: String,
    token: String,
}

/// What one request got back.
#[derive(Debug)]
struct Answer {
    /// `0` when no response came (a hang or a broken connection).
    status: u16,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

impl Answer {
    /// The contract's `503`: `Retry-After` and the fixed body.
    fn is_unavailable(&self) -> bool {
        self.status == 503
            && self.retry_after.is_some()
            && self.body == json!({"detail": "Service temporarily unavailable."})
    }
}

async fn rig(tune: impl FnOnce(&mut Config)) -> Rig {
    let fixtures = pool();
    let proxy = Proxy::start(&database_url()).await;
    let mut config = test_config();
    config.database.url = proxy.url();
    config.database.pool_size = 4;
    config.database.checkout_timeout = ms(500);
    config.database.connect_timeout = ms(500);
    config.database.statement_timeout = Duration::from_secs(1);
    config.server.request_timeout = REQUEST_TIMEOUT;
    tune(&mut config);

    let (schema, domain) = tenant(&fixtures, "fault").await;
    let author = user(&fixtures, &schema, "writer", "writer-pw-1", false).await;
    posts(&fixtures, &schema, author, "post", 3).await;
    let server = TestServer::start_with(config).await;
    let (token, _) = server.login(&domain, "writer", "writer-pw-1").await;
    Rig {
        proxy,
        server,
        fixtures,
        schema,
        domain,
        token,
    }
}

impl Rig {
    /// `GET /api/posts/` as the writer, given up on after [`HANG`].
    async fn posts(&self) -> Answer {
        let request = self
            .server
            .client
            .get(self.server.url("/api/posts/"))
            .header("Host", &self.domain)
            .bearer_auth(&self.token);
        answer(request).await
    }

    /// `GET /readyz` on the admin listener.
    async fn ready(&self) -> u16 {
        let url = format!("http://{}/readyz", self.server.admin);
        answer(self.server.client.get(url)).await.status
    }

    /// What PostgreSQL says of this server's connections (those through
    /// the proxy): `(state, wait_event_type, query)`.
    async fn activity(&self) -> Vec<(String, String, String)> {
        let ports = self.proxy.upstream_ports();
        let conn = self.fixtures.get().await.unwrap();
        let rows = conn
            .query(
                "SELECT coalesce(state, ''), coalesce(wait_event_type, ''), query
                 FROM pg_stat_activity
                 WHERE datname = current_database() AND client_port = ANY($1)",
                &[&ports],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect()
    }

    /// Waits (at most 3 s) until one of this server's statements waits
    /// on a lock.
    async fn wait_until_blocked(&self) {
        for _ in 0..150 {
            if self
                .activity()
                .await
                .iter()
                .any(|(_, wait, _)| wait == "Lock")
            {
                return;
            }
            tokio::time::sleep(ms(20)).await;
        }
        panic!(
            "no statement ever waited on the lock: {:?}",
            self.activity().await
        );
    }

    /// Waits (at most 6 s) until every pooled connection is back, idle and
    /// outside any transaction, and no request is still being handled.
    async fn assert_clean(&self) {
        let clean = |activity: &[(String, String, String)]| {
            activity.iter().all(|(state, _, _)| state == "idle")
        };
        for _ in 0..120 {
            let status = self.server.app.pool.status();
            let settled = status.available == status.size && status.waiting == 0;
            if settled && clean(&self.activity().await) {
                return;
            }
            tokio::time::sleep(ms(50)).await;
        }
        let status = self.server.app.pool.status();
        let activity = self.activity().await;
        panic!("not clean: pool {status:?}, connections {activity:?}");
    }
}

async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let started = Instant::now();
    let sent = async {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok::<_, reqwest::Error>((status, retry_after, body))
    };
    let (status, retry_after, body) = match tokio::time::timeout(HANG, sent).await {
        Ok(Ok(parts)) => parts,
        Ok(Err(error)) => (0, None, json!(format!("transport error: {error}"))),
        Err(_) => (0, None, json!("no answer: hung")),
    };
    Answer {
        status,
        retry_after,
        body,
        took: started.elapsed(),
    }
}

/// Polls `check` every 20 ms for at most `limit`; returns the time it took.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return started.elapsed();
        }
        tokio::time::sleep(ms(20)).await;
    }
    panic!("{what}: not within {limit:?}");
}

// Phases of the load test, as seen by a request when it starts and ends.
const BEFORE: u8 = 0;
const CUT: u8 = 1;
const RESTORED: u8 = 2;
const RECOVERED: u8 = 3;

/// One client of the load test: requests in a loop until `stop`, each
/// stamped with the phase at its start and at its end.
async fn load(rig: Arc<Rig>, phase: Arc<AtomicU8>, stop: Arc<AtomicBool>) -> Vec<(u8, u8, Answer)> {
    let mut seen = Vec::new();
    for _ in 0..400 {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let start = phase.load(Ordering::Acquire);
        let answer = rig.posts().await;
        seen.push((start, phase.load(Ordering::Acquire), answer));
        tokio::time::sleep(ms(20)).await;
    }
    seen
}

#[tokio::test]
async fn the_database_vanishing_under_load_gives_quick_503s_then_recovers() {
    let rig = Arc::new(rig(|_| {}).await);
    assert_eq!(rig.posts().await.status, 200);

    // Six clients keep reading throughout.
    let phase = Arc::new(AtomicU8::new(BEFORE));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = JoinSet::new();
    for _ in 0..6 {
        let (rig, phase, stop) = (Arc::clone(&rig), Arc::clone(&phase), Arc::clone(&stop));
        clients.spawn(load(rig, phase, stop));
    }
    tokio::time::sleep(ms(300)).await;

    // The database goes away: readiness turns, requests get 503s.
    rig.proxy.cut();
    phase.store(CUT, Ordering::Release);
    within(ms(2000), "/readyz turning 503", || async {
        rig.ready().await == 503
    })
    .await;
    tokio::time::sleep(ms(1500)).await;

    // It comes back: everything succeeds again within 2 s.
    phase.store(RESTORED, Ordering::Release);
    rig.proxy.restore();
    within(ms(2000), "reads succeeding after the restore", || async {
        rig.posts().await.status == 200
    })
    .await;
    phase.store(RECOVERED, Ordering::Release);
    tokio::time::sleep(ms(500)).await;
    stop.store(true, Ordering::Release);
    let mut answers = Vec::new();
    while let Some(done) = clients.join_next().await {
        answers.extend(done.unwrap());
    }
    within(ms(2000), "/readyz turning 200", || async {
        rig.ready().await == 200
    })
    .await;

    // Every answer: a 200 or the contract's 503, quickly; nothing else.
    let mut during_cut = 0;
    let mut after_recovery = 0;
    for (start, end, answer) in &answers {
        assert!(
            answer.status == 200 || answer.is_unavailable(),
            "{answer:?}"
        );
        assert!(answer.took < REQUEST_TIMEOUT + ms(1000), "{answer:?}");
        if (*start, *end) == (CUT, CUT) {
            during_cut += 1;
            assert!(answer.is_unavailable(), "served while cut: {answer:?}");
        }
        if *start == RECOVERED {
            after_recovery += 1;
            assert_eq!(answer.status, 200, "after recovery: {answer:?}");
        }
    }
    assert!(during_cut >= 6, "only {during_cut} requests ran while cut");
    assert!(after_recovery >= 6, "only {after_recovery} after recovery");
    rig.assert_clean().await;
}

#[tokio::test]
async fn a_stalled_database_gives_503s_within_the_request_timeout_and_the_pool_recovers() {
    let rig = rig(|_| {}).await;
    assert_eq!(rig.posts().await.status, 200);

    // The database accepts and never answers.
    rig.proxy.stall();
    let stalled = futures_util::future::join_all((0..6).map(|_| rig.posts())).await;
    for answer in &stalled {
        assert!(answer.is_unavailable(), "{answer:?}");
        assert!(answer.took < REQUEST_TIMEOUT + ms(1500), "{answer:?}");
    }
    let started = Instant::now();
    assert_eq!(rig.ready().await, 503);
    assert!(
        started.elapsed() < ms(2500),
        "/readyz took {:?}",
        started.elapsed()
    );

    // Restored: reads succeed again, and nothing leaked.
    rig.proxy.restore();
    within(ms(3000), "reads succeeding after the stall", || async {
        rig.posts().await.status == 200
    })
    .await;
    rig.assert_clean().await;
    let status = rig.server.app.pool.status();
    assert!(status.size <= status.max_size, "{status:?}");
    assert_eq!(status.waiting, 0, "{status:?}");
    // The pooled connections plus LISTEN; nothing else left open.
    let limit = status.max_size + 1;
    within(ms(6000), "proxy links closing", || async {
        rig.proxy.open_links() <= limit
    })
    .await;
    assert_eq!(rig.server.app.metrics.in_flight.get(), 0);
}

#[tokio::test]
async fn a_change_made_while_listen_was_cut_is_seen_after_it_resumes() {
    let rig = rig(|_| {}).await;
    let metrics = Arc::clone(&rig.server.app.metrics);
    let (schema, old_domain) = tenant(&rig.fixtures, "moved").await;
    assert_eq!(rig.server.get(&old_domain, "/api/me/", None).await.0, 401);
    assert_eq!(rig.server.get(&old_domain, "/api/me/", None).await.0, 401);

    // LISTEN goes down with the rest.
    rig.proxy.cut();
    within(ms(2000), "listen_connected turning 0", || async {
        metrics.listen_connected.get() == 0
    })
    .await;

    // Meanwhile the tenant's domain changes: its notification is lost.
    let new_domain = format!("{}.test", unique("moved-to-"));
    let conn = rig.fixtures.get().await.unwrap();
    let changed = conn
        .execute(
            "UPDATE tenants_domain SET domain = $1 WHERE domain = $2",
            &[&new_domain, &old_domain],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    tokio::time::sleep(ms(300)).await;

    // Back: LISTEN resumes and the cached old domain is gone.
    rig.proxy.restore();
    within(ms(3000), "listen_connected turning 1", || async {
        metrics.listen_connected.get() == 1
    })
    .await;
    assert_eq!(
        rig.server.get(&old_domain, "/api/me/", None).await.0,
        404,
        "{old_domain} served from a stale cache"
    );
    assert_eq!(rig.server.get(&new_domain, "/api/me/", None).await.0, 401);
    assert!(!schema.is_empty());
}

/// A side connection that holds a lock (or an uncommitted row) until
/// released; its application name keeps it apart from Botora's.
struct Locker {
    client: tokio_postgres::Client,
}

impl Locker {
    async fn hold(sql: &str) -> Locker {
        let mut config: tokio_postgres::Config = database_url().parse().unwrap();
        config.application_name("faults-locker");
        let (client, connection) = config.connect(NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!("BEGIN; {sql}"))
            .await
            .unwrap();
        Locker { client }
    }

    async fn release(self) {
        self.client.batch_execute("ROLLBACK").await.unwrap();
    }
}

#[tokio::test]
async fn slow_requests_exhausting_the_pool_get_503_after_the_checkout_timeout() {
    let rig = rig(|config| {
        config.database.pool_size = 2;
        config.database.statement_timeout = Duration::from_secs(2);
    })
    .await;
    let rig = Arc::new(rig);
    assert_eq!(rig.posts().await.status, 200);

    // Two reads stuck behind a lock hold both connections.
    let sql = format!(
        "LOCK TABLE \"{}\".blog_post IN ACCESS EXCLUSIVE MODE",
        rig.schema
    );
    let locker = Locker::hold(&sql).await;
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let rig = Arc::clone(&rig);
            tokio::spawn(async move { rig.posts().await })
        })
        .collect();
    within(ms(2000), "both connections checked out", || async {
        let status = rig.server.app.pool.status();
        status.size == 2 && status.available == 0
    })
    .await;

    // A third waits for the checkout timeout, then gets a 503.
    let third = rig.posts().await;
    assert!(third.is_unavailable(), "{third:?}");
    assert!(third.took >= ms(400) && third.took < ms(1800), "{third:?}");
    assert_eq!(rig.ready().await, 503);

    // The slow ones end at the statement timeout, also as 503s.
    for handle in slow {
        let answer = handle.await.unwrap();
        assert!(answer.is_unavailable(), "{answer:?}");
        assert!(answer.took < REQUEST_TIMEOUT, "{answer:?}");
    }
    locker.release().await;
    assert_eq!(rig.posts().await.status, 200);
    rig.assert_clean().await;
}

/// Sends `request` on a raw connection, waits until the server's statement
/// for it is stuck on a lock, then hangs up.
async fn send_and_hang_up(rig: &Rig, request: &str) {
    let mut stream = TcpStream::connect(rig.server.http).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    rig.wait_until_blocked().await;
    drop(stream);
    // Long enough for the server to notice and clean up behind the lock.
    tokio::time::sleep(ms(300)).await;
}

fn raw_request(method: &str, host: &str, path: &str, token: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn a_write_abandoned_mid_statement_leaves_nothing_half_written() {
    let rig = rig(|_| {}).await;
    let title = unique("abandoned-");
    let body = json!({"title": title, "body": "the whole body"}).to_string();
    let request = raw_request("POST", &rig.domain, "/api/posts/", &rig.token, &body);

    let lock = format!("LOCK TABLE \"{}\".blog_post IN SHARE MODE", rig.schema);
    let locker = Locker::hold(&lock).await;
    send_and_hang_up(&rig, &request).await;
    locker.release().await;
    rig.assert_clean().await;

    // The post is there whole, or not at all.
    let conn = rig.fixtures.get().await.unwrap();
    let sql = format!(
        "SELECT body FROM \"{}\".blog_post WHERE title = $1",
        rig.schema
    );
    let rows = conn.query(&sql, &[&title]).await.unwrap();
    assert!(rows.len() <= 1, "{} copies", rows.len());
    if let Some(row) = rows.first() {
        assert_eq!(row.get::<_, String>(0), "the whole body");
    }
    assert_eq!(rig.posts().await.status, 200);
}

#[tokio::test]
async fn reads_and_logins_abandoned_mid_statement_give_their_connection_back() {
    let rig = rig(|_| {}).await;
    let cases = [
        (
            "blog_post",
            raw_request("GET", &rig.domain, "/api/posts/", &rig.token, ""),
        ),
        (
            "auth_user",
            raw_request(
                "POST",
                &rig.domain,
                "/api/token/",
                "none",
                r#"{"username": "writer", "password": "writer-pw-1"}"#,
            ),
        ),
    ];
    for (table, request) in cases {
        let lock = format!(
            "LOCK TABLE \"{}\".{table} IN ACCESS EXCLUSIVE MODE",
            rig.schema
        );
        let locker = Locker::hold(&lock).await;
        send_and_hang_up(&rig, &request).await;
        locker.release().await;
        rig.assert_clean().await;
    }
    assert_eq!(rig.posts().await.status, 200);
}

/// Whether the tenant's row, schema and domain exist, in that order.
async fn tenant_parts(rig: &Rig, schema: &str, domain: &str) -> (bool, bool, bool) {
    let conn = rig.fixtures.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM tenants_client WHERE schema_name = $1),
                    EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),
                    EXISTS (SELECT 1 FROM tenants_domain WHERE domain = $2)",
            &[&schema, &domain],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// Starts creating a tenant whose domain insert (the last step, after the
/// row, schema and tables) waits behind another transaction's uncommitted
/// row for the same domain; returns the schema, the domain and that
/// transaction.
async fn tenant_creation_stuck_at_its_domain(rig: &Rig) -> (String, String, Locker) {
    let root = unique("root");
    user(&rig.fixtures, "public", &root, "root-pw-1", true).await;
    let (operator, _) = rig.server.login("admin.test", &root, "root-pw-1").await;
    let schema = unique("halfway");
    let domain = format!("{}.test", schema.replace('_', "-"));
    let insert = format!(
        "INSERT INTO tenants_domain (domain, tenant_id, is_primary)
         SELECT '{domain}', id, false FROM tenants_client WHERE schema_name = '{}'",
        rig.schema
    );
    let locker = Locker::hold(&insert).await;
    let body =
        json!({"schema_name": schema, "name": "Halfway", "domains": [domain], "on_trial": true});
    let request = raw_request(
        "POST",
        "admin.test",
        "/api/tenants/",
        &operator,
        &body.to_string(),
    );
    send_and_hang_up(rig, &request).await;
    (schema, domain, locker)
}

#[tokio::test]
async fn a_tenant_creation_abandoned_halfway_is_all_or_nothing() {
    let rig = rig(|_| {}).await;
    let (schema, domain, locker) = tenant_creation_stuck_at_its_domain(&rig).await;
    locker.release().await;
    rig.assert_clean().await;

    let (row, namespace, domain_row) = tenant_parts(&rig, &schema, &domain).await;
    assert!(
        row == namespace && namespace == domain_row,
        "half a tenant: row {row}, schema {namespace}, domain {domain_row}"
    );
    assert_eq!(rig.posts().await.status, 200);
}

#[tokio::test]
async fn an_abandoned_tenant_creation_does_not_leave_its_statement_running() {
    let rig = rig(|_| {}).await;
    let (_, _, locker) = tenant_creation_stuck_at_its_domain(&rig).await;

    // The client is gone: its statement should be cancelled, not left to
    // wait on the lock with its connection back in the pool.
    let status = rig.server.app.pool.status();
    let activity = rig.activity().await;
    locker.release().await;
    let waiting = activity
        .iter()
        .filter(|(_, wait, _)| wait == "Lock")
        .count();
    assert_eq!(
        waiting, 0,
        "still running after the client left (pool {status:?}): {activity:?}"
    );
}

#[tokio::test]
async fn an_abandoned_request_is_not_counted_in_flight_for_ever() {
    let rig = rig(|_| {}).await;
    let lock = format!(
        "LOCK TABLE \"{}\".blog_post IN ACCESS EXCLUSIVE MODE",
        rig.schema
    );
    let locker = Locker::hold(&lock).await;
    let request = raw_request("GET", &rig.domain, "/api/posts/", &rig.token, "");
    send_and_hang_up(&rig, &request).await;
    locker.release().await;
    rig.assert_clean().await;
    assert_eq!(rig.server.app.metrics.in_flight.get(), 0);
}
