//! `POST /api/token/refresh/` and `POST /api/token/verify/`.

use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

async fn refresh(server: &TestServer, host: &str, token: &str) -> (u16, Value) {
    let body = json!({"refresh": token});
    server
        .send("POST", host, "/api/token/refresh/", None, &body)
        .await
}

async fn verify(server: &TestServer, host: &str, token: &str) -> (u16, Value) {
    let body = json!({"token": token});
    server
        .send("POST", host, "/api/token/verify/", None, &body)
        .await
}

/// Tokens that no endpoint of this tenant may accept, with the detail of
/// the refusal; `refresh` is a valid refresh token of the tenant's user
/// `id` and `schema` is the tenant's.
fn forged_tokens(
    refresh: &str,
    schema: &str,
    id: i64,
) -> Vec<(&'static str, String, &'static str)> {
    let invalid = "Token is invalid";
    let payload = refresh.split('.').nth(1).unwrap();
    let none_header = "eyJhbGciOiJub25lIn0";
    let mut tampered = refresh.to_owned();
    tampered.push('x');
    vec![
        ("garbage", "garbage".to_owned(), invalid),
        ("three dots", "a.b.c".to_owned(), invalid),
        ("alg none", format!("{none_header}.{payload}."), invalid),
        ("tampered signature", tampered, invalid),
        (
            "another key",
            sign_with(
                &bound_claims("refresh", id, schema, 600),
                "another-key-entirely",
            ),
            invalid,
        ),
        (
            "expired",
            sign(&bound_claims("refresh", id, schema, -10)),
            "Token is expired",
        ),
        (
            "unknown type",
            sign(&bound_claims("sliding", id, schema, 600)),
            invalid,
        ),
    ]
}

#[tokio::test]
async fn refresh_answers_a_new_access_token_only() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "refresh").await;
    let id = user(&pool, &schema, "alice", "pw-alice", false).await;
    let (_, refresh_token) = server.login(&domain, "alice", "pw-alice").await;

    let (status, answer) = refresh(&server, &domain, &refresh_token).await;
    assert_eq!(status, 200, "{answer}");
    let keys = key_set(&answer);
    assert_eq!(keys, ["access"]);
    let access = answer["access"].as_str().unwrap();
    let claims = claims_of(access);
    assert_eq!(claims["token_type"], "access");
    assert_eq!(claims["user_id"], json!(id.to_string()));
    assert_eq!(claims["tenant"], json!(schema));
    assert_eq!(server.get(&domain, "/api/me/", Some(access)).await.0, 200);

    // Without rotation the refresh token keeps working.
    assert_eq!(refresh(&server, &domain, &refresh_token).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn with_rotation_refresh_also_answers_a_new_refresh_token() {
    let pool = pool();
    let mut config = test_config();
    config.auth.rotate_refresh_tokens = true;
    let server = TestServer::start_with(config).await;
    let (schema, domain) = tenant(&pool, "rotate").await;
    let id = user(&pool, &schema, "alice", "pw-alice", false).await;
    let (_, first) = server.login(&domain, "alice", "pw-alice").await;

    let (status, answer) = refresh(&server, &domain, &first).await;
    assert_eq!(status, 200, "{answer}");
    let keys = key_set(&answer);
    assert_eq!(keys, ["access", "refresh"]);
    let second = answer["refresh"].as_str().unwrap();
    let claims = claims_of(second);
    assert_eq!(claims["token_type"], "refresh");
    assert_eq!(claims["user_id"], json!(id.to_string()));
    assert_eq!(claims["tenant"], json!(schema));
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 86_400);
    assert_ne!(claims["jti"], claims_of(&first)["jti"]);
    assert_eq!(refresh(&server, &domain, second).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn refresh_refuses_wrong_type_foreign_forged_and_expired_tokens() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "refuse").await;
    let (other_schema, other_domain) = tenant(&pool, "refuseother").await;
    let id = user(&pool, &schema, "alice", "pw-alice", false).await;
    let other_id = user(&pool, &other_schema, "alice", "pw-alice", false).await;
    assert_eq!(id, other_id, "both tenants number their users alike");
    let (access, refresh_token) = server.login(&domain, "alice", "pw-alice").await;
    let (_, foreign) = server.login(&other_domain, "alice", "pw-alice").await;

    let invalid = token_not_valid("Token is invalid");
    assert_eq!(
        refresh(&server, &domain, &access).await,
        (401, invalid.clone())
    );
    assert_eq!(
        refresh(&server, &domain, &foreign).await,
        (401, invalid.clone())
    );
    let unbound = sign(&simplejwt_claims("refresh", json!(id.to_string()), 600));
    assert_eq!(refresh(&server, &domain, &unbound).await, (401, invalid));
    for (what, token, detail) in forged_tokens(&refresh_token, &schema, id) {
        let answer = refresh(&server, &domain, &token).await;
        assert_eq!(answer, (401, token_not_valid(detail)), "{what}");
    }
    server.stop().await;
}

#[tokio::test]
async fn refresh_needs_its_field() {
    let pool = pool();
    let server = TestServer::start().await;
    let (_, domain) = tenant(&pool, "refreshfield").await;
    let cases = [
        (json!({}), "This field is required."),
        (json!({"refresh": ""}), "This field may not be blank."),
        (json!({"refresh": null}), "This field may not be null."),
        (json!({"refresh": ["a"]}), "Not a valid string."),
    ];
    for (body, message) in cases {
        let answer = server
            .send("POST", &domain, "/api/token/refresh/", None, &body)
            .await;
        assert_eq!(answer, (400, json!({"refresh": [message]})), "{body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn refresh_for_a_deleted_or_inactive_user_is_refused() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "refreshgone").await;
    let gone = user(&pool, &schema, "gone", "pw-gone", false).await;
    let idle = user(&pool, &schema, "idle", "pw-idle", false).await;
    let (_, gone_refresh) = server.login(&domain, "gone", "pw-gone").await;
    let (_, idle_refresh) = server.login(&domain, "idle", "pw-idle").await;
    delete_user(&pool, &schema, gone).await;
    set_active(&pool, &schema, idle, false).await;

    let refused = json!({
        "detail": "No active account found for the given token.",
        "code": "no_active_account",
    });
    assert_eq!(
        refresh(&server, &domain, &gone_refresh).await,
        (401, refused.clone())
    );
    assert_eq!(
        refresh(&server, &domain, &idle_refresh).await,
        (401, refused.clone())
    );

    // A user id that is not a number names nobody either.
    let mut claims = bound_claims("refresh", 1, &schema, 600);
    claims["user_id"] = json!("abc");
    assert_eq!(
        refresh(&server, &domain, &sign(&claims)).await,
        (401, refused)
    );

    // Made active again, the same token works.
    set_active(&pool, &schema, idle, true).await;
    assert_eq!(refresh(&server, &domain, &idle_refresh).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn verify_accepts_both_token_types_of_this_tenant_only() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "verify").await;
    let (other_schema, other_domain) = tenant(&pool, "verifyother").await;
    let id = user(&pool, &schema, "alice", "pw-alice", false).await;
    user(&pool, &other_schema, "alice", "pw-alice", false).await;
    let (access, refresh_token) = server.login(&domain, "alice", "pw-alice").await;
    let (foreign_access, foreign_refresh) = server.login(&other_domain, "alice", "pw-alice").await;

    assert_eq!(verify(&server, &domain, &access).await, (200, json!({})));
    assert_eq!(
        verify(&server, &domain, &refresh_token).await,
        (200, json!({}))
    );

    let invalid = token_not_valid("Token is invalid");
    for token in [&foreign_access, &foreign_refresh] {
        assert_eq!(
            verify(&server, &domain, token).await,
            (401, invalid.clone())
        );
    }
    assert_eq!(
        verify(&server, "admin.test", &access).await,
        (401, invalid.clone())
    );
    let unbound = sign(&simplejwt_claims("access", json!(id.to_string()), 600));
    assert_eq!(verify(&server, &domain, &unbound).await, (401, invalid));
    let expired_access = sign(&bound_claims("access", id, &schema, -1));
    assert_eq!(
        verify(&server, &domain, &expired_access).await,
        (401, token_not_valid("Token is expired"))
    );
    for (what, token, detail) in forged_tokens(&refresh_token, &schema, id) {
        let answer = verify(&server, &domain, &token).await;
        assert_eq!(answer, (401, token_not_valid(detail)), "{what}");
    }

    let missing = server
        .send("POST", &domain, "/api/token/verify/", None, &json!({}))
        .await;
    assert_eq!(
        missing,
        (400, json!({"token": ["This field is required."]}))
    );
    server.stop().await;
}
