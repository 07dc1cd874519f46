//! Helpers of the security tests: requests written by hand, forged
//! tokens, database checks and tenants with a logged-in user.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use botora::config::KeyConfig;
use deadpool_postgres::Pool;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::{TEST_SIGNING_KEY, TestServer, into_json, tenant, unique, user};

/// The public host of `test_config()`.
pub(crate) const PUBLIC: &str = "admin.test";
pub(crate) const PASSWORD: &str = "security-pw-1";
/// Longest any poll waits before the test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// A request with an optional bearer token and a raw JSON body.
pub(crate) async fn call(
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
pub(crate) async fn raw(addr: std::net::SocketAddr, head: &str) -> (u16, String) {
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
pub(crate) async fn raw_get(
    server: &TestServer,
    host: &str,
    path: &str,
    token: &str,
) -> (u16, String) {
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n");
    raw(server.http, &head).await
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Botora's claims for `user_id` on `tenant`, valid for `lifetime` seconds.
pub(crate) fn claims(token_type: &str, user_id: i64, tenant: &str, lifetime: i64) -> Value {
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
pub(crate) fn forge(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

/// [`forge`] with an HMAC `secret`.
pub(crate) fn forge_hmac(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let key = EncodingKey::from_secret(secret).unwrap();
    forge(header, claims, &key, Algorithm::HS256)
}

/// An HS256 token signed with the test servers' key.
pub(crate) fn sign(claims: &Value) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT"});
    forge_hmac(&header, claims, TEST_SIGNING_KEY.as_bytes())
}

/// The 401 body of an access token that did not verify.
pub(crate) fn bad_access(message: &str) -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
    })
}

/// The 401 body of a token endpoint refusing a token.
pub(crate) fn not_valid(detail: &str) -> Value {
    json!({"detail": detail, "code": "token_not_valid"})
}

pub(crate) fn key_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
}

pub(crate) fn pem_key(kid: &str, algorithm: &str, stem: &str) -> KeyConfig {
    KeyConfig {
        kid: kid.into(),
        algorithm: algorithm.into(),
        secret: None,
        private_key: Some(key_file(&format!("{stem}.key"))),
        public_key: Some(key_file(&format!("{stem}.pub"))),
    }
}

/// Runs one statement on the fixtures' pool and returns the first column.
pub(crate) async fn scalar<T>(
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

pub(crate) async fn schema_exists(pool: &Pool, name: &str) -> bool {
    let sql = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname::text = $1)";
    scalar(pool, sql, &[&name]).await
}

/// A schema with one table, which hostile names try to drop.
pub(crate) async fn canary(pool: &Pool) -> String {
    let name = unique("canary_");
    let conn = pool.get().await.unwrap();
    let sql = format!("CREATE SCHEMA {name}; CREATE TABLE {name}.bird (id int)");
    conn.batch_execute(&sql).await.unwrap();
    name
}

/// The public tables every request depends on are all still there.
pub(crate) async fn assert_public_intact(pool: &Pool) {
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
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
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
pub(crate) async fn tenant_with_alice(
    pool: &Pool,
    server: &TestServer,
    prefix: &str,
) -> TenantSetup {
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

pub(crate) struct TenantSetup {
    pub(crate) schema: String,
    pub(crate) domain: String,
    pub(crate) id: i64,
    pub(crate) access: String,
    pub(crate) refresh: String,
}

/// A public superuser and its (access, refresh).
pub(crate) async fn operator(pool: &Pool, server: &TestServer) -> (String, String) {
    let name = unique("root");
    user(pool, "public", &name, PASSWORD, true).await;
    server.login(PUBLIC, &name, PASSWORD).await
}

/// `text` with every byte but letters, digits and `_` percent-encoded.
pub(crate) fn encode_path(text: &str) -> String {
    text.bytes()
        .map(|b| match b.is_ascii_alphanumeric() || b == b'_' {
            true => (b as char).to_string(),
            false => format!("%{b:02X}"),
        })
        .collect()
}
