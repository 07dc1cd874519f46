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
mod tests;
