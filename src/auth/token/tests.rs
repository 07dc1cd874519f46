//! Tests of token signing and verification.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;

/// A made-up Django `SECRET_KEY`.
const SECRET: &str = "django-insecure-7q!x$botora-test-secret-k3y#0z";
const NOW: i64 = 1_764_787_200;
const FIVE_MINUTES: Duration = Duration::from_secs(300);

/// simplejwt's five claims for user 1, expiring in 2100.
const BASE_CLAIMS: &str = concat!(
    r#""token_type":"access","exp":4102444800,"#,
    r#""iat":1764787200,"jti":"ab","user_id":"1""#,
);

/// Made with PyJWT 2.15.1, as simplejwt 5.5 calls it (HS256, default
/// header, key `SECRET`): `jwt.encode({"token_type": "access",
/// "exp": 4102444800, "iat": 1764787200,
/// "jti": "3f6c1d2e8a9b4c7d9e0f1a2b3c4d5e6f", "user_id": "1"}, SECRET,
/// algorithm="HS256")`.
const DJANGO_TOKEN: &str = concat!(
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.",
    "eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiZXhwIjo0MTAyNDQ0ODAwLCJpYXQiOjE3NjQ3ODcyMDAsImp0aSI6",
    "IjNmNmMxZDJlOGE5YjRjN2Q5ZTBmMWEyYjNjNGQ1ZTZmIiwidXNlcl9pZCI6IjEifQ.",
    "kOSDoyoY99xIMcgICcvrG-8nmgP8of2oLdAaTbqwKuA",
);

/// The same call with `"user_id": 42`, as simplejwt before 5.4 wrote it.
const DJANGO_INT_TOKEN: &str = concat!(
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.",
    "eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiZXhwIjo0MTAyNDQ0ODAwLCJpYXQiOjE3NjQ3ODcyMDAsImp0aSI6",
    "IjNmNmMxZDJlOGE5YjRjN2Q5ZTBmMWEyYjNjNGQ1ZTZmIiwidXNlcl9pZCI6NDJ9.",
    "nPXW-_zrZwzFitEv13OGzaJn1goq_Kwi7A_efF0mJYE",
);

/// PyJWT 2.15.1 with the fixture private keys, the payload above plus
/// `"tenant": "acme"`, and `headers={"kid": "es256"}` (resp. `eddsa`).
/// Regenerating the fixture keys invalidates these two.
const PYJWT_ES256: &str = concat!(
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImVzMjU2IiwidHlwIjoiSldUIn0.",
    "eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiZXhwIjo0MTAyNDQ0ODAwLCJpYXQiOjE3NjQ3ODcyMDAsImp0aSI6",
    "IjNmNmMxZDJlOGE5YjRjN2Q5ZTBmMWEyYjNjNGQ1ZTZmIiwidXNlcl9pZCI6IjEiLCJ0ZW5hbnQiOiJhY21lIn0.",
    "Sbo_q9opv4t1HfnrMafuKJkeC0OWfAYrPqMmFEydYAt9RFeaRvjWbO_W15EzWBLFmvQuDB-xAsOgvqwvSI-Wvw",
);
const PYJWT_EDDSA: &str = concat!(
    "eyJhbGciOiJFZERTQSIsImtpZCI6ImVkZHNhIiwidHlwIjoiSldUIn0.",
    "eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiZXhwIjo0MTAyNDQ0ODAwLCJpYXQiOjE3NjQ3ODcyMDAsImp0aSI6",
    "IjNmNmMxZDJlOGE5YjRjN2Q5ZTBmMWEyYjNjNGQ1ZTZmIiwidXNlcl9pZCI6IjEiLCJ0ZW5hbnQiOiJhY21lIn0.",
    "kVrv98g9i3HheN-h5Y3X4SMQr84EHPcALPGkcZlPZ51aIOI1S6jSBs6kMzVUzh3uyr59ekXxbxBgbqOSKSKJDQ",
);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
}

fn hs_auth(algorithm: &str, secret: &str) -> AuthConfig {
    AuthConfig {
        algorithm: algorithm.into(),
        signing_key: Some(secret.into()),
        ..AuthConfig::default()
    }
}

fn hs_key(kid: &str, secret: &str) -> KeyConfig {
    KeyConfig {
        kid: kid.into(),
        algorithm: "HS256".into(),
        secret: Some(secret.into()),
        private_key: None,
        public_key: None,
    }
}

/// An asymmetric key from the fixtures, e.g. `pem_key("a", "RS256", "rs256")`.
fn pem_key(kid: &str, algorithm: &str, stem: &str) -> KeyConfig {
    KeyConfig {
        kid: kid.into(),
        algorithm: algorithm.into(),
        secret: None,
        private_key: Some(fixture(&format!("{stem}.key"))),
        public_key: Some(fixture(&format!("{stem}.pub"))),
    }
}

fn keys_of(list: Vec<KeyConfig>) -> Keys {
    let auth = AuthConfig {
        keys: list,
        ..AuthConfig::default()
    };
    Keys::from_config(&auth).expect("test keys load")
}

fn hs_keys() -> Keys {
    Keys::from_config(&hs_auth("HS256", SECRET)).expect("test keys load")
}

fn access(keys: &Keys, tenant: &str) -> String {
    keys.mint(TokenType::Access, "7", tenant, FIVE_MINUTES, NOW)
        .expect("mint")
}

/// A token built by hand from raw JSON, HMAC-signed with `secret`.
fn forge(header: &str, payload: &str, secret: &[u8], alg: Algorithm) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let key = EncodingKey::from_secret(secret).expect("hmac key");
    let signature = crypto::sign(message.as_bytes(), &key, alg).expect("sign");
    format!("{message}.{signature}")
}

/// [`BASE_CLAIMS`] plus `extra` members, as a JSON object.
fn payload_with(extra: &str) -> String {
    format!("{{{BASE_CLAIMS}{extra}}}")
}

fn forge_hs256(payload: &str) -> String {
    let header = r#"{"alg":"HS256","typ":"JWT"}"#;
    forge(header, payload, SECRET.as_bytes(), Algorithm::HS256)
}

fn reason(result: Result<Claims, TokenError>) -> &'static str {
    result.expect_err("token should be refused").reason()
}

fn header_of(token: &str) -> Header {
    jsonwebtoken::decode_header(token).expect("header")
}

#[test]
fn access_and_refresh_round_trip() {
    let keys = hs_keys();
    for token_type in [TokenType::Access, TokenType::Refresh] {
        let token = keys
            .mint(token_type, "7", "acme", FIVE_MINUTES, NOW)
            .expect("mint");
        let claims = keys.decode(&token, NOW + 10, 0).expect("decode");
        assert_eq!(claims.token_type, token_type);
        assert_eq!((claims.iat, claims.exp), (NOW, NOW + 300));
        assert_eq!(claims.user_id, "7");
        assert_eq!(claims.tenant.as_deref(), Some("acme"));
        assert_eq!(claims.jti.len(), 32);
        assert!(claims.jti.bytes().all(|b| b.is_ascii_hexdigit()));
        check_type(&claims, token_type).expect("own type");
    }
}

#[test]
fn minted_payload_follows_simplejwt_layout() {
    let token = access(&hs_keys(), "acme");
    let payload = token.split('.').nth(1).expect("payload part");
    let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("utf8");
    let order = ["token_type", "exp", "iat", "jti", "user_id", "tenant"];
    let at: Vec<usize> = order
        .iter()
        .map(|k| json.find(&format!("\"{k}\":")).expect("claim present"))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "claim order in {json}");
    assert!(json.starts_with(r#"{"token_type":"access","exp":1764787500,"iat":1764787200"#));
    assert!(json.contains(r#""user_id":"7","tenant":"acme"}"#));
    assert_eq!(header_of(&token).kid, None);
}

#[test]
fn expired_without_leeway() {
    let keys = hs_keys();
    let token = access(&keys, "acme");
    keys.decode(&token, NOW + 299, 0).expect("still valid");
    let expired = keys.decode(&token, NOW + 300, 0);
    assert!(matches!(expired, Err(TokenError::Expired)));
    assert_eq!(reason(keys.decode(&token, NOW + 301, 0)), "expired");
}

#[test]
fn leeway_covers_a_recent_expiry() {
    let keys = hs_keys();
    let token = access(&keys, "acme");
    keys.decode(&token, NOW + 330, 31).expect("within leeway");
    assert!(matches!(
        keys.decode(&token, NOW + 330, 30),
        Err(TokenError::Expired)
    ));
}

#[test]
fn alg_none_is_refused() {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(payload_with(r#","tenant":"acme""#));
    let keys = hs_keys();
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        assert_eq!(reason(keys.decode(&token, NOW, 0)), "malformed");
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let keys = keys_of(vec![pem_key("rs", "RS256", "rs256")]);
    let public_pem = std::fs::read(fixture("rs256.pub")).expect("fixture");
    let payload = payload_with(r#","tenant":"acme""#);
    let named = r#"{"alg":"HS256","typ":"JWT","kid":"rs"}"#;
    let unnamed = r#"{"alg":"HS256","typ":"JWT"}"#;
    for header in [named, unnamed] {
        let token = forge(header, &payload, &public_pem, Algorithm::HS256);
        assert_eq!(reason(keys.decode(&token, NOW, 0)), "bad_algorithm");
    }
}

#[test]
fn an_algorithm_other_than_the_configured_one_is_refused() {
    let keys = Keys::from_config(&hs_auth("HS512", SECRET)).expect("keys");
    assert_eq!(reason(keys.decode(DJANGO_TOKEN, NOW, 0)), "bad_algorithm");
    let token = access(&keys, "acme");
    assert_eq!(header_of(&token).alg, Algorithm::HS512);
    keys.decode(&token, NOW, 0).expect("own algorithm");
}

#[test]
fn bad_signature_is_refused() {
    let keys = hs_keys();
    let other = Keys::from_config(&hs_auth("HS256", "another secret")).expect("keys");
    let token = access(&other, "acme");
    assert_eq!(reason(keys.decode(&token, NOW, 0)), "bad_signature");

    // A payload swapped under a genuine signature.
    let genuine = access(&keys, "acme");
    let forged = access(&keys, "globex");
    let mut parts: Vec<&str> = genuine.split('.').collect();
    parts[1] = forged.split('.').nth(1).expect("payload");
    assert_eq!(
        reason(keys.decode(&parts.join("."), NOW, 0)),
        "bad_signature"
    );
}

#[test]
fn garbage_is_malformed() {
    let keys = hs_keys();
    for token in ["", "abc", "a.b", "a.b.c", "a.b.c.d", "..."] {
        assert_eq!(reason(keys.decode(token, NOW, 0)), "malformed", "{token:?}");
    }
}

#[test]
fn unknown_kid_is_refused() {
    let keys = keys_of(vec![hs_key("k1", SECRET)]);
    let header = r#"{"alg":"HS256","typ":"JWT","kid":"k9"}"#;
    let payload = r#"{"token_type":"access","exp":4102444800,"iat":1,"jti":"ab","user_id":"1"}"#;
    let token = forge(header, payload, SECRET.as_bytes(), Algorithm::HS256);
    assert_eq!(reason(keys.decode(&token, NOW, 0)), "unknown_kid");

    // Single-key mode has no kid at all, so any kid is unknown.
    assert_eq!(reason(hs_keys().decode(&token, NOW, 0)), "unknown_kid");
}

#[test]
fn kid_rotation() {
    let old = keys_of(vec![pem_key("old", "RS256", "rs256")]);
    let old_token = access(&old, "acme");
    assert_eq!(header_of(&old_token).kid.as_deref(), Some("old"));

    // New key first: it signs; the old one still verifies.
    let both = keys_of(vec![
        pem_key("new", "EdDSA", "eddsa"),
        pem_key("old", "RS256", "rs256"),
    ]);
    both.decode(&old_token, NOW, 0)
        .expect("old key still listed");
    let new_token = access(&both, "acme");
    let header = header_of(&new_token);
    assert_eq!(
        (header.kid.as_deref(), header.alg),
        (Some("new"), Algorithm::EdDSA)
    );

    // Old key removed: its tokens fail, new ones still pass.
    let new_only = keys_of(vec![pem_key("new", "EdDSA", "eddsa")]);
    assert_eq!(reason(new_only.decode(&old_token, NOW, 0)), "unknown_kid");
    new_only.decode(&new_token, NOW, 0).expect("new key");
}

#[test]
fn a_token_without_kid_is_tried_on_every_key_of_its_algorithm() {
    let keys = keys_of(vec![
        hs_key("new", "a brand new secret"),
        pem_key("rs", "RS256", "rs256"),
        hs_key("django", SECRET),
    ]);
    let claims = keys
        .decode(DJANGO_TOKEN, NOW, 0)
        .expect("matches the second HS key");
    assert_eq!(claims.user_id, "1");

    let stranger = Keys::from_config(&hs_auth("HS256", "unknown")).expect("keys");
    let token = access(&stranger, "acme");
    assert_eq!(reason(keys.decode(&token, NOW, 0)), "bad_signature");
}

#[test]
fn asymmetric_round_trips() {
    for (alg, stem) in [("RS256", "rs256"), ("ES256", "es256"), ("EdDSA", "eddsa")] {
        let keys = keys_of(vec![pem_key("k", alg, stem)]);
        let token = access(&keys, "acme");
        let claims = keys.decode(&token, NOW, 0).expect(alg);
        assert_eq!(claims.tenant.as_deref(), Some("acme"));
    }
}

#[test]
fn pyjwt_asymmetric_tokens_decode() {
    let keys = keys_of(vec![
        pem_key("es256", "ES256", "es256"),
        pem_key("eddsa", "EdDSA", "eddsa"),
    ]);
    for token in [PYJWT_ES256, PYJWT_EDDSA] {
        let claims = keys.decode(token, NOW, 0).expect("PyJWT token");
        assert_eq!(claims.tenant.as_deref(), Some("acme"));
        assert_eq!(claims.jti, "3f6c1d2e8a9b4c7d9e0f1a2b3c4d5e6f");
    }
}

#[test]
fn missing_or_mistyped_claims_are_malformed() {
    let keys = hs_keys();
    let full = [
        r#""token_type":"access""#,
        r#""exp":4102444800"#,
        r#""iat":1764787200"#,
        r#""jti":"ab""#,
        r#""user_id":"1""#,
    ];
    for skip in 0..full.len() {
        let kept: Vec<&str> = (0..full.len())
            .filter(|i| *i != skip)
            .map(|i| full[i])
            .collect();
        let token = forge_hs256(&format!("{{{}}}", kept.join(",")));
        assert_eq!(
            reason(keys.decode(&token, NOW, 0)),
            "malformed",
            "without {}",
            full[skip]
        );
    }
    let numeric_tenant = payload_with(r#","tenant":3"#);
    let mistyped = [
        r#"{"token_type":"access","exp":"4102444800","iat":1,"jti":"ab","user_id":"1"}"#,
        r#"{"token_type":"access","exp":4102444800,"iat":1,"jti":7,"user_id":"1"}"#,
        r#"{"token_type":"access","exp":4102444800,"iat":1,"jti":"ab","user_id":true}"#,
        numeric_tenant.as_str(),
        r#"["not", "an", "object"]"#,
    ];
    for payload in mistyped {
        assert_eq!(
            reason(keys.decode(&forge_hs256(payload), NOW, 0)),
            "malformed",
            "{payload}"
        );
    }
}

#[test]
fn unknown_claims_are_ignored_and_nbf_is_checked() {
    let keys = hs_keys();
    let extra = payload_with(r#","aud":"x","iss":["y"],"extra":{"a":[1]}"#);
    let claims = keys.decode(&forge_hs256(&extra), NOW, 0);
    assert_eq!(claims.expect("extra claims ignored").user_id, "1");

    let token = forge_hs256(&payload_with(&format!(r#","nbf":{}"#, NOW + 10)));
    assert_eq!(reason(keys.decode(&token, NOW, 0)), "not_yet_valid");
    keys.decode(&token, NOW, 10).expect("nbf within leeway");
}

#[test]
fn integer_user_id_is_accepted() {
    let claims = hs_keys().decode(DJANGO_INT_TOKEN, NOW, 0).expect("decode");
    assert_eq!(claims.user_id, "42");
}

#[test]
fn django_simplejwt_token_decodes() {
    let claims = hs_keys().decode(DJANGO_TOKEN, NOW, 0).expect("decode");
    let expected = Claims {
        token_type: TokenType::Access,
        exp: 4_102_444_800,
        iat: NOW,
        jti: "3f6c1d2e8a9b4c7d9e0f1a2b3c4d5e6f".into(),
        user_id: "1".into(),
        tenant: None,
    };
    assert_eq!(claims, expected);
}

#[test]
fn tenant_binding() {
    let keys = hs_keys();
    let claims = keys.decode(&access(&keys, "acme"), NOW, 0).expect("decode");
    check_binding(&claims, "acme", false).expect("own tenant");
    let other = check_binding(&claims, "globex", true).expect_err("other tenant");
    assert_eq!(other.reason(), "wrong_tenant");
    assert_eq!(
        check_binding(&claims, "public", true)
            .expect_err("public")
            .reason(),
        "wrong_tenant"
    );

    let unbound = keys.decode(DJANGO_TOKEN, NOW, 0).expect("decode");
    assert_eq!(
        check_binding(&unbound, "acme", false)
            .expect_err("unbound")
            .reason(),
        "unbound"
    );
    check_binding(&unbound, "acme", true).expect("unbound accepted");
}

#[test]
fn token_type_check() {
    let keys = hs_keys();
    let token = keys
        .mint(TokenType::Refresh, "7", "acme", FIVE_MINUTES, NOW)
        .expect("mint");
    let claims = keys.decode(&token, NOW, 0).expect("decode");
    let error = check_type(&claims, TokenType::Access).expect_err("refresh as access");
    assert_eq!(
        (error.reason(), error.to_string()),
        ("wrong_type", "Token has wrong type".into())
    );

    let sliding = r#"{"token_type":"sliding","exp":4102444800,"iat":1,"jti":"ab","user_id":"1"}"#;
    assert_eq!(
        reason(keys.decode(&forge_hs256(sliding), NOW, 0)),
        "wrong_type"
    );
}

#[test]
fn messages_follow_simplejwt() {
    assert_eq!(
        TokenError::Invalid(InvalidReason::BadSignature).to_string(),
        "Token is invalid"
    );
    assert_eq!(TokenError::Expired.to_string(), "Token is expired");
}

#[test]
fn missing_signing_key_is_a_config_error() {
    for secret in [None, Some(String::new())] {
        let auth = AuthConfig {
            signing_key: secret,
            ..AuthConfig::default()
        };
        let error = Keys::from_config(&auth).expect_err("no key");
        assert!(matches!(&error, TokenError::Config(m)
            if m.contains("auth.signing_key") && m.contains("BOTORA_SIGNING_KEY")));
    }
}

#[test]
fn bad_key_configs_are_refused() {
    let config_message = |auth: AuthConfig| match Keys::from_config(&auth) {
        Err(TokenError::Config(message)) => message,
        other => panic!("expected a config error, got {other:?}"),
    };
    let with_keys = |keys| AuthConfig {
        keys,
        ..AuthConfig::default()
    };

    let message = config_message(hs_auth("RS256", SECRET));
    assert!(message.contains("auth.algorithm RS256"), "{message}");
    let message = config_message(hs_auth("none", SECRET));
    assert!(message.contains(r#""none" is not supported"#), "{message}");
    let message = config_message(with_keys(vec![hs_key("a", "x"), hs_key("a", "y")]));
    assert!(message.contains(r#"kid "a" is listed twice"#), "{message}");
    let message = config_message(with_keys(vec![hs_key("", "x")]));
    assert!(message.contains("empty kid"), "{message}");
    let message = config_message(with_keys(vec![KeyConfig {
        secret: None,
        ..hs_key("a", "")
    }]));
    assert!(
        message.contains(r#"(kid "a").secret is required"#),
        "{message}"
    );

    let mut ps256 = pem_key("p", "RS256", "rs256");
    ps256.algorithm = "PS256".into();
    assert!(config_message(with_keys(vec![ps256])).contains("PS256"));
}

#[test]
fn bad_pem_files_are_refused() {
    let config_message = |keys| match Keys::from_config(&AuthConfig {
        keys,
        ..AuthConfig::default()
    }) {
        Err(TokenError::Config(message)) => message,
        other => panic!("expected a config error, got {other:?}"),
    };

    let mut missing = pem_key("a", "ES256", "es256");
    missing.public_key = Some(fixture("no-such.pub"));
    let message = config_message(vec![missing]);
    assert!(
        message.contains(".public_key: cannot read") && message.contains("no-such.pub"),
        "{message}"
    );

    let mut mismatched = pem_key("a", "RS256", "rs256");
    mismatched.public_key = Some(fixture("rs256-other.pub"));
    let message = config_message(vec![mismatched]);
    assert!(message.contains("private_key does not match"), "{message}");

    let mut wrong_kind = pem_key("a", "ES256", "es256");
    wrong_kind.public_key = Some(fixture("eddsa.pub"));
    assert!(config_message(vec![wrong_kind]).contains("public_key: unusable key"));

    // Only the signing key needs its private half.
    let mut verify_only = pem_key("b", "RS256", "rs256");
    verify_only.private_key = None;
    keys_of(vec![pem_key("a", "ES256", "es256"), verify_only.clone()]);
    let message = config_message(vec![verify_only]);
    assert!(
        message.contains("private_key (a PEM file) is required"),
        "{message}"
    );
}
