//! The core contract against a real server and database: tenant
//! resolution, refusals, cache invalidation by plain SQL, errors, limits,
//! request ids, HTTP/2, graceful shutdown and a database that is away.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn unknown_missing_and_malformed_hosts() {
    let server = TestServer::start().await;
    let (status, body) = server.get("nobody.test", "/api/posts/", None).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"detail": "Tenant not found.", "code": "tenant_not_found"})
        )
    );

    for bad in ["bad..host", "a b", "host:99999", "host:", &"a".repeat(254)] {
        let (status, body) = server.get(bad, "/api/posts/", None).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(
            body,
            json!({"detail": "Invalid Host header.", "code": "bad_host"})
        );
    }

    // Repeated and missing Host need a raw connection.
    for head in [
        "GET /api/ HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
        "GET /api/ HTTP/1.0\r\n\r\n",
    ] {
        let reply = raw(&server, head).await;
        assert!(
            reply.starts_with("HTTP/1.1 400") || reply.starts_with("HTTP/1.0 400"),
            "{head:?} -> {reply}"
        );
        assert!(reply.contains("bad_host"), "{reply}");
    }
    server.stop().await;
}

async fn raw(server: &TestServer, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(server.http).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test]
async fn active_inactive_and_normalised_hosts() {
    let pool = pool();
    let server = TestServer::start().await;
    let (_, domain) = tenant(&pool, "act").await;
    let lapsed = unique("lapsed");
    let lapsed_domain = format!("{lapsed}.test");
    let yesterday = chrono::Utc::now().date_naive().pred_opt();
    tenant_with(&pool, &lapsed, &lapsed_domain, false, yesterday).await;
    let never = unique("never");
    tenant_with(&pool, &never, &format!("{never}.test"), false, None).await;

    // A resolved tenant answers its routes (here: 401 without a token).
    for host in [
        domain.clone(),
        domain.to_uppercase(),
        format!("www.{domain}:8000"),
        format!("{domain}."),
    ] {
        let (status, _) = server.get(&host, "/api/me/", None).await;
        assert_eq!(status, 401, "{host}");
    }
    let inactive = json!({"detail": "Tenant is inactive.", "code": "tenant_inactive"});
    assert_eq!(
        server.get(&lapsed_domain, "/api/me/", None).await,
        (403, inactive.clone())
    );
    assert_eq!(
        server.get(&format!("{never}.test"), "/api/me/", None).await,
        (403, inactive)
    );

    // Paid up to today is active.
    let today = chrono::Utc::now().date_naive();
    let paid = unique("paid");
    tenant_with(&pool, &paid, &format!("{paid}.test"), false, Some(today)).await;
    assert_eq!(
        server
            .get(&format!("{paid}.test"), "/api/me/", None)
            .await
            .0,
        401
    );
    server.stop().await;
}

#[tokio::test]
async fn public_hosts_get_the_public_routes() {
    let server = TestServer::start().await;
    let (status, _) = server.get("admin.test", "/api/tenants/", None).await;
    assert_eq!(status, 401);
    let (status, body) = server.get("admin.test", "/api/posts/", None).await;
    assert_eq!((status, body), (404, json!({"detail": "Not found."})));
    server.stop().await;
}

#[tokio::test]
async fn changes_made_with_plain_sql_are_seen_within_a_second() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "sql").await;
    assert_eq!(server.get(&domain, "/api/me/", None).await.0, 401);
    let fresh = format!("{}.test", unique("fresh"));
    assert_eq!(
        server.get(&fresh, "/api/me/", None).await.0,
        404,
        "negative entry cached"
    );

    let conn = pool.get().await.unwrap();
    let deadline = |what: &str, started: Instant| {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{what} took {:?}",
            started.elapsed()
        );
    };

    // Deactivate with plain SQL: 403 within a second.
    conn.execute(
        "UPDATE tenants_client SET on_trial = false, paid_until = NULL WHERE schema_name = $1",
        &[&schema],
    )
    .await
    .unwrap();
    let started = Instant::now();
    wait_for_status(&server, &domain, 403).await;
    deadline("deactivation", started);

    // A new domain that was negatively cached: found within a second.
    conn.execute(
        "INSERT INTO tenants_domain (domain, tenant_id, is_primary)
         SELECT $1, id, false FROM tenants_client WHERE schema_name = $2",
        &[&fresh, &schema],
    )
    .await
    .unwrap();
    let started = Instant::now();
    wait_for_status(&server, &fresh, 403).await;
    deadline("new domain", started);

    // A deleted domain: 404 within a second.
    conn.execute("DELETE FROM tenants_domain WHERE domain = $1", &[&fresh])
        .await
        .unwrap();
    let started = Instant::now();
    wait_for_status(&server, &fresh, 404).await;
    deadline("domain removal", started);
    server.stop().await;
}

async fn wait_for_status(server: &TestServer, host: &str, want: u16) {
    for _ in 0..100 {
        if server.get(host, "/api/me/", None).await.0 == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{host} never answered {want}");
}

#[tokio::test]
async fn concurrent_misses_share_one_lookup() {
    let pool = pool();
    let server = TestServer::start().await;
    let (_, domain) = tenant(&pool, "herd").await;
    let before = server
        .app
        .metrics
        .tenant_cache
        .with_label_values(&["miss"])
        .get();
    let requests = (0..50).map(|_| server.get(&domain, "/api/me/", None));
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|(status, _)| *status == 401));
    let misses = server
        .app
        .metrics
        .tenant_cache
        .with_label_values(&["miss"])
        .get()
        - before;
    assert_eq!(
        misses, 1,
        "50 concurrent requests for one new host must query once"
    );
    server.stop().await;
}

#[tokio::test]
async fn errors_ids_and_limits() {
    let pool = pool();
    let mut config = test_config();
    config.server.max_body_bytes = 1024;
    let server = TestServer::start_with(config).await;
    let (_, domain) = tenant(&pool, "lim").await;

    // Unknown route, wrong method with Allow.
    assert_eq!(
        server.get(&domain, "/nope/", None).await,
        (404, json!({"detail": "Not found."}))
    );
    let response = server
        .client
        .delete(server.url("/api/token/"))
        .header("Host", &domain)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");

    // Request ids: kept when sane, made up otherwise, always present.
    let response = server
        .client
        .get(server.url("/x"))
        .header("Host", &domain)
        .header("X-Request-Id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    let response = server
        .client
        .get(server.url("/x"))
        .header("Host", "nobody.test")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"].len(), 32);

    // Bodies over the limit: declared, and chunked without a length.
    let big = "x".repeat(2048);
    let response = server
        .client
        .post(server.url("/api/token/"))
        .header("Host", &domain)
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let chunks = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(big.into_bytes())]);
    let response = server
        .client
        .post(server.url("/api/token/"))
        .header("Host", &domain)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    // Malformed JSON.
    let response = server
        .client
        .post(server.url("/api/token/"))
        .header("Host", &domain)
        .body("{nope")
        .send()
        .await
        .unwrap();
    let (status, body) = into_json(response).await;
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error - "),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn http2_on_the_same_port() {
    let pool = pool();
    let server = TestServer::start().await;
    let (_, domain) = tenant(&pool, "h2").await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("http://{domain}:{}/api/me/", server.http.port());
    let client_for = reqwest::Client::builder()
        .http2_prior_knowledge()
        .resolve(&domain, server.http)
        .build()
        .unwrap();
    drop(client);
    let response = client_for.get(&url).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 401);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    let pool = pool();
    let server = TestServer::start().await;
    let (_, domain) = tenant(&pool, "drain").await;

    // A request whose body arrives slowly is in flight when shutdown starts.
    let mut stream = tokio::net::TcpStream::connect(server.http).await.unwrap();
    let head = format!(
        "POST /api/token/ HTTP/1.1\r\nHost: {domain}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let http = server.http;
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(http).await.is_err(),
        "still accepting after shutdown began"
    );
    stream.write_all(b"}").await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 400"),
        "in-flight request was not finished: {reply}"
    );
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_database_that_is_away_gives_quick_503s_and_not_ready() {
    let mut config = test_config();
    config.database.url = "postgres://postgres@127.0.0.1:1/nowhere".into();
    config.database.connect_timeout = Duration::from_millis(500);
    config.database.checkout_timeout = Duration::from_millis(500);
    let app = botora::app::App::new("test.toml".into(), config).unwrap();
    let server = botora::server::start(app).await.unwrap();
    let client = reqwest::Client::new();

    let started = Instant::now();
    let response = client
        .get(format!("http://{}/api/me/", server.http_addr))
        .header("Host", "any.test")
        .send()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let (_, body) = into_json(response).await;
    assert_eq!(body, json!({"detail": "Service temporarily unavailable."}));

    let ready = client
        .get(format!("http://{}/readyz", server.admin_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let health = client
        .get(format!("http://{}/healthz", server.admin_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn a_tenant_whose_schema_is_gone_is_a_503_not_a_crash() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "gone").await;
    let id = user(&pool, &schema, "u", "pw-123456", false).await;
    assert!(id > 0);
    let (access, _) = server.login(&domain, "u", "pw-123456").await;
    pool.get()
        .await
        .unwrap()
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    let (status, body) = server.get(&domain, "/api/posts/", Some(&access)).await;
    assert_eq!(
        (status, body),
        (503, json!({"detail": "Service temporarily unavailable."}))
    );
    server.stop().await;
}

#[tokio::test]
async fn ready_and_metrics_on_the_admin_listener() {
    let server = TestServer::start().await;
    let _ = server.get("nobody.test", "/api/", None).await;
    let ready = server
        .client
        .get(format!("http://{}/readyz", server.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let text = server
        .client
        .get(format!("http://{}/metrics", server.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            "botora_requests_total{method=\"read\",route=\"unmatched\",status=\"404\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("botora_tenant_resolutions_total{outcome=\"not_found\"} 1"));
    assert!(text.contains("botora_tenant_listen_connected 1"));
    server.stop().await;
}

/// Lookups that miss together share a query; each asker still gets the
/// answer for its own host, repeated hosts included.
#[tokio::test]
async fn batched_lookups_answer_each_host_its_own_tenant() {
    let pool = pool();
    let (schema_a, domain_a) = tenant(&pool, "batcha").await;
    let (schema_b, domain_b) = tenant(&pool, "batchb").await;
    let lookups = std::sync::Arc::new(botora::tenant::lookup::Lookups::new(pool.clone()));

    // 300 lookups at once: two real hosts, each asked for many times, and
    // unknown ones, some of them repeated.
    let hosts: Vec<String> = (0..300)
        .map(|n| match n % 3 {
            0 => domain_a.clone(),
            1 => domain_b.clone(),
            _ => format!("nobody-{}.invalid", n % 7),
        })
        .collect();
    let answers = futures_util::future::join_all(hosts.iter().map(|host| {
        let lookups = std::sync::Arc::clone(&lookups);
        async move { lookups.find(host).await.unwrap() }
    }))
    .await;
    for (host, found) in hosts.iter().zip(answers) {
        let schema = found.map(|tenant| tenant.schema_name);
        let expected = match host {
            h if *h == domain_a => Some(schema_a.clone()),
            h if *h == domain_b => Some(schema_b.clone()),
            _ => None,
        };
        assert_eq!(schema, expected, "{host}");
    }
}

/// A flood of names no tenant has: each is refused from the domain
/// directory, with no lookup and nothing added to the host cache, while a
/// real host beside them still resolves; a domain created through the API
/// answers on its first request, before its notification.
#[tokio::test]
async fn unknown_hosts_cost_no_lookup_and_no_cache_entry() {
    let pool = pool();
    let server = TestServer::start().await;
    let (_, domain) = tenant(&pool, "flood").await;
    let events = |event: &str| {
        server
            .app
            .metrics
            .tenant_cache
            .with_label_values(&[event])
            .get()
    };
    assert_eq!(server.get(&domain, "/api/me/", None).await.0, 401);
    let (misses, unknown) = (events("miss"), events("unknown"));
    let cached = server.app.resolver.cached_entries();

    let requests = (0..300).map(|n| {
        let host = format!("random-{n}-{}.test", unique("x"));
        let server = &server;
        async move { server.get(&host, "/api/me/", None).await.0 }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|status| *status == 404), "{statuses:?}");
    assert_eq!(events("unknown") - unknown, 300);
    assert_eq!(events("miss") - misses, 0, "an unknown host was looked up");
    assert_eq!(server.app.resolver.cached_entries(), cached);
    assert_eq!(server.get(&domain, "/api/me/", None).await.0, 401);

    // Through this server's own API: found at once.
    let root = unique("root");
    user(&pool, "public", &root, "root-pw-1", true).await;
    let (operator, _) = server.login("admin.test", &root, "root-pw-1").await;
    let schema = unique("fresh_api");
    let fresh = format!("{}.test", schema.replace('_', "-"));
    let body =
        json!({"schema_name": schema, "name": "Fresh", "domains": [fresh], "on_trial": true});
    let (status, answer) = server
        .send(
            "POST",
            "admin.test",
            "/api/tenants/",
            Some(&operator),
            &body,
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(server.get(&fresh, "/api/me/", None).await.0, 401);
    server.stop().await;
}

/// The directory answers from what the notifications said: a domain row
/// written with the triggers off is unknown (404) until a notification
/// that everything changed (as TRUNCATE sends), or one that cannot be
/// read, makes the server read every domain again.
#[tokio::test]
async fn a_notification_of_everything_reloads_the_directory() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "silent").await;
    assert_eq!(server.get(&domain, "/api/me/", None).await.0, 401);

    let conn = pool.get().await.unwrap();
    for payload in [r#"{"table": "all"}"#, "not json"] {
        let hidden = format!("{}.test", unique("hidden-"));
        conn.batch_execute(&format!(
            "BEGIN; SET LOCAL session_replication_role = replica;
             INSERT INTO tenants_domain (domain, tenant_id, is_primary)
             SELECT '{hidden}', id, false FROM tenants_client WHERE schema_name = '{schema}';
             COMMIT;"
        ))
        .await
        .unwrap();
        assert_eq!(
            server.get(&hidden, "/api/me/", None).await.0,
            404,
            "{hidden} was found without its notification"
        );
        conn.execute("SELECT pg_notify('botora_tenants', $1)", &[&payload])
            .await
            .unwrap();
        // Polls for about a second, then fails.
        wait_for_status(&server, &hidden, 401).await;
    }
    server.stop().await;
}
