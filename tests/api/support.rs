//! Helpers of the API tests: users in odd states, hand-made tokens and
//! requests that the harness's JSON helpers cannot send.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use botora::db::Scope;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::{TEST_SIGNING_KEY, TestServer, into_json, tenant, user};

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A user whose stored password is `encoded` as given; returns its id.
pub(crate) async fn user_with_hash(
    pool: &deadpool_postgres::Pool,
    schema: &str,
    username: &str,
    encoded: &str,
    active: bool,
) -> i64 {
    let scope = Scope::begin(pool, schema).await.unwrap();
    let row = scope
        .client()
        .query_one(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                 email, is_staff, is_active, date_joined)
             VALUES ($1, false, $2, '', '', '', false, $3, now()) RETURNING id::int8",
            &[&encoded, &username, &active],
        )
        .await
        .unwrap();
    scope.commit().await.unwrap();
    row.get(0)
}

/// A tenant with user `alice` logged in: (schema, domain, alice's id, access).
pub(crate) async fn tenant_with_alice(
    pool: &deadpool_postgres::Pool,
    server: &TestServer,
    prefix: &str,
) -> (String, String, i64, String) {
    let (schema, domain) = tenant(pool, prefix).await;
    let id = user(pool, &schema, "alice", "pw-alice", false).await;
    let (access, _) = server.login(&domain, "alice", "pw-alice").await;
    (schema, domain, id, access)
}

/// Runs one statement in `schema` and commits.
pub(crate) async fn execute(
    pool: &deadpool_postgres::Pool,
    schema: &str,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> u64 {
    let scope = Scope::begin(pool, schema).await.unwrap();
    let changed = scope.client().execute(sql, params).await.unwrap();
    scope.commit().await.unwrap();
    changed
}

/// Sets a user's `is_active` with plain SQL.
pub(crate) async fn set_active(pool: &deadpool_postgres::Pool, schema: &str, id: i64, on: bool) {
    let sql = "UPDATE auth_user SET is_active = $2 WHERE id = $1::int8";
    assert_eq!(execute(pool, schema, sql, &[&id, &on]).await, 1);
}

/// Deletes a user (one without posts) with plain SQL.
pub(crate) async fn delete_user(pool: &deadpool_postgres::Pool, schema: &str, id: i64) {
    let sql = "DELETE FROM auth_user WHERE id = $1::int8";
    assert_eq!(execute(pool, schema, sql, &[&id]).await, 1);
}

/// The password hash stored for `username`.
pub(crate) async fn stored_hash(
    pool: &deadpool_postgres::Pool,
    schema: &str,
    username: &str,
) -> String {
    let scope = Scope::begin(pool, schema).await.unwrap();
    let row = scope
        .client()
        .query_one(
            "SELECT password::text FROM auth_user WHERE username = $1",
            &[&username],
        )
        .await
        .unwrap();
    scope.commit().await.unwrap();
    row.get(0)
}

/// The member names of a JSON object, sorted (serde_json may keep them in
/// the order they were written or sort them, depending on its features).
pub(crate) fn key_set(object: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = object
        .as_object()
        .unwrap_or_else(|| panic!("{object} is an object"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// The payload of a JWT, decoded without any check.
pub(crate) fn claims_of(token: &str) -> Value {
    json_part(token, 1)
}

/// The header of a JWT, decoded without any check.
pub(crate) fn header_of(token: &str) -> Value {
    json_part(token, 0)
}

fn json_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWT has three parts");
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .expect("JWT parts are base64url");
    serde_json::from_slice(&bytes).expect("JWT parts are JSON")
}

/// An HS256 token over `claims`, signed with `key`, as PyJWT (and so
/// simplejwt) writes it: header `{"alg":"HS256","typ":"JWT"}`, no `kid`.
pub(crate) fn sign_with(claims: &Value, key: &str) -> String {
    sign_as(Algorithm::HS256, claims, key)
}

/// A token over `claims` signed with the HMAC `algorithm` and `key`.
pub(crate) fn sign_as(algorithm: Algorithm, claims: &Value, key: &str) -> String {
    let key = EncodingKey::from_secret(key.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(algorithm), claims, &key).unwrap()
}

/// [`sign_with`] the servers' own key.
pub(crate) fn sign(claims: &Value) -> String {
    sign_with(claims, TEST_SIGNING_KEY)
}

/// simplejwt's claims for `user_id`, issued now and expiring `lifetime`
/// seconds from now (negative: already expired), with no `tenant`.
pub(crate) fn simplejwt_claims(token_type: &str, user_id: Value, lifetime: i64) -> Value {
    let exp = now() + lifetime;
    // Issued a second ago, or a second before it expired.
    let iat = exp.min(now()) - 1;
    json!({
        "token_type": token_type,
        "exp": exp,
        "iat": iat,
        "jti": uuid::Uuid::new_v4().simple().to_string(),
        "user_id": user_id,
    })
}

/// [`simplejwt_claims`] plus the `tenant` claim Botora adds.
pub(crate) fn bound_claims(token_type: &str, user_id: i64, tenant: &str, lifetime: i64) -> Value {
    let mut claims = simplejwt_claims(token_type, json!(user_id.to_string()), lifetime);
    claims["tenant"] = json!(tenant);
    claims
}

/// The 401 body of an access token that did not verify.
pub(crate) fn bad_access_token(message: &str) -> Value {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{
            "token_class": "AccessToken",
            "token_type": "access",
            "message": message,
        }],
    })
}

/// The 401 body of a token endpoint refusing a token.
pub(crate) fn token_not_valid(detail: &str) -> Value {
    json!({"detail": detail, "code": "token_not_valid"})
}

/// The 401 body of a login that failed.
pub(crate) fn no_active_account() -> Value {
    json!({
        "detail": "No active account found with the given credentials",
        "code": "no_active_account",
    })
}

/// An answer with its headers.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

/// A request with a raw `Authorization` value and a raw body.
pub(crate) async fn raw_request(
    server: &TestServer,
    method: &str,
    host: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = server
        .client
        .request(method, server.url(path))
        .header("Host", host);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let headers = response.headers().clone();
    let (status, body) = into_json(response).await;
    Answer {
        status,
        headers,
        body,
    }
}

/// Checks that `text` is an RFC 3339 UTC timestamp written with `Z`.
pub(crate) fn assert_utc_timestamp(text: &Value) {
    let text = text
        .as_str()
        .unwrap_or_else(|| panic!("{text} is a string"));
    assert!(text.ends_with('Z'), "{text} ends in Z");
    chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"));
}
