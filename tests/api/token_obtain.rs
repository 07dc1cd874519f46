//! `POST /api/token/`: logins, their refusals, and password hashes made by
//! Django or at another cost.

use botora::auth::password::{self, Verdict};
use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

/// Password of the Django-made fixtures below.
const DJANGO_PW: &str = "correct horse battery staple";

/// Hashes of [`DJANGO_PW`] made by Django 5.2 (copied from the fixtures of
/// `src/auth/password.rs`, which say how each was made).
const DJANGO_HASHES: [&str; 5] = [
    "pbkdf2_sha256$12000$kPHmAktwnUnRtiaziKPZfw$KPLiSMBZyq2QZQu1SBc2Hl3vGuxm8NjG/gRF1G0sk6U=",
    "pbkdf2_sha1$10000$FMfaEyM893r3AOeVjKaa5i$ZJFJGrnwISWEV+OWtNQFNBYjR3Y=",
    "argon2$argon2id$v=19$m=512,t=2,p=2$NGxuUXRISnNGcDBkbGlwQVlIdmRsWQ$\
     18E+1WsNoDp5+PJ60s9KgmqGoqMWL1AX1750OyrFeEk",
    "bcrypt_sha256$$2b$04$WR1iUub3k2dhSne/zNftGuXXPhjCig3tseEa8cczqtpeQTfNSwmBS",
    "scrypt$1024$luGPiYI6Pq27mw3TksNi31$8$2$FXuLrGHTo9GiWz9vfrrhDACFNQ5CZFrk\
     v8ZhD4kYPi4a7Pt4V/OaB3EroXWJl4kQO8e25rGrnRADAgrkYa10yQ==",
];

async fn login_with(server: &TestServer, host: &str, body: &Value) -> (u16, Value) {
    server.send("POST", host, "/api/token/", None, body).await
}

#[tokio::test]
async fn login_returns_a_refresh_and_an_access_token_bound_to_the_tenant() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "obtain").await;
    let id = user(&pool, &schema, "alice", "pw-alice", false).await;

    let body = json!({"username": "alice", "password": "pw-alice"});
    let (status, answer) = login_with(&server, &domain, &body).await;
    assert_eq!(status, 200, "{answer}");
    let keys = key_set(&answer);
    assert_eq!(keys, ["access", "refresh"]);

    // Each token's claims are simplejwt's plus the tenant.
    let expected = [("access", "access", 300), ("refresh", "refresh", 86_400)];
    for (field, token_type, lifetime) in expected {
        let token = answer[field].as_str().unwrap();
        assert_eq!(header_of(token), json!({"alg": "HS256", "typ": "JWT"}));
        let claims = claims_of(token);
        let names = key_set(&claims);
        assert_eq!(
            names,
            ["exp", "iat", "jti", "tenant", "token_type", "user_id"]
        );
        assert_eq!(claims["token_type"], token_type);
        let (exp, iat) = (claims["exp"].as_i64(), claims["iat"].as_i64());
        assert_eq!(exp.unwrap() - iat.unwrap(), lifetime, "{claims}");
        assert!((iat.unwrap() - now()).abs() <= 5, "{claims}");
        let jti = claims["jti"].as_str().unwrap();
        assert_eq!(jti.len(), 32, "{jti}");
        assert!(jti.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_eq!(claims["user_id"], json!(id.to_string()));
        assert_eq!(claims["tenant"], json!(schema));
    }
    let (access, refresh) = (&answer["access"], &answer["refresh"]);
    assert_ne!(
        claims_of(access.as_str().unwrap())["jti"],
        claims_of(refresh.as_str().unwrap())["jti"]
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_credentials_and_inactive_users_are_one_refusal() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "badcred").await;
    user(&pool, &schema, "bob", "pw-bob", false).await;
    let inactive = password::make("pw-carol", TEST_ITERATIONS);
    user_with_hash(&pool, &schema, "carol", &inactive, false).await;
    let unusable = "!dYyhMHxFBvfLGxuHoQ9tMcDNHuiRZwTp4A52R1Jo";
    user_with_hash(&pool, &schema, "dave", unusable, true).await;

    let long = "p".repeat(5_000);
    let attempts = [
        ("bob", "wrong"),
        ("bob", "PW-BOB"),
        ("bob", long.as_str()),
        ("Bob", "pw-bob"),
        ("nobody", "pw-bob"),
        ("nobody", long.as_str()),
        ("carol", "pw-carol"),
        ("dave", unusable),
    ];
    for (username, password) in attempts {
        let body = json!({"username": username, "password": password});
        let answer = login_with(&server, &domain, &body).await;
        assert_eq!(answer, (401, no_active_account()), "{username}");
    }
    server.stop().await;
}

#[tokio::test]
async fn missing_null_blank_and_mistyped_fields_are_400() {
    let pool = pool();
    let server = TestServer::start().await;
    let (_, domain) = tenant(&pool, "fields").await;

    let required = json!(["This field is required."]);
    let not_null = json!(["This field may not be null."]);
    let blank = json!(["This field may not be blank."]);
    let not_string = json!(["Not a valid string."]);
    let cases = [
        (
            json!({}),
            json!({"username": required, "password": required}),
        ),
        (json!({"username": "u"}), json!({"password": required})),
        (json!({"password": "p"}), json!({"username": required})),
        (
            json!({"username": null, "password": null}),
            json!({"username": not_null, "password": not_null}),
        ),
        (
            json!({"username": "", "password": ""}),
            json!({"username": blank, "password": blank}),
        ),
        (
            json!({"username": "   ", "password": "p"}),
            json!({"username": blank}),
        ),
        (
            json!({"username": {"a": 1}, "password": [1]}),
            json!({"username": not_string, "password": not_string}),
        ),
        (
            json!({"username": true, "password": false}),
            json!({"username": not_string, "password": not_string}),
        ),
    ];
    for (body, expected) in cases {
        let answer = login_with(&server, &domain, &body).await;
        assert_eq!(answer, (400, expected), "{body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn bodies_that_are_not_json_objects_are_400() {
    let pool = pool();
    let server = TestServer::start().await;
    let (_, domain) = tenant(&pool, "notobj").await;

    for body in ["username=u&password=p", "{\"username\": ", ""] {
        let answer = raw_request(&server, "POST", &domain, "/api/token/", None, Some(body)).await;
        assert_eq!(answer.status, 400, "{body:?}");
        let detail = answer.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.starts_with("JSON parse error - "),
            "{body:?}: {detail}"
        );
        assert_eq!(answer.body.as_object().unwrap().len(), 1, "{}", answer.body);
    }

    let kinds = [
        ("[]", "list"),
        ("[{\"username\": \"u\"}]", "list"),
        ("\"u\"", "str"),
    ];
    for (body, kind) in kinds {
        let answer = raw_request(&server, "POST", &domain, "/api/token/", None, Some(body)).await;
        let message = format!("Invalid data. Expected a dictionary, but got {kind}.");
        assert_eq!(
            (answer.status, answer.body),
            (400, json!({"non_field_errors": [message]})),
            "{body}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn numbers_are_read_as_strings_and_extra_fields_are_ignored() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "numbers").await;
    user(&pool, &schema, "4242", "31415", false).await;
    user(&pool, &schema, "erin", "pw-erin", false).await;

    let numbers = json!({"username": 4242, "password": 31415});
    assert_eq!(login_with(&server, &domain, &numbers).await.0, 200);
    let extra = json!({"username": "erin", "password": "pw-erin", "tenant": "x", "otp": 1});
    assert_eq!(login_with(&server, &domain, &extra).await.0, 200);

    // The username is trimmed as DRF's CharField does.
    let padded = json!({"username": "  erin ", "password": "pw-erin"});
    assert_eq!(login_with(&server, &domain, &padded).await.0, 200);
    server.stop().await;
}

/// simplejwt's `PasswordField` is a DRF `CharField`, whose
/// `trim_whitespace` defaults to true: the password is trimmed before it is
/// checked, and a password of spaces only is blank.
#[tokio::test]
async fn the_password_is_trimmed_as_simplejwt_does() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "trim").await;
    user(&pool, &schema, "frank", "pw-frank", false).await;

    let padded = json!({"username": "frank", "password": " pw-frank\n"});
    assert_eq!(login_with(&server, &domain, &padded).await.0, 200);
    let spaces = json!({"username": "frank", "password": "   "});
    assert_eq!(
        login_with(&server, &domain, &spaces).await,
        (400, json!({"password": ["This field may not be blank."]}))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_hash_of_another_cost_is_rewritten_at_the_configured_one() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "upgrade").await;
    let old = password::make("pw-grace", 500);
    assert!(old.starts_with("pbkdf2_sha256$500$"), "{old}");
    user_with_hash(&pool, &schema, "grace", &old, true).await;

    // A failed login leaves the hash alone.
    let wrong = json!({"username": "grace", "password": "nope"});
    assert_eq!(login_with(&server, &domain, &wrong).await.0, 401);
    assert_eq!(stored_hash(&pool, &schema, "grace").await, old);

    // A successful one stores it again at TEST_ITERATIONS.
    server.login(&domain, "grace", "pw-grace").await;
    let new = stored_hash(&pool, &schema, "grace").await;
    assert!(new.starts_with("pbkdf2_sha256$1000$"), "{new}");
    let verdict = password::verify("pw-grace", &new, TEST_ITERATIONS);
    assert_eq!(
        verdict,
        Verdict::Match {
            needs_rehash: false
        }
    );

    // And it still logs in, without another rewrite.
    server.login(&domain, "grace", "pw-grace").await;
    assert_eq!(stored_hash(&pool, &schema, "grace").await, new);
    server.stop().await;
}

#[tokio::test]
async fn users_created_by_django_log_in() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "django").await;

    for (n, encoded) in DJANGO_HASHES.iter().enumerate() {
        let username = format!("django{n}");
        user_with_hash(&pool, &schema, &username, encoded, true).await;
        let wrong = json!({"username": username, "password": "wrong"});
        let refused = login_with(&server, &domain, &wrong).await;
        assert_eq!(refused, (401, no_active_account()), "{encoded}");

        server.login(&domain, &username, DJANGO_PW).await;
        let new = stored_hash(&pool, &schema, &username).await;
        assert!(new.starts_with("pbkdf2_sha256$1000$"), "{encoded} -> {new}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_public_host_logs_in_its_own_users_only() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "pubuser").await;
    let operator = unique("operator");
    user(&pool, "public", &operator, "pw-operator", false).await;
    user(&pool, &schema, "tenantuser", "pw-tenant", false).await;

    // Each host knows only its own schema's users.
    let (access, _) = server.login("admin.test", &operator, "pw-operator").await;
    assert_eq!(claims_of(&access)["tenant"], "public");
    let body = json!({"username": operator, "password": "pw-operator"});
    assert_eq!(
        login_with(&server, &domain, &body).await,
        (401, no_active_account())
    );
    let body = json!({"username": "tenantuser", "password": "pw-tenant"});
    assert_eq!(
        login_with(&server, "admin.test", &body).await,
        (401, no_active_account())
    );

    // An operator's token is no good on a tenant host.
    let answer = server.get(&domain, "/api/me/", Some(&access)).await;
    assert_eq!(answer, (401, bad_access_token("Token is invalid")));
    server.stop().await;
}
