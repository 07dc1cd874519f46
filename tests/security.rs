//! Security checks against a real server: tokens replayed across tenants,
//! forged (`alg: none`, algorithm confusion, hostile `kid`s), expired or
//! not yet valid, or of users who are gone; schema names, SQL and paths
//! that try to reach what they should not; and secrets that must never
//! reach a log line or a response body.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use botora::config::KeyConfig;
use botora::db::Scope;
use common::*;
use deadpool_postgres::Pool;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The public host of `test_config()`.
const PUBLIC: &str = "admin.test";
const PASSWORD: &str = "security-pw-1";
/// Longest any poll waits before the test fails.
const DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Helpers: requests, hand-made tokens, database checks.

/// A request with an optional bearer token and a raw JSON body.
async fn call(
    server: &TestServer,
    method: &str,
    host: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = server
        .client
        .request(method, server.url(path))
        .header("Host", host);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.to_owned());
    }
    into_json(request.send().await.unwrap()).await
}

/// A hand-written HTTP/1.1 request (paths exactly as given, never
/// normalised); returns the status and the body text.
async fn raw(addr: std::net::SocketAddr, head: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{head}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer)).await;
    read.expect("the server answers").unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    (status, body.to_owned())
}

/// `GET path` with `Host: host` and a bearer token, written by hand.
async fn raw_get(server: &TestServer, host: &str, path: &str, token: &str) -> (u16, String) {
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n");
    raw(server.http, &head).await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Botora's claims for `user_id` on `tenant`, valid for `lifetime` seconds.
fn claims(token_type: &str, user_id: i64, tenant: &str, lifetime: i64) -> Value {
    json!({
        "token_type": token_type,
        "exp": now() + lifetime,
        "iat": now().min(now() + lifetime) - 1,
        "jti": uuid::Uuid::new_v4().simple().to_string(),
        "user_id": user_id.to_string(),
        "tenant": tenant,
    })
}

/// A JWT with exactly `header` and `claims`, signed with `key` as `alg`.
fn forge(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

/// [`forge`] with an HMAC `secret`.
fn forge_hmac(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let key = EncodingKey::from_secret(secret).unwrap();
    forge(header, claims, &key, Algorithm::HS256)
}

/// An HS256 token signed with the test servers' key.
fn sign(claims: &Value) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT"});
    forge_hmac(&header, claims, TEST_SIGNING_KEY.as_bytes())
}

/// The 401 body of an access token that did not verify.
fn bad_access(message: &str) -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
    })
}

/// The 401 body of a token endpoint refusing a token.
fn not_valid(detail: &str) -> Value {
    json!({"detail": detail, "code": "token_not_valid"})
}

fn key_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
}

fn pem_key(kid: &str, algorithm: &str, stem: &str) -> KeyConfig {
    KeyConfig {
        kid: kid.into(),
        algorithm: algorithm.into(),
        secret: None,
        private_key: Some(key_file(&format!("{stem}.key"))),
        public_key: Some(key_file(&format!("{stem}.pub"))),
    }
}

/// Runs one statement on the fixtures' pool and returns the first column.
async fn scalar<T>(
    pool: &Pool,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> T
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    let conn = pool.get().await.unwrap();
    conn.query_one(sql, params).await.unwrap().get(0)
}

async fn schema_exists(pool: &Pool, name: &str) -> bool {
    let sql = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname::text = $1)";
    scalar(pool, sql, &[&name]).await
}

/// A schema with one table, which hostile names try to drop.
async fn canary(pool: &Pool) -> String {
    let name = unique("canary_");
    let conn = pool.get().await.unwrap();
    let sql = format!("CREATE SCHEMA {name}; CREATE TABLE {name}.bird (id int)");
    conn.batch_execute(&sql).await.unwrap();
    name
}

/// The public tables every request depends on are all still there.
async fn assert_public_intact(pool: &Pool) {
    for table in [
        "tenants_client",
        "tenants_domain",
        "auth_user",
        "botora_migrations",
    ] {
        let sql = "SELECT to_regclass('public.' || $1) IS NOT NULL";
        let found: bool = scalar(pool, sql, &[&table]).await;
        assert!(found, "public.{table} is gone");
    }
}

/// Polls `check` until it holds, failing after [`DEADLINE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A tenant with user `alice`: (schema, domain, alice's id, access, refresh).
async fn tenant_with_alice(pool: &Pool, server: &TestServer, prefix: &str) -> TenantSetup {
    let (schema, domain) = tenant(pool, prefix).await;
    let id = user(pool, &schema, "alice", PASSWORD, false).await;
    let (access, refresh) = server.login(&domain, "alice", PASSWORD).await;
    TenantSetup {
        schema,
        domain,
        id,
        access,
        refresh,
    }
}

struct TenantSetup {
    schema: String,
    domain: String,
    id: i64,
    access: String,
    refresh: String,
}

/// A public superuser and its (access, refresh).
async fn operator(pool: &Pool, server: &TestServer) -> (String, String) {
    let name = unique("root");
    user(pool, "public", &name, PASSWORD, true).await;
    server.login(PUBLIC, &name, PASSWORD).await
}

// ---------------------------------------------------------------------------
// Tokens.

#[tokio::test]
async fn tokens_replayed_on_another_tenant_or_the_public_host_are_refused() {
    let pool = pool();
    let server = TestServer::start().await;
    let a = tenant_with_alice(&pool, &server, "replay_a").await;
    let b = tenant_with_alice(&pool, &server, "replay_b").await;
    assert_eq!(a.id, b.id, "the same user id exists in both tenants");
    let (root_access, root_refresh) = operator(&pool, &server).await;

    // Each token works where it was minted.
    assert_eq!(
        server.get(&a.domain, "/api/me/", Some(&a.access)).await.0,
        200
    );
    assert_eq!(
        server
            .get(PUBLIC, "/api/tenants/", Some(&root_access))
            .await
            .0,
        200
    );

    // Access tokens elsewhere: as bearer, and at verify.
    let invalid = bad_access("Token is invalid");
    let replays = [
        (b.domain.as_str(), "/api/me/", &a.access),
        (b.domain.as_str(), "/api/posts/", &a.access),
        (b.domain.as_str(), "/api/tenant/", &a.access),
        (PUBLIC, "/api/tenants/", &a.access),
        (a.domain.as_str(), "/api/me/", &root_access),
        (a.domain.as_str(), "/api/posts/", &root_access),
    ];
    for (host, path, token) in replays {
        let answer = server.get(host, path, Some(token)).await;
        assert_eq!(answer, (401, invalid.clone()), "{path} on {host}");
    }
    let post = r#"{"title": "replayed", "body": "replayed"}"#;
    let created = call(
        &server,
        "POST",
        &b.domain,
        "/api/posts/",
        Some(&a.access),
        Some(post),
    );
    assert_eq!(created.await, (401, invalid.clone()));

    // Refresh and verify of every token on every other host.
    let token_endpoints = [
        (b.domain.as_str(), &a.refresh, &a.access),
        (PUBLIC, &a.refresh, &a.access),
        (a.domain.as_str(), &root_refresh, &root_access),
    ];
    for (host, refresh, access) in token_endpoints {
        let body = json!({"refresh": refresh});
        let answer = server
            .send("POST", host, "/api/token/refresh/", None, &body)
            .await;
        assert_eq!(
            answer,
            (401, not_valid("Token is invalid")),
            "refresh on {host}"
        );
        for token in [refresh, access] {
            let body = json!({"token": token});
            let answer = server
                .send("POST", host, "/api/token/verify/", None, &body)
                .await;
            assert_eq!(
                answer,
                (401, not_valid("Token is invalid")),
                "verify on {host}"
            );
        }
    }

    // A refresh token is not an access token, even at home.
    let answer = server.get(&a.domain, "/api/me/", Some(&a.refresh)).await;
    assert_eq!(answer, (401, bad_access("Token has wrong type")));
    let count: i64 = scalar(
        &pool,
        &format!("SELECT count(*) FROM {}.blog_post", b.schema),
        &[],
    )
    .await;
    assert_eq!(count, 0, "a replayed token wrote a post");
    server.stop().await;
}

#[tokio::test]
async fn alg_none_in_every_spelling_is_refused() {
    let pool = pool();
    let server = TestServer::start().await;
    let a = tenant_with_alice(&pool, &server, "algnone").await;
    let access = claims("access", a.id, &a.schema, 300);
    let refresh = claims("refresh", a.id, &a.schema, 300);
    // The same claims, properly signed, pass: only the header is at fault.
    assert_eq!(
        server
            .get(&a.domain, "/api/me/", Some(&sign(&access)))
            .await
            .0,
        200
    );

    for alg in ["none", "None", "NONE", "nOnE"] {
        for header in [json!({"alg": alg}), json!({"alg": alg, "typ": "JWT"})] {
            let encode = |claims: &Value| {
                let head = URL_SAFE_NO_PAD.encode(header.to_string());
                format!("{head}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
            };
            let token = encode(&access);
            for candidate in [token.clone(), token.trim_end_matches('.').to_owned()] {
                let answer = server.get(&a.domain, "/api/me/", Some(&candidate)).await;
                assert_eq!(answer, (401, bad_access("Token is invalid")), "{header}");
            }
            let body = json!({"refresh": encode(&refresh)});
            let answer = server
                .send("POST", &a.domain, "/api/token/refresh/", None, &body)
                .await;
            assert_eq!(answer, (401, not_valid("Token is invalid")), "{header}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let pool = pool();
    let mut config = test_config();
    config.auth.keys = vec![pem_key("rs", "RS256", "rs256")];
    let server = TestServer::start_with(config).await;
    let a = tenant_with_alice(&pool, &server, "confuse").await;

    // Tokens are RS256 now, and they work.
    let header = jsonwebtoken::decode_header(&a.access).unwrap();
    assert_eq!(
        (header.alg, header.kid.as_deref()),
        (Algorithm::RS256, Some("rs"))
    );
    assert_eq!(
        server.get(&a.domain, "/api/me/", Some(&a.access)).await.0,
        200
    );

    // HMAC keyed with the public key, as a confused verifier would check it.
    let public_pem = std::fs::read(key_file("rs256.pub")).unwrap();
    let trimmed = String::from_utf8_lossy(&public_pem)
        .trim()
        .as_bytes()
        .to_vec();
    let access = claims("access", a.id, &a.schema, 300);
    let refresh = claims("refresh", a.id, &a.schema, 300);
    for secret in [&public_pem, &trimmed] {
        for alg in ["HS256", "HS384", "HS512"] {
            let algorithm: Algorithm = alg.parse().unwrap();
            let key = EncodingKey::from_secret(secret).unwrap();
            for header in [
                json!({"alg": alg, "typ": "JWT", "kid": "rs"}),
                json!({"alg": alg, "typ": "JWT"}),
            ] {
                let token = forge(&header, &access, &key, algorithm);
                let answer = server.get(&a.domain, "/api/me/", Some(&token)).await;
                assert_eq!(answer, (401, bad_access("Token is invalid")), "{header}");
                let body = json!({"refresh": forge(&header, &refresh, &key, algorithm)});
                let path = "/api/token/refresh/";
                let answer = server.send("POST", &a.domain, path, None, &body).await;
                assert_eq!(answer, (401, not_valid("Token is invalid")), "{header}");
            }
        }
    }

    // An RS256 header over an HMAC signature is no better.
    let key = EncodingKey::from_secret(&public_pem).unwrap();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "rs"});
    let message = forge(&header, &access, &key, Algorithm::HS256);
    let answer = server.get(&a.domain, "/api/me/", Some(&message)).await;
    assert_eq!(answer, (401, bad_access("Token is invalid")));
    server.stop().await;
}

#[tokio::test]
async fn hostile_kids_are_refused_and_never_a_500() {
    const HS_SECRET: &str = "security-test-hmac-key-of-the-hs-kid";
    let pool = pool();
    let mut config = test_config();
    let hs = KeyConfig {
        kid: "hs".into(),
        algorithm: "HS256".into(),
        secret: Some(HS_SECRET.into()),
        private_key: None,
        public_key: None,
    };
    let es = pem_key("es", "ES256", "es256");
    config.auth.keys = vec![pem_key("rs", "RS256", "rs256"), hs, es];
    let server = TestServer::start_with(config).await;
    let a = tenant_with_alice(&pool, &server, "kid").await;
    let access = claims("access", a.id, &a.schema, 300);
    let hs_header = |kid: Value| json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let rs_header = |kid: &str| json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let rsa = EncodingKey::from_rsa_pem(&std::fs::read(key_file("rs256.key")).unwrap()).unwrap();
    let public_pem = std::fs::read(key_file("rs256.pub")).unwrap();

    // The harness can make a token the server accepts: the kid "hs".
    let good = forge_hmac(&hs_header(json!("hs")), &access, HS_SECRET.as_bytes());
    assert_eq!(server.get(&a.domain, "/api/me/", Some(&good)).await.0, 200);

    let hostile = [
        "../../../../../../etc/passwd",
        "../tests/fixtures/keys/rs256.pub",
        "/dev/null",
        "file:///etc/passwd",
        "' OR '1'='1",
        "hs'; DROP TABLE auth_user; --",
        "hs\u{0}",
        "HS",
        " hs",
        "hs ",
        "%68%73",
    ];
    let mut tokens: Vec<(String, String)> = hostile
        .iter()
        .map(|kid| {
            let token = forge_hmac(&hs_header(json!(kid)), &access, HS_SECRET.as_bytes());
            (format!("kid {kid:?}"), token)
        })
        .collect();
    let huge = "k".repeat(16 * 1024);
    tokens.push((
        "a 16 KiB kid".into(),
        forge_hmac(&hs_header(json!(huge)), &access, HS_SECRET.as_bytes()),
    ));
    for kid in [json!(5), json!(["hs"]), json!({"kid": "hs"})] {
        let token = forge_hmac(&hs_header(kid.clone()), &access, HS_SECRET.as_bytes());
        tokens.push((format!("kid {kid}"), token));
    }
    // Keys of another algorithm, named by their kid.
    let cross = [
        (
            "HS256 under the RSA kid",
            hs_header(json!("rs")),
            HS_SECRET.as_bytes(),
        ),
        (
            "HS256 under the RSA kid, keyed with its PEM",
            hs_header(json!("rs")),
            public_pem.as_slice(),
        ),
        (
            "HS256 under the ES kid",
            hs_header(json!("es")),
            HS_SECRET.as_bytes(),
        ),
    ];
    for (what, header, secret) in cross {
        tokens.push((what.into(), forge_hmac(&header, &access, secret)));
    }
    for kid in ["hs", "es"] {
        let token = forge(&rs_header(kid), &access, &rsa, Algorithm::RS256);
        tokens.push((format!("RS256 under kid {kid}"), token));
    }

    for (what, token) in &tokens {
        let answer = server.get(&a.domain, "/api/me/", Some(token)).await;
        assert_eq!(answer, (401, bad_access("Token is invalid")), "{what}");
        let body = json!({"token": token});
        let answer = server
            .send("POST", &a.domain, "/api/token/verify/", None, &body)
            .await;
        assert_eq!(answer, (401, not_valid("Token is invalid")), "{what}");
    }
    // Still serving, and the tables are intact.
    assert_eq!(server.get(&a.domain, "/api/me/", Some(&good)).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let pool = pool();
    let server = TestServer::start().await;
    let a = tenant_with_alice(&pool, &server, "clock").await;
    let with = |token_type: &str, exp: i64, extra: Value| {
        let mut claims = claims(token_type, a.id, &a.schema, 0);
        claims["exp"] = json!(exp);
        claims["iat"] = json!(now() - 600);
        for (name, value) in extra.as_object().unwrap() {
            claims[name] = value.clone();
        }
        sign(&claims)
    };
    let me = async |token: String| server.get(&a.domain, "/api/me/", Some(&token)).await;

    // Controls: a live token, and one whose nbf has passed.
    assert_eq!(me(with("access", now() + 300, json!({}))).await.0, 200);
    let passed = json!({"nbf": now() - 10});
    assert_eq!(me(with("access", now() + 300, passed)).await.0, 200);

    // Expired (simplejwt: expired when exp <= now, leeway 0).
    for exp in [now() - 1, now() - 86_400, now(), 0] {
        let answer = me(with("access", exp, json!({}))).await;
        assert_eq!(answer, (401, bad_access("Token is expired")), "exp {exp}");
        let body = json!({"refresh": with("refresh", exp, json!({}))});
        let answer = server
            .send("POST", &a.domain, "/api/token/refresh/", None, &body)
            .await;
        assert_eq!(answer, (401, not_valid("Token is expired")), "exp {exp}");
    }

    // Not yet valid.
    for nbf in [now() + 60, now() + 86_400 * 365] {
        let extra = json!({"nbf": nbf});
        let answer = me(with("access", now() + 300, extra.clone())).await;
        assert_eq!(answer, (401, bad_access("Token is invalid")), "nbf {nbf}");
        let body = json!({"refresh": with("refresh", now() + 300, extra)});
        let answer = server
            .send("POST", &a.domain, "/api/token/refresh/", None, &body)
            .await;
        assert_eq!(answer, (401, not_valid("Token is invalid")), "nbf {nbf}");
    }
    server.stop().await;
}

/// simplejwt 5.5 decodes with PyJWT, which (since 2.6) refuses a token whose
/// `iat` lies in the future as `ImmatureSignatureError`, and simplejwt
/// answers that "Token is invalid". The contract defers to simplejwt where
/// it is silent.
#[tokio::test]
async fn a_token_issued_in_the_future_is_refused_like_simplejwt() {
    let pool = pool();
    let server = TestServer::start().await;
    let a = tenant_with_alice(&pool, &server, "iat").await;
    let day = 86_400;
    let mut access = claims("access", a.id, &a.schema, 300);
    access["iat"] = json!(now() + day);
    access["exp"] = json!(now() + day + 300);
    let answer = server
        .get(&a.domain, "/api/me/", Some(&sign(&access)))
        .await;
    assert_eq!(answer, (401, bad_access("Token is invalid")));
    server.stop().await;
}

async fn set_active(pool: &Pool, schema: &str, id: i64, on: bool) {
    let scope = Scope::begin(pool, schema).await.unwrap();
    let sql = "UPDATE auth_user SET is_active = $2 WHERE id = $1::int8";
    assert_eq!(scope.client().execute(sql, &[&id, &on]).await.unwrap(), 1);
    scope.commit().await.unwrap();
}

async fn delete_user(pool: &Pool, schema: &str, id: i64) {
    let scope = Scope::begin(pool, schema).await.unwrap();
    let sql = "DELETE FROM auth_user WHERE id = $1::int8";
    assert_eq!(scope.client().execute(sql, &[&id]).await.unwrap(), 1);
    scope.commit().await.unwrap();
}

/// Waits until `token` gets `code` on `/api/me/`.
async fn wait_refused(server: &TestServer, domain: &str, token: &str, code: &str) {
    eventually(code, || async move {
        let (status, body) = server.get(domain, "/api/me/", Some(token)).await;
        status == 401 && body["code"] == code
    })
    .await;
}

#[tokio::test]
async fn deactivated_and_deleted_users_cannot_refresh_log_in_or_write() {
    let pool = pool();
    let mut config = test_config();
    config.auth.user_cache_ttl = Duration::from_millis(100);
    let server = TestServer::start_with(config).await;
    let (schema, domain) = tenant(&pool, "gone").await;
    let idle = user(&pool, &schema, "idle", PASSWORD, false).await;
    let gone = user(&pool, &schema, "gone", PASSWORD, false).await;
    let (idle_access, idle_refresh) = server.login(&domain, "idle", PASSWORD).await;
    let (gone_access, gone_refresh) = server.login(&domain, "gone", PASSWORD).await;
    let post = r#"{"title": "mine", "body": "mine"}"#;
    let (status, own) = call(
        &server,
        "POST",
        &domain,
        "/api/posts/",
        Some(&idle_access),
        Some(post),
    )
    .await;
    assert_eq!(status, 201, "{own}");

    set_active(&pool, &schema, idle, false).await;
    delete_user(&pool, &schema, gone).await;
    wait_refused(&server, &domain, &idle_access, "user_inactive").await;
    wait_refused(&server, &domain, &gone_access, "user_not_found").await;

    // Refresh and login are refused for both.
    let no_account = json!({
        "detail": "No active account found for the given token.",
        "code": "no_active_account",
    });
    let credentials = json!({
        "detail": "No active account found with the given credentials",
        "code": "no_active_account",
    });
    for (name, refresh) in [("idle", &idle_refresh), ("gone", &gone_refresh)] {
        let body = json!({"refresh": refresh});
        let answer = server
            .send("POST", &domain, "/api/token/refresh/", None, &body)
            .await;
        assert_eq!(answer, (401, no_account.clone()), "{name}");
        let body = json!({"username": name, "password": PASSWORD});
        let answer = server
            .send("POST", &domain, "/api/token/", None, &body)
            .await;
        assert_eq!(answer, (401, credentials.clone()), "{name}");
    }

    // The inactive user writes nothing, and the post is unchanged.
    let inactive = json!({"detail": "User is inactive", "code": "user_inactive"});
    let created = call(
        &server,
        "POST",
        &domain,
        "/api/posts/",
        Some(&idle_access),
        Some(post),
    );
    assert_eq!(created.await, (401, inactive.clone()));
    let path = format!("/api/posts/{}/", own["id"]);
    let patch = r#"{"title": "changed"}"#;
    let changed = call(
        &server,
        "PATCH",
        &domain,
        &path,
        Some(&idle_access),
        Some(patch),
    );
    assert_eq!(changed.await, (401, inactive.clone()));
    let deleted = call(&server, "DELETE", &domain, &path, Some(&idle_access), None);
    assert_eq!(deleted.await, (401, inactive));
    let titles: Vec<String> = {
        let scope = Scope::begin(&pool, &schema).await.unwrap();
        let rows = scope
            .client()
            .query("SELECT title::text FROM blog_post", &[])
            .await
            .unwrap();
        rows.iter().map(|row| row.get(0)).collect()
    };
    assert_eq!(titles, ["mine"]);

    // The same username again is another user: the old tokens stay dead.
    let again = user(&pool, &schema, "gone", PASSWORD, false).await;
    assert_ne!(again, gone);
    let (fresh, _) = server.login(&domain, "gone", PASSWORD).await;
    assert_eq!(server.get(&domain, "/api/me/", Some(&fresh)).await.0, 200);
    let not_found = json!({"detail": "User not found", "code": "user_not_found"});
    assert_eq!(
        server.get(&domain, "/api/me/", Some(&gone_access)).await,
        (401, not_found)
    );
    let body = json!({"refresh": gone_refresh});
    let answer = server
        .send("POST", &domain, "/api/token/refresh/", None, &body)
        .await;
    assert_eq!(answer, (401, no_account));
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Schema names.

/// The `botora` binary on this binary's database; returns (success, output).
fn botora(args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write as _;
    // A file per call: tests run at once, and a half-written file would
    // silently drop the reserved name.
    let name = format!(
        "botora-security-{}-{}.toml",
        std::process::id(),
        unique("cli")
    );
    let config = std::env::temp_dir().join(name);
    let text =
        "[auth]\npassword_iterations = 1000\n[tenancy]\nreserved_schemas = [\"reserved_x\"]\n";
    std::fs::write(&config, text).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_botora"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .env("BOTORA_DATABASE_URL", database_url())
        .env("BOTORA_SIGNING_KEY", TEST_SIGNING_KEY)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    std::fs::remove_file(&config).ok();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Rows of `tenants_client` and schemas named `schema`, and domain rows.
async fn traces(pool: &Pool, schema: &str, domain: &str) -> (i64, i64) {
    let row = pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT (SELECT count(*) FROM public.tenants_client WHERE schema_name = $1),
                    (SELECT count(*) FROM public.tenants_domain WHERE domain = $2)",
            &[&schema, &domain],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn hostile_schema_names_are_refused_by_the_cli_and_the_api() {
    let pool = pool();
    let mut config = test_config();
    config.tenancy.reserved_schemas = vec!["reserved_x".into()];
    let server = TestServer::start_with(config).await;
    let (root, _) = operator(&pool, &server).await;
    let canary = canary(&pool).await;
    let names = [
        format!("a\"; DROP SCHEMA {canary} CASCADE; --"),
        "a\"; DROP SCHEMA public; --".into(),
        format!("{canary}; DROP SCHEMA {canary} CASCADE"),
        "pg_toast".into(),
        "pg_catalog".into(),
        "pg_evil".into(),
        "public".into(),
        "information_schema".into(),
        "reserved_x".into(),
        "Acme".into(),
        "ACME".into(),
        "a".repeat(64),
        "tenant_é".into(),
        "тенант".into(),
        "acme-corp".into(),
        "1acme".into(),
        "a b".into(),
        "".into(),
        "$user".into(),
    ];
    for (index, name) in names.iter().enumerate() {
        let existed = schema_exists(&pool, name).await;

        // The command line.
        let domain = format!("hostile-cli-{index}.test");
        let schema_arg = format!("--schema={name}");
        let args = [
            "tenant",
            "create",
            &schema_arg,
            "--name",
            "Hostile",
            "--domain",
            &domain,
        ];
        let (ok, output) = botora(&args, "");
        assert!(!ok, "{name:?} was accepted: {output}");
        assert!(
            output.contains("schema_name: "),
            "{name:?}: unclear error: {output}"
        );
        assert!(!output.contains("panicked"), "{name:?}: {output}");
        assert_eq!(
            traces(&pool, name, &domain).await,
            (0, 0),
            "{name:?} via the CLI"
        );

        // The API.
        let domain = format!("hostile-api-{index}.test");
        let body =
            json!({"schema_name": name, "name": "Hostile", "on_trial": true, "domains": [domain]});
        let (status, answer) = server
            .send("POST", PUBLIC, "/api/tenants/", Some(&root), &body)
            .await;
        assert_eq!(status, 400, "{name:?}: {answer}");
        let messages = answer["schema_name"].as_array();
        assert!(
            messages.is_some_and(|m| !m.is_empty()),
            "{name:?}: {answer}"
        );
        assert_eq!(
            traces(&pool, name, &domain).await,
            (0, 0),
            "{name:?} via the API"
        );
        assert_eq!(schema_exists(&pool, name).await, existed, "{name:?}");
    }

    // A null character, which no command line can carry.
    let body = json!({"schema_name": "a\u{0}b", "name": "Hostile", "domains": ["nul.test"]});
    let (status, answer) = server
        .send("POST", PUBLIC, "/api/tenants/", Some(&root), &body)
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.get("schema_name").is_some(), "{answer}");

    assert!(
        schema_exists(&pool, &canary).await,
        "the canary schema was dropped"
    );
    assert_public_intact(&pool).await;
    server.stop().await;
}

/// `text` with every byte but letters, digits and `_` percent-encoded.
fn encode_path(text: &str) -> String {
    text.bytes()
        .map(|b| match b.is_ascii_alphanumeric() || b == b'_' {
            true => (b as char).to_string(),
            false => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn hostile_names_in_every_other_command_and_route_touch_nothing() {
    let pool = pool();
    let server = TestServer::start().await;
    let (root, _) = operator(&pool, &server).await;
    let canary = canary(&pool).await;
    let hostile = format!("x\"; DROP SCHEMA {canary} CASCADE; --");

    // Every CLI command that takes a schema name.
    let commands: [&[&str]; 7] = [
        &["tenant", "show", &hostile],
        &["tenant", "update", &hostile, "--name", "y"],
        &["tenant", "delete", &hostile],
        &["domain", "add", &hostile, "hostile-add.test"],
        &["domain", "remove", &hostile, "hostile-add.test"],
        &["user", "create", "mallory", "--tenant", &hostile],
        &["migrate", "--tenant", &hostile],
    ];
    for args in commands {
        let (ok, output) = botora(args, "mallory-password\n");
        assert!(!ok, "{args:?} succeeded: {output}");
        assert!(!output.contains("panicked"), "{args:?}: {output}");
    }
    let (ok, output) = botora(&["tenant", "delete", "public"], "");
    assert!(!ok, "deleting public succeeded: {output}");

    // Every route that takes one, encoded and (where HTTP allows) raw.
    let encoded = encode_path(&hostile);
    let raw_name = format!("x\";DROP%20SCHEMA%20{canary}%20CASCADE;--");
    for name in [
        encoded.as_str(),
        raw_name.as_str(),
        "public",
        "..",
        "%2e%2e",
    ] {
        let routes = [
            ("GET", format!("/api/tenants/{name}/"), None),
            (
                "PATCH",
                format!("/api/tenants/{name}/"),
                Some(r#"{"name": "y"}"#),
            ),
            (
                "POST",
                format!("/api/tenants/{name}/domains/"),
                Some(r#"{"domain": "h.test"}"#),
            ),
            (
                "DELETE",
                format!("/api/tenants/{name}/domains/h.test/"),
                None,
            ),
            ("DELETE", format!("/api/tenants/{name}/"), None),
        ];
        for (method, path, body) in routes {
            let (status, answer) = call(&server, method, PUBLIC, &path, Some(&root), body).await;
            let refused = status == 404 || (name == "public" && status == 400);
            assert!(refused, "{method} {path}: {status} {answer}");
        }
    }
    let head = format!(
        "DELETE /api/tenants/{raw_name}/ HTTP/1.1\r\nHost: {PUBLIC}\r\nAuthorization: Bearer {root}\r\n"
    );
    let (status, body) = raw(server.http, &head).await;
    assert!(matches!(status, 400 | 404), "{status} {body}");

    assert!(
        schema_exists(&pool, &canary).await,
        "the canary schema was dropped"
    );
    assert_public_intact(&pool).await;
    server.stop().await;
}

#[tokio::test]
async fn an_existing_schema_with_a_hostile_name_is_migrated_and_served_quoted() {
    let pool = pool();
    let canary = canary(&pool).await;
    // django-tenants' rows may hold names Botora would not create.
    let schema = format!("H\"; DROP SCHEMA {canary} CASCADE; --");
    let domain = unique("hostile-row-").replace('_', "-") + ".test";
    let conn = pool.get().await.unwrap();
    let id: i64 = conn
        .query_one(
            "INSERT INTO public.tenants_client (schema_name, name, paid_until, on_trial, created_on)
             VALUES ($1, 'Hostile row', NULL, true, current_date) RETURNING id::int8",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    conn.execute(
        "INSERT INTO public.tenants_domain (domain, tenant_id, is_primary) VALUES ($1, $2::int8, true)",
        &[&domain, &id],
    )
    .await
    .unwrap();
    drop(conn);

    // Migrated by the CLI, quoted.
    let (ok, output) = botora(&["migrate", "--tenant", &schema], "");
    assert!(ok, "{output}");
    assert!(schema_exists(&pool, &schema).await, "{output}");
    assert!(
        schema_exists(&pool, &canary).await,
        "the canary schema was dropped"
    );

    // Served, quoted.
    user(&pool, &schema, "alice", PASSWORD, false).await;
    let server = TestServer::start().await;
    let (access, _) = server.login(&domain, "alice", PASSWORD).await;
    let post = json!({"title": "quoted", "body": "quoted"});
    let (status, answer) = server
        .send("POST", &domain, "/api/posts/", Some(&access), &post)
        .await;
    assert_eq!(status, 201, "{answer}");
    let (status, list) = server.get(&domain, "/api/posts/", Some(&access)).await;
    assert_eq!((status, list["count"].clone()), (200, json!(1)), "{list}");
    let (status, info) = server.get(&domain, "/api/tenant/", Some(&access)).await;
    assert_eq!((status, info["schema_name"].clone()), (200, json!(schema)));

    // Deleted by the CLI, quoted: the canary survives.
    let (ok, output) = botora(&["tenant", "delete", &schema], "");
    assert!(ok, "{output}");
    assert!(!schema_exists(&pool, &schema).await, "{output}");
    assert!(
        schema_exists(&pool, &canary).await,
        "the canary schema was dropped"
    );
    assert_public_intact(&pool).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------
// SQL in values, and paths.

const SQL_PAYLOADS: [&str; 10] = [
    "'; DROP TABLE blog_post; --",
    "\"; DROP TABLE auth_user; --",
    "' OR '1'='1",
    "1; DELETE FROM auth_user",
    "$1 $2 $$; DROP SCHEMA public CASCADE; $$",
    "') ; TRUNCATE public.tenants_client CASCADE; --",
    "E'\\x27'; SELECT pg_sleep(10); --",
    "%' OR title LIKE '%",
    "\\'; DROP TABLE blog_post; --",
    "Robert'); DROP TABLE Students;--",
];

#[tokio::test]
async fn sql_in_tenant_values_is_stored_verbatim_or_refused() {
    let pool = pool();
    let server = TestServer::start().await;
    let a = tenant_with_alice(&pool, &server, "sqli").await;
    let mut created = Vec::new();

    // Titles and bodies: stored and shown verbatim.
    for payload in SQL_PAYLOADS {
        let body = json!({"title": payload, "body": payload});
        let (status, post) = server
            .send("POST", &a.domain, "/api/posts/", Some(&a.access), &body)
            .await;
        assert_eq!(status, 201, "{payload}: {post}");
        assert_eq!(
            (post["title"].as_str(), post["body"].as_str()),
            (Some(payload), Some(payload))
        );
        let path = format!("/api/posts/{}/", post["id"]);
        let patch = json!({"body": format!("{payload} (patched)")});
        let (status, changed) = server
            .send("PATCH", &a.domain, &path, Some(&a.access), &patch)
            .await;
        assert_eq!(status, 200, "{payload}: {changed}");
        created.push((post["id"].as_i64().unwrap(), payload));
    }
    let scope = Scope::begin(&pool, &a.schema).await.unwrap();
    for (id, payload) in &created {
        let sql = "SELECT title::text, body FROM blog_post WHERE id = $1::int8";
        let row = scope.client().query_one(sql, &[id]).await.unwrap();
        let (title, body): (String, String) = (row.get(0), row.get(1));
        assert_eq!(
            (title.as_str(), body),
            (*payload, format!("{payload} (patched)"))
        );
    }
    scope.commit().await.unwrap();

    // Logins: refused, never a way in.
    let refused = json!({
        "detail": "No active account found with the given credentials",
        "code": "no_active_account",
    });
    for payload in SQL_PAYLOADS
        .iter()
        .chain(&["alice' --", "alice'/*", "alice\" OR \"\"=\""])
    {
        for body in [
            json!({"username": payload, "password": payload}),
            json!({"username": "alice", "password": payload}),
        ] {
            let answer = server
                .send("POST", &a.domain, "/api/token/", None, &body)
                .await;
            assert_eq!(answer, (401, refused.clone()), "{body}");
        }
    }

    // Page numbers and ids: not pages, not posts.
    let pages = [
        "1%20OR%201=1",
        "1;DROP%20TABLE%20blog_post",
        "1'",
        "(SELECT%201)",
        "1e3",
        "0x1",
    ];
    for page in pages {
        let answer = server
            .get(
                &a.domain,
                &format!("/api/posts/?page={page}"),
                Some(&a.access),
            )
            .await;
        assert_eq!(answer, (404, json!({"detail": "Invalid page."})), "{page}");
    }
    let ids = [
        "1%20OR%201=1",
        "1;DROP%20TABLE%20blog_post",
        "1'",
        "-0x1",
        "1.0",
        "%31",
    ];
    for id in ids {
        let answer = server
            .get(&a.domain, &format!("/api/posts/{id}/"), Some(&a.access))
            .await;
        assert_eq!(answer, (404, json!({"detail": "Not found."})), "{id}");
    }

    // Claims: signed with the real key, still only values.
    let mut sneaky = claims("access", a.id, &a.schema, 300);
    sneaky["user_id"] = json!("1 OR 1=1");
    let answer = server
        .get(&a.domain, "/api/me/", Some(&sign(&sneaky)))
        .await;
    assert_eq!(answer.0, 401, "{}", answer.1);
    let mut sneaky = claims("access", a.id, &a.schema, 300);
    sneaky["tenant"] = json!(format!("{}' OR '1'='1", a.schema));
    let answer = server
        .get(&a.domain, "/api/me/", Some(&sign(&sneaky)))
        .await;
    assert_eq!(answer, (401, bad_access("Token is invalid")));

    // Everything is still there.
    let (status, list) = server.get(&a.domain, "/api/posts/", Some(&a.access)).await;
    assert_eq!(
        (status, list["count"].clone()),
        (200, json!(SQL_PAYLOADS.len()))
    );
    assert_eq!(
        server.get(&a.domain, "/api/me/", Some(&a.access)).await.0,
        200
    );
    assert_public_intact(&pool).await;
    server.stop().await;
}

#[tokio::test]
async fn sql_in_operator_values_is_stored_verbatim_or_refused() {
    let pool = pool();
    let server = TestServer::start().await;
    let (root, _) = operator(&pool, &server).await;
    let (schema, domain) = tenant(&pool, "sqlop").await;

    // Tenant names: stored verbatim.
    for payload in SQL_PAYLOADS {
        let fresh = unique("sqlname");
        let new_domain = format!("{}.test", fresh.replace('_', "-"));
        let body = json!({"schema_name": fresh, "name": payload, "on_trial": true, "domains": [new_domain]});
        let (status, made) = server
            .send("POST", PUBLIC, "/api/tenants/", Some(&root), &body)
            .await;
        assert_eq!(
            (status, made["name"].as_str()),
            (201, Some(payload)),
            "{made}"
        );
        let patch = json!({"name": format!("{payload}!")});
        let path = format!("/api/tenants/{fresh}/");
        let (status, changed) = server
            .send("PATCH", PUBLIC, &path, Some(&root), &patch)
            .await;
        assert_eq!(
            (status, changed["name"].clone()),
            (200, json!(format!("{payload}!")))
        );
        let sql = "SELECT name::text FROM public.tenants_client WHERE schema_name = $1";
        let stored: String = scalar(&pool, sql, &[&fresh]).await;
        assert_eq!(stored, format!("{payload}!"));
    }

    // Domains: refused as values, in every place they enter.
    for payload in SQL_PAYLOADS
        .iter()
        .chain(&["a.test'--", "a.test;b.test", "a.test%00"])
    {
        let path = format!("/api/tenants/{schema}/domains/");
        let body = json!({"domain": payload});
        let (status, answer) = server.send("POST", PUBLIC, &path, Some(&root), &body).await;
        assert_eq!(status, 400, "{payload}: {answer}");
        assert!(answer.get("domain").is_some(), "{answer}");
        let fresh = unique("sqldom");
        let body =
            json!({"schema_name": fresh, "name": "n", "on_trial": true, "domains": [payload]});
        let (status, answer) = server
            .send("POST", PUBLIC, "/api/tenants/", Some(&root), &body)
            .await;
        assert_eq!(status, 400, "{payload}: {answer}");
        assert!(answer.get("domains").is_some(), "{answer}");
        assert!(!schema_exists(&pool, &fresh).await);
        let path = format!("/api/tenants/{schema}/domains/{}/", encode_path(payload));
        let (status, answer) = call(&server, "DELETE", PUBLIC, &path, Some(&root), None).await;
        assert_eq!(status, 404, "{payload}: {answer}");
    }

    // Hosts: refused before any lookup.
    for host in [
        "a.test';DROP TABLE tenants_domain;--",
        "a.test\"--",
        "a.test OR 1=1",
    ] {
        let (status, body) = raw(
            server.http,
            &format!("GET /api/me/ HTTP/1.1\r\nHost: {host}\r\n"),
        )
        .await;
        assert_eq!(status, 400, "{host}: {body}");
    }

    // The tenant and its domain are untouched.
    let path = format!("/api/tenants/{schema}/");
    let (status, info) = server.get(PUBLIC, &path, Some(&root)).await;
    assert_eq!(
        (status, info["domains"][0]["domain"].clone()),
        (200, json!(domain))
    );
    assert_public_intact(&pool).await;
    server.stop().await;
}

/// The title marker of a tenant's posts.
fn marker(schema: &str) -> String {
    format!("secret-of-{schema}")
}

#[tokio::test]
async fn path_tricks_reach_no_other_route_tenant_or_the_operators_api() {
    let pool = pool();
    let server = TestServer::start().await;
    let a = tenant_with_alice(&pool, &server, "path_a").await;
    let b = tenant_with_alice(&pool, &server, "path_b").await;
    posts(&pool, &a.schema, a.id, &marker(&a.schema), 2).await;
    posts(&pool, &b.schema, b.id, &marker(&b.schema), 2).await;
    let (root, _) = operator(&pool, &server).await;
    let leaks = |body: &str| body.contains(&marker(&b.schema)) || body.contains("schema_name");

    // Controls: the real route, and the documented missing slash.
    for path in ["/api/posts/", "/api/posts"] {
        let (status, body) = raw_get(&server, &a.domain, path, &a.access).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.contains(&marker(&a.schema)) && !leaks(&body), "{body}");
    }

    // On a tenant host.
    let tricks = [
        "/api/posts/../tenants/",
        "/api/posts/%2e%2e/tenants/",
        "/api/posts/%2E%2E/%2E%2E/api/tenants/",
        "/api/%2e%2e/api/tenants/",
        "/api/tenants/",
        "/api/tenants/../posts/",
        "//api//posts",
        "//api/posts/",
        "/api//posts/",
        "/api/posts%2F",
        "/api%2Fposts/",
        "/api/posts/1%2F..%2F..%2Fme/",
        "/api/./posts/",
        "/./api/posts/",
        "/api/posts/./",
        "/api/posts/..",
        "/API/posts/",
        "/api/posts/%00/",
        "/api/posts/1/../../me/",
        "/api/posts/?page=1/../../tenants/",
        "/api/posts/..%5C..%5Ctenants/",
    ];
    for path in tricks {
        let (status, body) = raw_get(&server, &a.domain, path, &a.access).await;
        assert!(matches!(status, 400 | 404), "{path}: {status} {body}");
        assert!(!leaks(&body), "{path}: {body}");
    }

    // Absolute-form targets name their own host, and the token follows it.
    let elsewhere = [
        format!("http://{}/api/posts/", b.domain),
        format!("http://{PUBLIC}/api/tenants/"),
    ];
    for target in elsewhere {
        let (status, body) = raw_get(&server, &a.domain, &target, &a.access).await;
        assert_eq!(status, 401, "{target}: {body}");
        assert!(!leaks(&body), "{target}: {body}");
    }

    // On the public host, with an operator's token.
    let operator_tricks = [
        "/api/posts/".to_owned(),
        "/api/tenants/../posts/".to_owned(),
        "/api/tenants/%2e%2e/".to_owned(),
        format!("/api/tenants/{}%2F..%2F{}/", a.schema, b.schema),
        format!("/api/tenants/{}/../{}/", a.schema, b.schema),
        format!("/api/tenants/{}/domains/..%2F{}/", a.schema, b.domain),
    ];
    for path in &operator_tricks {
        let (status, body) = raw_get(&server, PUBLIC, path, &root).await;
        assert!(matches!(status, 400 | 404 | 405), "{path}: {status} {body}");
        assert!(!body.contains("schema_name"), "{path}: {body}");
    }
    let head = format!(
        "DELETE /api/tenants/{}/domains/..%2F{}/ HTTP/1.1\r\nHost: {PUBLIC}\r\nAuthorization: Bearer {root}\r\n",
        a.schema, b.domain
    );
    assert_eq!(raw(server.http, &head).await.0, 404);
    let (status, _) = raw_get(&server, &b.domain, "/api/posts/", &b.access).await;
    assert_eq!(status, 200, "tenant B still serves at its domain");
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Secrets in logs and bodies.

const DB_SECRET: &str = "dbpw-Q7x2-never-log-this";
const SIGNING_SECRET: &str = "signing-key-Z9k4-never-log-this-either";
const USER_SECRET: &str = "user-pw-M3v8-never-log";
const WRONG_SECRET: &str = "wrong-pw-T5c1-never-log";

/// This binary's database URL with a password in it, and the password.
/// Without trust authentication an invented password cannot connect: then
/// the URL is the plain one and the signing key stands in as the secret.
async fn url_with_password() -> (String, String) {
    let url = database_url();
    let plain = (url.clone(), SIGNING_SECRET.to_owned());
    let Some((scheme, rest)) = url.split_once("://") else {
        return plain;
    };
    let Some((userinfo, location)) = rest.split_once('@') else {
        return plain;
    };
    if let Some((_, password)) = userinfo.split_once(':') {
        return (url.clone(), password.to_owned());
    }
    let with = format!("{scheme}://{userinfo}:{DB_SECRET}@{location}");
    match tokio_postgres::connect(&with, tokio_postgres::NoTls).await {
        Ok(_) => (with, DB_SECRET.to_owned()),
        Err(error) => {
            eprintln!("security: {error}; checking the signing key only");
            plain
        }
    }
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The environment that would override the config file.
const OVERRIDES: [&str; 6] = [
    "BOTORA_CONFIG",
    "BOTORA_DATABASE_URL",
    "BOTORA_SIGNING_KEY",
    "BOTORA_LISTEN",
    "BOTORA_ADMIN_LISTEN",
    "RUST_LOG",
];

/// `botora serve` as a child process with JSON debug logs, its output
/// collected as it comes; killed when dropped.
struct Served {
    child: tokio::process::Child,
    log: Arc<Mutex<String>>,
    http: SocketAddr,
    admin: SocketAddr,
    dir: PathBuf,
    config: PathBuf,
    /// The config file it started with.
    good: String,
}

impl Served {
    async fn start(label: &str, url: &str) -> Served {
        let dir = std::env::temp_dir().join(format!("botora-sec-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.toml");
        let (http, admin) = (free_port(), free_port());
        let good = format!(
            "[server]\nlisten = \"{http}\"\n\n[admin]\nlisten = \"{admin}\"\n\n\
             [database]\nurl = \"{url}\"\npool_size = 4\n\n\
             [tenancy]\npublic_hosts = [\"admin.test\"]\n\n\
             [log]\nlevel = \"debug\"\nformat = \"json\"\n\n\
             [auth]\nsigning_key = \"{SIGNING_SECRET}\"\npassword_iterations = 1000\n"
        );
        std::fs::write(&config, &good).unwrap();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_botora"));
        command.arg("--config").arg(&config).arg("serve");
        for name in OVERRIDES {
            command.env_remove(name);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        tokio::spawn(collect(child.stdout.take().unwrap(), Arc::clone(&log)));
        tokio::spawn(collect(child.stderr.take().unwrap(), Arc::clone(&log)));
        let served = Served {
            child,
            log,
            http,
            admin,
            dir,
            config,
            good,
        };
        let listening = "botora_tenant_listen_connected";
        let running = &served;
        eventually("the child server", || async move {
            running.metric(listening).await == 1.0
        })
        .await;
        served
    }

    /// A request to `path` on `host`: status and body text.
    async fn send(
        &self,
        method: &str,
        host: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, String) {
        let url = format!("http://{}{path}", self.http);
        let mut request = reqwest::Client::new()
            .request(method.parse().unwrap(), url)
            .header("Host", host);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        // A JSON string is sent as it is: the raw body, well-formed or not.
        if let Some(body) = body {
            let text = match body {
                Value::String(raw) => raw,
                other => other.to_string(),
            };
            request = request
                .header("Content-Type", "application/json")
                .body(text);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// The value of one series of `/metrics`, 0 when absent.
    async fn metric(&self, series: &str) -> f64 {
        let url = format!("http://{}/metrics", self.admin);
        let Ok(response) = reqwest::get(url).await else {
            return 0.0;
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
    }

    async fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        let mut kill = tokio::process::Command::new("kill");
        let status = kill.args([&format!("-{name}"), &pid]).status().await;
        assert!(status.unwrap().success(), "kill -{name} {pid}");
    }

    /// Rewrites the config, sends SIGHUP and waits for the outcome `want`
    /// (`success` or `failure`) to be counted once more.
    async fn reload(&self, text: &str, outcome: &str) {
        let series = format!("botora_config_reloads_total{{outcome=\"{outcome}\"}}");
        let before = self.metric(&series).await;
        std::fs::write(&self.config, text).unwrap();
        self.signal("HUP").await;
        let series = series.as_str();
        eventually("the reload", || async move {
            self.metric(series).await == before + 1.0
        })
        .await;
    }

    /// Stops the server with SIGTERM; returns everything it wrote.
    async fn stop(mut self) -> String {
        self.signal("TERM").await;
        let exited = tokio::time::timeout(DEADLINE, self.child.wait()).await;
        assert!(exited.expect("the child stops").unwrap().success());
        std::fs::remove_dir_all(&self.dir).ok();
        let log = self.log.lock().unwrap().clone();
        assert!(
            log.lines().all(|line| line.starts_with('{')),
            "not JSON lines: {log}"
        );
        log
    }
}

async fn collect(mut stream: impl tokio::io::AsyncRead + Unpin, log: Arc<Mutex<String>>) {
    let mut buffer = [0u8; 8192];
    while let Ok(n @ 1..) = stream.read(&mut buffer).await {
        let text = String::from_utf8_lossy(&buffer[..n]);
        log.lock().unwrap().push_str(&text);
    }
}

/// `botora --config PATH check`: (success, output).
fn botora_check(config: &Path) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_botora"));
    for name in OVERRIDES {
        command.env_remove(name);
    }
    let output = command.arg("--config").arg(config).arg("check").output();
    let output = output.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A token for `user_id` on `schema` signed with the child's key.
fn child_token(user_id: i64, schema: &str, lifetime: i64) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let claims = claims("access", user_id, schema, lifetime);
    forge_hmac(&header, &claims, SIGNING_SECRET.as_bytes())
}

/// Three tenants: sound, refusing the title "boom" (a 500) and missing its
/// schema (a 503); returns (schema, domain) of each and the writer's id.
async fn leak_tenants(pool: &Pool) -> ([(String, String); 3], i64) {
    let sound = tenant(pool, "leak").await;
    let broken = tenant(pool, "leak_broken").await;
    let gone = tenant(pool, "leak_gone").await;
    let writer = user(pool, &sound.0, "writer", USER_SECRET, false).await;
    user(pool, &broken.0, "writer", USER_SECRET, false).await;
    let sql = format!(
        "ALTER TABLE {}.blog_post ADD CONSTRAINT no_boom CHECK (title <> 'boom');
         DROP SCHEMA {} CASCADE",
        broken.0, gone.0
    );
    pool.get().await.unwrap().batch_execute(&sql).await.unwrap();
    ([sound, broken, gone], writer)
}

/// Config files a reload must refuse, each with the secrets in it.
fn refused_configs(good: &str, url: &str) -> [String; 4] {
    let hosts = "public_hosts = [\"admin.test\"]";
    let credentials = url.split_once('@').map_or(url, |(head, _)| head);
    let key_line = format!("signing_key = \"{SIGNING_SECRET}\"");
    [
        good.replace(hosts, &format!("{hosts}\ntimezone = \"Mars/Base\"")),
        good.replace(url, &format!("{credentials}@127.0.0.1:notaport/x")),
        good.replace(&key_line, &format!("signing_key = \"{SIGNING_SECRET}")),
        good.replace(&key_line, &format!("signing_key = {SIGNING_SECRET}")),
    ]
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_or_a_body() {
    let pool = pool();
    let (url, db_secret) = url_with_password().await;
    let (
        [
            (schema, domain),
            (broken, broken_domain),
            (gone, gone_domain),
        ],
        writer,
    ) = leak_tenants(&pool).await;
    let served = Served::start("leak", &url).await;
    let mut bodies = Vec::new();

    // Logins, right and wrong.
    let login = json!({"username": "writer", "password": USER_SECRET});
    let (status, text) = served
        .send("POST", &domain, "/api/token/", None, Some(login))
        .await;
    assert_eq!(status, 200, "{text}");
    let tokens: Value = serde_json::from_str(&text).unwrap();
    let access = tokens["access"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh"].as_str().unwrap().to_owned();
    let wrong = json!({"username": "writer", "password": WRONG_SECRET});
    let answer = served
        .send("POST", &domain, "/api/token/", None, Some(wrong))
        .await;
    assert_eq!(answer.0, 401);
    bodies.push(answer.1);

    // Tokens: good, then refused in four ways.
    let claims_part = access.split('.').nth(1).unwrap();
    let other_key = forge_hmac(
        &json!({"alg": "HS256"}),
        &claims("access", writer, &schema, 300),
        b"another-key",
    );
    let refusals = [
        other_key,
        child_token(writer, &schema, -10),
        format!("eyJhbGciOiJub25lIn0.{claims_part}."),
        "garbage".into(),
        refresh.clone(),
    ];
    let answer = served
        .send("GET", &domain, "/api/me/", Some(&access), None)
        .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    for token in &refusals {
        let answer = served
            .send("GET", &domain, "/api/me/", Some(token), None)
            .await;
        assert_eq!(answer.0, 401, "{}", answer.1);
        bodies.push(answer.1);
    }

    // A database error (500), a missing schema (503), bad JSON (400).
    let boom = json!({"title": "boom", "body": "boom"});
    let token = child_token(1, &broken, 300);
    let answer = served
        .send(
            "POST",
            &broken_domain,
            "/api/posts/",
            Some(&token),
            Some(boom),
        )
        .await;
    assert_eq!(
        answer,
        (500, r#"{"detail":"A server error occurred."}"#.into())
    );
    let token = child_token(1, &gone, 300);
    let answer = served
        .send("GET", &gone_domain, "/api/me/", Some(&token), None)
        .await;
    assert_eq!(answer.0, 503, "{}", answer.1);
    bodies.push(answer.1);
    let bad_json = format!("{{\"title\": \"{USER_SECRET}");
    let answer = served
        .send(
            "POST",
            &domain,
            "/api/posts/",
            Some(&access),
            Some(json!(bad_json)),
        )
        .await;
    assert_eq!(answer.0, 400, "{}", answer.1);
    assert!(answer.1.contains("JSON parse error"), "{}", answer.1);
    bodies.push(answer.1);

    // Refused reloads (each also through `botora check`), then a good one.
    let mut checks = Vec::new();
    let refused = refused_configs(&served.good, &url);
    for text in &refused {
        served.reload(text, "failure").await;
        checks.push(botora_check(&served.config));
    }
    served.reload(&served.good.clone(), "success").await;
    let log = served.stop().await;

    // The log says what happened...
    for expected in ["\"level\":\"DEBUG\"", "answering 500", "answering 503"] {
        assert!(log.contains(expected), "no {expected:?} in the log:\n{log}");
    }
    let reload_refused = log.matches("config reload refused").count();
    assert_eq!(reload_refused, refused.len(), "{log}");
    for (ok, output) in &checks {
        assert!(!ok && output.contains("config.toml"), "{output}");
    }

    // ...and holds no secret, nor do the answers.
    let secrets = [
        db_secret.as_str(),
        SIGNING_SECRET,
        USER_SECRET,
        WRONG_SECRET,
    ];
    for secret in secrets.iter().chain(&[access.as_str(), refresh.as_str()]) {
        let line = log.lines().find(|line| line.contains(secret));
        assert!(line.is_none(), "a log line holds {secret:?}: {line:?}");
        let check = checks.iter().find(|(_, output)| output.contains(secret));
        assert!(
            check.is_none(),
            "botora check printed {secret:?}: {check:?}"
        );
    }
    for secret in secrets {
        let body = bodies.iter().find(|body| body.contains(secret));
        assert!(body.is_none(), "a body holds {secret:?}: {body:?}");
    }
}

/// A login that rewrites an outdated hash must not log the new one: at
/// debug level, tokio-postgres logs every statement's parameters.
#[tokio::test]
async fn a_rehashed_password_never_reaches_the_debug_log() {
    let pool = pool();
    let (url, _) = url_with_password().await;
    let (schema, domain) = tenant(&pool, "rehash").await;
    let outdated = botora::auth::password::make(USER_SECRET, 500);
    let scope = Scope::begin(&pool, &schema).await.unwrap();
    scope
        .client()
        .execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                 email, is_staff, is_active, date_joined)
             VALUES ($1, false, 'legacy', '', '', '', false, true, now())",
            &[&outdated],
        )
        .await
        .unwrap();
    scope.commit().await.unwrap();
    let served = Served::start("rehash", &url).await;

    let login = json!({"username": "legacy", "password": USER_SECRET});
    let (status, text) = served
        .send("POST", &domain, "/api/token/", None, Some(login))
        .await;
    assert_eq!(status, 200, "{text}");
    let log = served.stop().await;

    // The hash was rewritten (1,000 iterations now), and is nowhere logged.
    let scope = Scope::begin(&pool, &schema).await.unwrap();
    let sql = "SELECT password::text FROM auth_user WHERE username = 'legacy'";
    let stored: String = scope.client().query_one(sql, &[]).await.unwrap().get(0);
    scope.commit().await.unwrap();
    assert!(stored.starts_with("pbkdf2_sha256$1000$"), "{stored}");
    let digest = stored.rsplit('$').next().unwrap();
    for secret in [stored.as_str(), digest, outdated.as_str(), USER_SECRET] {
        let line = log.lines().find(|line| line.contains(secret));
        assert!(line.is_none(), "a log line holds {secret:?}: {line:?}");
    }
}
