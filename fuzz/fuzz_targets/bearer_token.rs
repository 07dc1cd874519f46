//! Fuzzes the `Authorization` header parser and the token decoder.
//!
//! Each input is read three ways: as `Authorization` headers (one per
//! line) whose bearer token is decoded, as a token on its own, and as a
//! claims payload that the target signs itself with its HS256 key (so the
//! claim checks behind the signature are reached too). Every token goes
//! through two key sets: Django's single HS256 secret, and a rotation of an
//! Ed25519 key and an HS256 key chosen by `kid`.
//!
//! Invariants: nothing panics; the header's refusals are simplejwt's (two
//! headers are one bad header); an accepted token is neither expired nor
//! issued in the future; and a token is accepted only when its signature
//! is the one our own key gives its first two parts. HS256 and Ed25519
//! both sign deterministically, so that is checked by signing again:
//! mutating a valid seed never yields a forgery.

#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use botora::auth;
use botora::auth::token::{Claims, Keys};
use botora::config::{AuthConfig, KeyConfig};
use botora::http::ApiError;
use http::{HeaderMap, HeaderValue, header};
use jsonwebtoken::crypto;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;

/// The HS256 secret of both key sets (the one the unit tests use).
const SECRET: &str = "django-insecure-7q!x$botora-test-secret-k3y#0z";

/// The clock every token is checked against: 2025-12-03.
const NOW: i64 = 1_764_787_200;

/// No leeway, and the most there can be.
const LEEWAYS: [u64; 2] = [0, u64::MAX];

/// The header of the tokens the target signs itself, base64url.
const HS256_HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

const KEYS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/keys");

struct Fixture {
    /// `auth.signing_key` alone: tokens carry no `kid`.
    single: Keys,
    /// `[[auth.keys]]`: `eddsa` (Ed25519, signs) and `hs` (HS256).
    rotated: Keys,
    /// The signing halves, to sign again what was accepted.
    signers: [(EncodingKey, Algorithm); 2],
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let single = AuthConfig {
        signing_key: Some(SECRET.into()),
        ..AuthConfig::default()
    };
    let rotated = AuthConfig {
        keys: vec![eddsa_key(), hs_key()],
        ..AuthConfig::default()
    };
    let ed_pem = std::fs::read(format!("{KEYS_DIR}/eddsa.key")).expect("eddsa fixture");
    let ed = EncodingKey::from_ed_pem(&ed_pem).expect("eddsa fixture key");
    let hs = EncodingKey::from_secret(SECRET.as_bytes()).expect("HS256 secret");
    Fixture {
        single: Keys::from_config(&single).expect("single key"),
        rotated: Keys::from_config(&rotated).expect("rotated keys"),
        signers: [(hs, Algorithm::HS256), (ed, Algorithm::EdDSA)],
    }
});

fn eddsa_key() -> KeyConfig {
    KeyConfig {
        kid: "eddsa".into(),
        algorithm: "EdDSA".into(),
        secret: None,
        private_key: Some(format!("{KEYS_DIR}/eddsa.key").into()),
        public_key: Some(format!("{KEYS_DIR}/eddsa.pub").into()),
    }
}

fn hs_key() -> KeyConfig {
    KeyConfig {
        kid: "hs".into(),
        algorithm: "HS256".into(),
        secret: Some(SECRET.into()),
        private_key: None,
        public_key: None,
    }
}

fuzz_target!(|raw: &[u8]| {
    let fixture = &*FIXTURE;

    // As header values, then their token.
    let headers = authorization_headers(raw);
    match auth::bearer_token(&headers) {
        Ok(token) => {
            assert_eq!(headers.len(), 1, "a token from {raw:?}");
            let value = headers.get(header::AUTHORIZATION).expect("one header");
            check_token_shape(value.as_bytes(), token);
            decode_untrusted(fixture, token);
        }
        Err(error) => check_header_error(&error, headers.len()),
    }

    // As a token on its own.
    if let Ok(token) = std::str::from_utf8(raw) {
        decode_untrusted(fixture, token);
    }

    // As claims under a genuine signature.
    let token = sign_payload(fixture, raw);
    for leeway in LEEWAYS {
        if let Ok(claims) = fixture.single.decode(&token, NOW, leeway) {
            check_times(&claims, leeway);
        }
    }
});

/// Decodes a token nobody vouched for: accepted only if we signed it.
fn decode_untrusted(fixture: &Fixture, token: &str) {
    for keys in [&fixture.single, &fixture.rotated] {
        for leeway in LEEWAYS {
            if let Ok(claims) = keys.decode(token, NOW, leeway) {
                check_times(&claims, leeway);
                check_signed_by_us(fixture, token);
            }
        }
    }
}

fn check_signed_by_us(fixture: &Fixture, token: &str) {
    let (input, signature) = token.rsplit_once('.').expect("a signature part");
    let resigned = |(key, alg): &(EncodingKey, Algorithm)| {
        crypto::sign(input.as_bytes(), key, *alg).is_ok_and(|ours| ours == signature)
    };
    let ours = fixture.signers.iter().any(resigned);
    assert!(ours, "accepted a token none of our keys signed: {token:?}");
}

fn check_times(claims: &Claims, leeway: u64) {
    let leeway = i64::try_from(leeway).unwrap_or(i64::MAX);
    assert!(claims.exp > NOW.saturating_sub(leeway), "{claims:?}");
    assert!(claims.iat <= NOW.saturating_add(leeway), "{claims:?}");
}

/// One `Authorization` header per line of `raw` that is a valid value.
fn authorization_headers(raw: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in raw.split(|b| *b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(header::AUTHORIZATION, value);
        }
    }
    headers
}

/// A token taken from a header is one whitespace-free word after `Bearer`.
fn check_token_shape(value: &[u8], token: &str) {
    let shown = String::from_utf8_lossy(value);
    assert!(!token.is_empty(), "{shown:?}");
    assert!(shown.contains(token), "{shown:?}");
    assert!(!token.bytes().any(|b| b.is_ascii_whitespace()), "{shown:?}");
    assert!(shown.trim_start().starts_with("Bearer"), "{shown:?}");
}

fn check_header_error(error: &ApiError, headers: usize) {
    match error {
        ApiError::NotAuthenticated => assert!(headers <= 1, "{headers} headers"),
        ApiError::Unauthorized(body) => {
            assert_eq!(body["code"], "bad_authorization_header", "{body}");
        }
        other => panic!("a header was refused with {other:?}"),
    }
}

/// `raw` as the payload of an HS256 token signed with the secret.
fn sign_payload(fixture: &Fixture, raw: &[u8]) -> String {
    let input = format!("{HS256_HEADER}.{}", URL_SAFE_NO_PAD.encode(raw));
    let (key, alg) = &fixture.signers[0];
    let signature = crypto::sign(input.as_bytes(), key, *alg).expect("HS256 signs");
    format!("{input}.{signature}")
}
