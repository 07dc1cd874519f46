//! Access and refresh tokens shaped like djangorestframework-simplejwt 5.5's.
//!
//! [`Keys`] is built once from `[auth]` (keys parsed, PEM files read) and then
//! mints and checks tokens. Each key's algorithm comes from config: a token's
//! `alg` header only selects among configured keys, never how to verify.

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::crypto::{self, CryptoProvider};
use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{AuthConfig, KeyConfig};

/// Which endpoint family a token is for: the `token_type` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// Short-lived, sent as `Authorization: Bearer`.
    Access,
    /// Long-lived, exchanged at `/api/token/refresh/`.
    Refresh,
}

impl TokenType {
    /// The claim value, `access` or `refresh`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "access" => Some(Self::Access),
            "refresh" => Some(Self::Refresh),
            _ => None,
        }
    }
}

/// The claims Botora reads and writes, serialized in simplejwt's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// `access` or `refresh`.
    pub token_type: TokenType,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: i64,
    /// Unique token id: a v4 UUID as 32 hex digits.
    pub jti: String,
    /// The user's primary key, always written as a string.
    pub user_id: String,
    /// Schema name of the tenant the token was minted for; `None` for
    /// tokens minted by Django, which carry no such claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// Why a token was refused as invalid, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidReason {
    /// Not a JWT, an unknown `alg` (such as `none`), or a claim missing or
    /// of the wrong JSON type.
    Malformed,
    /// The `alg` header is not the algorithm of the chosen key(s).
    BadAlgorithm,
    /// The `kid` header names no configured key.
    UnknownKid,
    /// The signature does not match.
    BadSignature,
    /// `nbf` lies in the future, past the leeway.
    NotYetValid,
    /// Bound to another tenant.
    WrongTenant,
    /// No `tenant` claim while unbound tokens are refused.
    Unbound,
}

impl InvalidReason {
    /// A short metrics label such as `bad_signature`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadAlgorithm => "bad_algorithm",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongTenant => "wrong_tenant",
            Self::Unbound => "unbound",
        }
    }
}

/// Failures of this module. The first three display as simplejwt 5.5 words
/// them, ready for an API body.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Refused; the reason is for logs and metrics only.
    #[error("Token is invalid")]
    Invalid(InvalidReason),
    /// Signature fine, but `exp` has passed (after the leeway).
    #[error("Token is expired")]
    Expired,
    /// A valid token of the other (or an unknown) `token_type`.
    #[error("Token has wrong type")]
    WrongType,
    /// `[auth]` cannot produce usable keys; the message names the setting.
    #[error("{0}")]
    Config(String),
    /// The signing key failed to sign.
    #[error("cannot sign a token: {0}")]
    Signing(#[source] JwtError),
}

impl TokenError {
    /// A short metrics label such as `expired` or `wrong_tenant`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(reason) => reason.label(),
            Self::Expired => "expired",
            Self::WrongType => "wrong_type",
            Self::Config(_) => "config",
            Self::Signing(_) => "signing",
        }
    }
}

/// The signing key and every verifying key, ready for the hot path.
///
/// A token whose header has a `kid` is checked against that key only. A
/// token without one (as Django mints them) is tried against every key of
/// the header's algorithm, in config order, until a signature matches.
#[derive(Debug)]
pub struct Keys {
    signer: Signer,
    verifiers: Vec<Verifier>,
}

#[derive(Debug)]
struct Signer {
    header: Header,
    key: EncodingKey,
}

#[derive(Debug)]
struct Verifier {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
    validation: Validation,
}

impl Keys {
    /// Builds the keys from `[auth]`, reading any PEM files.
    ///
    /// With `auth.keys` empty, `auth.signing_key` signs and verifies with
    /// `auth.algorithm` (an HS algorithm). Otherwise the first entry of
    /// `auth.keys` signs, every entry verifies, and `auth.algorithm` and
    /// `auth.signing_key` are not used.
    pub fn from_config(auth: &AuthConfig) -> Result<Keys, TokenError> {
        ensure_crypto_provider();
        match auth.keys.first() {
            None => Self::from_signing_key(auth),
            Some(first) => Self::from_key_list(first, &auth.keys),
        }
    }

    fn from_signing_key(auth: &AuthConfig) -> Result<Keys, TokenError> {
        let algorithm = parse_algorithm(&auth.algorithm, "auth.algorithm")?;
        if algorithm.family() != AlgorithmFamily::Hmac {
            return Err(TokenError::Config(format!(
                "auth.algorithm {} needs [[auth.keys]] entries with PEM files; \
                 auth.signing_key serves only HS256, HS384 and HS512",
                auth.algorithm
            )));
        }
        let secret = auth.signing_key.as_deref().filter(|s| !s.is_empty());
        let secret = secret.ok_or_else(|| {
            TokenError::Config("auth.signing_key or BOTORA_SIGNING_KEY is required".into())
        })?;
        let unusable = |e| setting_error("auth.signing_key", e);
        let key = EncodingKey::from_secret(secret.as_bytes()).map_err(unusable)?;
        let decoding = DecodingKey::from_secret(secret.as_bytes()).map_err(unusable)?;
        let signer = Signer {
            header: Header::new(algorithm),
            key,
        };
        let verifiers = vec![Verifier::new(None, algorithm, decoding)];
        Ok(Keys { signer, verifiers })
    }

    fn from_key_list(first: &KeyConfig, list: &[KeyConfig]) -> Result<Keys, TokenError> {
        // Every kid must be present and distinct, or selection is ambiguous.
        check_kids(list)?;

        // Load every verifying key, then the first key's signing half.
        let verifiers = list
            .iter()
            .map(load_verifier)
            .collect::<Result<Vec<_>, _>>()?;
        let signer = load_signer(first)?;

        // Prove the signing half matches its verifying half.
        if let Some(verifier) = verifiers.first() {
            check_pair(first, &signer, verifier)?;
        }
        Ok(Keys { signer, verifiers })
    }

    /// Mints a token of `token_type` for `user_id`, bound to `tenant`,
    /// issued at `now` (Unix seconds) and expiring `lifetime` later.
    pub fn mint(
        &self,
        token_type: TokenType,
        user_id: &str,
        tenant: &str,
        lifetime: Duration,
        now: i64,
    ) -> Result<String, TokenError> {
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            token_type,
            exp: now.saturating_add(lifetime),
            iat: now,
            jti: Uuid::new_v4().simple().to_string(),
            user_id: user_id.to_owned(),
            tenant: Some(tenant.to_owned()),
        };
        let signer = &self.signer;
        jsonwebtoken::encode(&signer.header, &claims, &signer.key).map_err(TokenError::Signing)
    }

    /// Checks a token's signature, `nbf` and `iat` (neither in the future,
    /// past the leeway), `exp` (expired when `exp <= now - leeway`, as
    /// simplejwt) and claim types; returns its
    /// claims. The token type and tenant are the caller's to check, with
    /// [`check_type`] and [`check_binding`].
    pub fn decode(&self, token: &str, now: i64, leeway: u64) -> Result<Claims, TokenError> {
        // Read the header, untrusted, only to choose the key(s).
        let header = jsonwebtoken::decode_header(token);
        let header = header.map_err(|_| TokenError::Invalid(InvalidReason::Malformed))?;

        // Verify the signature and parse the payload.
        let wire = match header.kid.as_deref() {
            Some(kid) => self.named(kid)?.verify(token, header.alg)?,
            None => self.verify_unnamed(token, header.alg)?,
        };

        // Check the time claims and the token type's spelling.
        wire.into_claims(now, leeway)
    }

    fn named(&self, kid: &str) -> Result<&Verifier, TokenError> {
        let found = self
            .verifiers
            .iter()
            .find(|v| v.kid.as_deref() == Some(kid));
        found.ok_or(TokenError::Invalid(InvalidReason::UnknownKid))
    }

    fn verify_unnamed(&self, token: &str, alg: Algorithm) -> Result<WireClaims, TokenError> {
        let mut outcome = Err(TokenError::Invalid(InvalidReason::BadAlgorithm));
        for verifier in self.verifiers.iter().filter(|v| v.algorithm == alg) {
            outcome = verifier.verify(token, alg);
            if !matches!(
                outcome,
                Err(TokenError::Invalid(InvalidReason::BadSignature))
            ) {
                break;
            }
        }
        outcome
    }
}

/// Refuses a token of another type than `expected`.
pub fn check_type(claims: &Claims, expected: TokenType) -> Result<(), TokenError> {
    if claims.token_type == expected {
        Ok(())
    } else {
        Err(TokenError::WrongType)
    }
}

/// Refuses a token bound to a tenant other than `tenant` (a schema name),
/// or bound to none unless `accept_unbound`.
pub fn check_binding(
    claims: &Claims,
    tenant: &str,
    accept_unbound: bool,
) -> Result<(), TokenError> {
    match claims.tenant.as_deref() {
        Some(bound) if bound == tenant => Ok(()),
        Some(_) => Err(TokenError::Invalid(InvalidReason::WrongTenant)),
        None if accept_unbound => Ok(()),
        None => Err(TokenError::Invalid(InvalidReason::Unbound)),
    }
}

impl Verifier {
    /// A verifier whose validation checks only the signature and `alg`;
    /// the time claims are checked against the caller's clock afterwards.
    fn new(kid: Option<String>, algorithm: Algorithm, key: DecodingKey) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = 0;
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Verifier {
            kid,
            algorithm,
            key,
            validation,
        }
    }

    fn verify(&self, token: &str, alg: Algorithm) -> Result<WireClaims, TokenError> {
        if alg != self.algorithm {
            return Err(TokenError::Invalid(InvalidReason::BadAlgorithm));
        }
        let data = jsonwebtoken::decode::<WireClaims>(token, &self.key, &self.validation);
        data.map(|d| d.claims)
            .map_err(|e| TokenError::Invalid(invalid_reason(&e)))
    }
}

fn invalid_reason(error: &JwtError) -> InvalidReason {
    match error.kind() {
        ErrorKind::InvalidSignature => InvalidReason::BadSignature,
        ErrorKind::InvalidAlgorithm => InvalidReason::BadAlgorithm,
        _ => InvalidReason::Malformed,
    }
}

/// The payload as received: lenient where simplejwt is (`user_id`), strict
/// on types elsewhere. Unknown claims are ignored.
#[derive(Deserialize)]
struct WireClaims {
    token_type: String,
    exp: i64,
    iat: i64,
    jti: String,
    user_id: UserId,
    tenant: Option<String>,
    nbf: Option<i64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum UserId {
    Text(String),
    Number(i64),
}

impl WireClaims {
    fn into_claims(self, now: i64, leeway: u64) -> Result<Claims, TokenError> {
        let leeway = i64::try_from(leeway).unwrap_or(i64::MAX);
        // PyJWT (under simplejwt) also refuses a token issued in the future.
        let future = now.saturating_add(leeway);
        if self.nbf.is_some_and(|nbf| nbf > future) || self.iat > future {
            return Err(TokenError::Invalid(InvalidReason::NotYetValid));
        }
        if self.exp <= now.saturating_sub(leeway) {
            return Err(TokenError::Expired);
        }
        let token_type = TokenType::parse(&self.token_type).ok_or(TokenError::WrongType)?;
        let user_id = match self.user_id {
            UserId::Text(text) => text,
            UserId::Number(number) => number.to_string(),
        };
        Ok(Claims {
            token_type,
            exp: self.exp,
            iat: self.iat,
            jti: self.jti,
            user_id,
            tenant: self.tenant,
        })
    }
}

/// Makes sure jsonwebtoken has a crypto backend: it picks one by itself only
/// when exactly one backend feature is compiled in.
fn ensure_crypto_provider() {
    if CryptoProvider::try_get_default().is_none() {
        // A lost race means another thread installed one: fine either way.
        let _ = crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    }
}

fn parse_algorithm(name: &str, setting: &str) -> Result<Algorithm, TokenError> {
    match name {
        "HS256" => Ok(Algorithm::HS256),
        "HS384" => Ok(Algorithm::HS384),
        "HS512" => Ok(Algorithm::HS512),
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        _ => Err(TokenError::Config(format!(
            "{setting} {name:?} is not supported; use HS256, HS384, HS512, RS256, ES256 or EdDSA"
        ))),
    }
}

fn check_kids(list: &[KeyConfig]) -> Result<(), TokenError> {
    for (index, key) in list.iter().enumerate() {
        if key.kid.is_empty() {
            return Err(TokenError::Config(format!(
                "auth.keys[{index}] has an empty kid"
            )));
        }
        if list[..index].iter().any(|k| k.kid == key.kid) {
            return Err(TokenError::Config(format!(
                "auth.keys: kid {:?} is listed twice",
                key.kid
            )));
        }
    }
    Ok(())
}

fn load_verifier(key: &KeyConfig) -> Result<Verifier, TokenError> {
    let algorithm = parse_algorithm(&key.algorithm, &key_setting(key, "algorithm"))?;
    let decoding = match algorithm.family() {
        AlgorithmFamily::Hmac => DecodingKey::from_secret(hmac_secret(key)?),
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&read_pem(key, Half::Public)?),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&read_pem(key, Half::Public)?),
        AlgorithmFamily::Ed => DecodingKey::from_ed_pem(&read_pem(key, Half::Public)?),
    };
    let setting = key_setting(key, Half::Public.setting(algorithm));
    let decoding = decoding.map_err(|e| setting_error(&setting, e))?;
    Ok(Verifier::new(Some(key.kid.clone()), algorithm, decoding))
}

fn load_signer(key: &KeyConfig) -> Result<Signer, TokenError> {
    let algorithm = parse_algorithm(&key.algorithm, &key_setting(key, "algorithm"))?;
    let encoding = match algorithm.family() {
        AlgorithmFamily::Hmac => EncodingKey::from_secret(hmac_secret(key)?),
        AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(&read_pem(key, Half::Private)?),
        AlgorithmFamily::Ec => EncodingKey::from_ec_pem(&read_pem(key, Half::Private)?),
        AlgorithmFamily::Ed => EncodingKey::from_ed_pem(&read_pem(key, Half::Private)?),
    };
    let setting = key_setting(key, Half::Private.setting(algorithm));
    let encoding = encoding.map_err(|e| setting_error(&setting, e))?;
    let mut header = Header::new(algorithm);
    header.kid = Some(key.kid.clone());
    Ok(Signer {
        header,
        key: encoding,
    })
}

/// Signs a probe with the signing key and verifies it with the first
/// verifying key, so a mismatched PEM pair fails the (re)load.
fn check_pair(key: &KeyConfig, signer: &Signer, verifier: &Verifier) -> Result<(), TokenError> {
    let probe = b"botora signing key check";
    let alg = verifier.algorithm;
    let signature = crypto::sign(probe, &signer.key, alg);
    let signature = signature.map_err(|e| setting_error(&key_setting(key, "private_key"), e))?;
    match crypto::verify(&signature, probe, &verifier.key, alg) {
        Ok(true) => Ok(()),
        _ => Err(TokenError::Config(format!(
            "{} does not match {}",
            key_setting(key, "private_key"),
            key_setting(key, "public_key")
        ))),
    }
}

/// Which half of an asymmetric key pair to read.
#[derive(Clone, Copy)]
enum Half {
    Private,
    Public,
}

impl Half {
    /// The `auth.keys` field holding this half (`secret` for HS keys).
    fn setting(self, algorithm: Algorithm) -> &'static str {
        match (algorithm.family(), self) {
            (AlgorithmFamily::Hmac, _) => "secret",
            (_, Half::Private) => "private_key",
            (_, Half::Public) => "public_key",
        }
    }
}

fn hmac_secret(key: &KeyConfig) -> Result<&[u8], TokenError> {
    match key.secret.as_deref() {
        Some(secret) if !secret.is_empty() => Ok(secret.as_bytes()),
        _ => Err(TokenError::Config(format!(
            "{} is required for {}",
            key_setting(key, "secret"),
            key.algorithm
        ))),
    }
}

fn read_pem(key: &KeyConfig, half: Half) -> Result<Vec<u8>, TokenError> {
    let (path, field) = match half {
        Half::Private => (key.private_key.as_deref(), "private_key"),
        Half::Public => (key.public_key.as_deref(), "public_key"),
    };
    let setting = key_setting(key, field);
    let path: &Path = path.ok_or_else(|| {
        TokenError::Config(format!(
            "{setting} (a PEM file) is required for {}",
            key.algorithm
        ))
    })?;
    std::fs::read(path)
        .map_err(|e| TokenError::Config(format!("{setting}: cannot read {}: {e}", path.display())))
}

/// Names a field of one `auth.keys` entry, for error messages.
fn key_setting(key: &KeyConfig, field: &str) -> String {
    format!("auth.keys (kid {:?}).{field}", key.kid)
}

fn setting_error(setting: &str, error: JwtError) -> TokenError {
    TokenError::Config(format!("{setting}: unusable key: {error}"))
}

#[cfg(test)]
mod tests {
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
        let payload =
            r#"{"token_type":"access","exp":4102444800,"iat":1,"jti":"ab","user_id":"1"}"#;
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

        let sliding =
            r#"{"token_type":"sliding","exp":4102444800,"iat":1,"jti":"ab","user_id":"1"}"#;
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
}
