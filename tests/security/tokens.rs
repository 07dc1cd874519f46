//! Tokens replayed across tenants, forged (`alg: none`, algorithm
//! confusion, hostile `kid`s), expired, not yet valid or issued in the future.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use botora::config::KeyConfig;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::common::{TestServer, pool, test_config};
use crate::support::{
    PUBLIC, bad_access, call, claims, forge, forge_hmac, key_file, not_valid, now, operator,
    pem_key, scalar, sign, tenant_with_alice,
};

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
