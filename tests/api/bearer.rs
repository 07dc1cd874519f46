//! `Authorization: Bearer` on protected routes: every way a token can be
//! refused, tokens of other tenants, and tokens minted by Django.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::common::*;
use crate::support::*;

const REALM: &str = "Bearer realm=\"api\"";

#[tokio::test]
async fn no_credentials_is_401_with_a_challenge() {
    let pool = pool();
    let server = TestServer::start().await;
    let (_, domain) = tenant(&pool, "nocred").await;

    // No header, or another scheme (simplejwt ignores those).
    let not_provided = json!({"detail": "Authentication credentials were not provided."});
    for authorization in [
        None,
        Some("Basic dTpw"),
        Some("bearer abc"),
        Some("Token abc"),
    ] {
        for path in ["/api/me/", "/api/tenant/", "/api/posts/", "/api/posts/1/"] {
            let answer = raw_request(&server, "GET", &domain, path, authorization, None).await;
            assert_eq!(answer.status, 401, "{authorization:?} {path}");
            assert_eq!(answer.body, not_provided, "{authorization:?} {path}");
            assert_eq!(answer.headers["www-authenticate"], REALM);
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_bearer_header_that_is_not_two_parts_is_refused() {
    let pool = pool();
    let server = TestServer::start().await;
    let (_, domain) = tenant(&pool, "badheader").await;
    let expected = json!({
        "detail": "Authorization header must contain two space-delimited values",
        "code": "bad_authorization_header",
    });
    for value in ["Bearer", "Bearer a b", "Bearer  a b c"] {
        let answer = raw_request(&server, "GET", &domain, "/api/me/", Some(value), None).await;
        assert_eq!(
            (answer.status, answer.body),
            (401, expected.clone()),
            "{value:?}"
        );
        assert_eq!(answer.headers["www-authenticate"], REALM);
    }
    server.stop().await;
}

#[tokio::test]
async fn forged_expired_and_wrong_type_tokens_are_refused() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "forged").await;
    let id = user(&pool, &schema, "alice", "pw-alice", false).await;
    let (access, refresh) = server.login(&domain, "alice", "pw-alice").await;
    assert_eq!(server.get(&domain, "/api/me/", Some(&access)).await.0, 200);

    let payload = access.split('.').nth(1).unwrap();
    let claims = bound_claims("access", id, &schema, 300);
    let mut no_user = claims.clone();
    no_user.as_object_mut().unwrap().remove("user_id");
    let mut float_user = claims.clone();
    float_user["user_id"] = json!(1.5);
    let invalid = "Token is invalid";
    let cases = [
        ("refresh as access", refresh, "Token has wrong type"),
        (
            "alg none",
            format!("eyJhbGciOiJub25lIn0.{payload}."),
            invalid,
        ),
        (
            "alg none, typed",
            format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}."),
            invalid,
        ),
        (
            "another key",
            sign_with(&claims, "not-the-server-key"),
            invalid,
        ),
        (
            "expired",
            sign(&bound_claims("access", id, &schema, -1)),
            "Token is expired",
        ),
        (
            "HS512, not configured",
            sign_as(Algorithm::HS512, &claims, TEST_SIGNING_KEY),
            invalid,
        ),
        ("no user_id", sign(&no_user), invalid),
        ("float user_id", sign(&float_user), invalid),
        ("not a JWT", "abc".to_owned(), invalid),
    ];
    for (what, token, message) in cases {
        let answer = raw_request(
            &server,
            "GET",
            &domain,
            "/api/me/",
            Some(&format!("Bearer {token}")),
            None,
        )
        .await;
        assert_eq!(
            (answer.status, answer.body),
            (401, bad_access_token(message)),
            "{what}"
        );
        assert_eq!(answer.headers["www-authenticate"], REALM, "{what}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_token_of_one_tenant_is_refused_everywhere_else() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema_a, domain_a) = tenant(&pool, "crossa").await;
    let (schema_b, domain_b) = tenant(&pool, "crossb").await;
    let id_a = user(&pool, &schema_a, "alice", "pw-alice", false).await;
    let id_b = user(&pool, &schema_b, "alice", "pw-alice", false).await;
    assert_eq!(id_a, id_b, "the same user id exists in both tenants");
    let (access_a, _) = server.login(&domain_a, "alice", "pw-alice").await;

    let refused = (401, bad_access_token("Token is invalid"));
    for path in ["/api/me/", "/api/tenant/", "/api/posts/"] {
        assert_eq!(
            server.get(&domain_a, path, Some(&access_a)).await.0,
            200,
            "{path}"
        );
        assert_eq!(
            server.get(&domain_b, path, Some(&access_a)).await,
            refused,
            "{path}"
        );
    }
    let post = json!({"title": "t", "body": "b"});
    let created = server
        .send("POST", &domain_b, "/api/posts/", Some(&access_a), &post)
        .await;
    assert_eq!(created, refused);

    // The public host is one more tenant.
    assert_eq!(
        server
            .get("admin.test", "/api/tenants/", Some(&access_a))
            .await,
        refused
    );
    server.stop().await;
}

#[tokio::test]
async fn deleted_and_inactive_users_lose_access_at_the_next_request() {
    let pool = pool();
    let mut config = test_config();
    // The user cache keeps a user this long (default 1 s): short here so
    // the change is seen after a brief wait.
    let ttl = Duration::from_millis(100);
    config.auth.user_cache_ttl = ttl;
    let server = TestServer::start_with(config).await;
    let (schema, domain) = tenant(&pool, "lose").await;
    let gone = user(&pool, &schema, "gone", "pw-gone", false).await;
    let idle = user(&pool, &schema, "idle", "pw-idle", false).await;
    let (gone_access, _) = server.login(&domain, "gone", "pw-gone").await;
    let (idle_access, _) = server.login(&domain, "idle", "pw-idle").await;
    assert_eq!(
        server.get(&domain, "/api/me/", Some(&gone_access)).await.0,
        200
    );
    assert_eq!(
        server.get(&domain, "/api/me/", Some(&idle_access)).await.0,
        200
    );

    delete_user(&pool, &schema, gone).await;
    set_active(&pool, &schema, idle, false).await;
    tokio::time::sleep(ttl * 2).await;

    let not_found = json!({"detail": "User not found", "code": "user_not_found"});
    let inactive = json!({"detail": "User is inactive", "code": "user_inactive"});
    for path in ["/api/me/", "/api/tenant/", "/api/posts/", "/api/posts/1/"] {
        assert_eq!(
            server.get(&domain, path, Some(&gone_access)).await,
            (401, not_found.clone()),
            "{path}"
        );
        assert_eq!(
            server.get(&domain, path, Some(&idle_access)).await,
            (401, inactive.clone()),
            "{path}"
        );
    }

    // A valid token for an id that never existed.
    let ghost = sign(&bound_claims("access", 999_999, &schema, 300));
    assert_eq!(
        server.get(&domain, "/api/me/", Some(&ghost)).await,
        (401, not_found)
    );
    server.stop().await;
}

#[tokio::test]
async fn django_tokens_without_a_tenant_are_refused_by_default() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "unbound").await;
    let id = user(&pool, &schema, "alice", "pw-alice", false).await;

    let refused = (401, bad_access_token("Token is invalid"));
    for user_id in [json!(id.to_string()), json!(id)] {
        let token = sign(&simplejwt_claims("access", user_id, 300));
        assert_eq!(server.get(&domain, "/api/me/", Some(&token)).await, refused);
    }
    server.stop().await;
}

#[tokio::test]
async fn django_tokens_are_accepted_when_configured() {
    let pool = pool();
    let mut config = test_config();
    config.auth.accept_unbound_tokens = true;
    let server = TestServer::start_with(config).await;
    let (schema, domain) = tenant(&pool, "djangotok").await;
    let id = user(&pool, &schema, "alice", "pw-alice", false).await;

    // A user id written as a string (simplejwt 5.4 on) or an integer.
    for user_id in [json!(id.to_string()), json!(id)] {
        let token = sign(&simplejwt_claims("access", user_id.clone(), 300));
        assert!(claims_of(&token).get("tenant").is_none());
        let (status, me) = server.get(&domain, "/api/me/", Some(&token)).await;
        assert_eq!(status, 200, "{user_id}: {me}");
        assert_eq!(me["id"], json!(id));
        assert_eq!(me["username"], "alice");
    }

    // Refreshing one gives a token bound to this tenant.
    let django_refresh = sign(&simplejwt_claims("refresh", json!(id), 3600));
    let body = json!({"refresh": django_refresh});
    let (status, answer) = server
        .send("POST", &domain, "/api/token/refresh/", None, &body)
        .await;
    assert_eq!(status, 200, "{answer}");
    let claims = claims_of(answer["access"].as_str().unwrap());
    assert_eq!(claims["tenant"], json!(schema));
    assert_eq!(claims["user_id"], json!(id.to_string()));

    // Still checked: signature, expiry and type.
    let expired = sign(&simplejwt_claims("access", json!(id), -5));
    assert_eq!(
        server.get(&domain, "/api/me/", Some(&expired)).await,
        (401, bad_access_token("Token is expired"))
    );
    let foreign = sign_with(
        &simplejwt_claims("access", json!(id), 300),
        "other-django-secret",
    );
    assert_eq!(
        server.get(&domain, "/api/me/", Some(&foreign)).await,
        (401, bad_access_token("Token is invalid"))
    );
    server.stop().await;
}
