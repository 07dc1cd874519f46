//! Django's password hash formats: [`make`] writes `pbkdf2_sha256` hashes and
//! [`verify`] checks every hasher in Django 5's default `PASSWORD_HASHERS`.
//!
//! Stored hashes come from a database that Django and people with `psql`
//! also write, so nothing here trusts them: a string that cannot be checked
//! (unknown algorithm, malformed, absurd cost) is a [`Verdict::Mismatch`],
//! never a panic and never an unbounded amount of work.

use std::hint::black_box;

use argon2::{Argon2, Version};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use pbkdf2::pbkdf2_hmac;
use rand::RngExt as _;
use rand::distr::Alphanumeric;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Longest password, in bytes, that [`verify`] hashes; a longer one is a
/// [`Verdict::Mismatch`] at the cost of a normal check. Django has no such
/// cap. [`make`] does not enforce it: callers refuse longer passwords before
/// calling it, since a hash of one could never be matched.
pub const MAX_PASSWORD_LEN: usize = 4096;

/// Highest PBKDF2 iteration count accepted in a stored hash or by [`make`].
const MAX_ITERATIONS: u32 = 100_000_000;
/// Django's salt length: 128 bits of entropy from a 62-letter alphabet.
const SALT_LEN: usize = 22;
/// The hasher that [`make`] writes and [`verify`] never asks to replace.
const PREFERRED: &str = "pbkdf2_sha256";
/// What Django's `set_unusable_password` puts before its random filler.
const UNUSABLE_PREFIX: char = '!';

// Argon2 limits: memory in KiB (1 GiB; Django's default is 100 MiB),
// passes and lanes.
const MAX_ARGON2_KIB: u32 = 1 << 20;
const MAX_ARGON2_PASSES: u32 = 64;
const MAX_ARGON2_LANES: u32 = 64;
/// bcrypt's cost is a power of two: 16 is 16 times Django's default of 12.
const MAX_BCRYPT_COST: u32 = 16;
// scrypt limits: `n`, `r` and `p` each, then memory in bytes (`128·n·r`,
// 16 MiB at Django's defaults) and work (`n·r·p`, 655,360 at Django's).
const MAX_SCRYPT_N: u32 = 1 << 20;
const MAX_SCRYPT_R_OR_P: u32 = 64;
const MAX_SCRYPT_MEMORY: u32 = 256 << 20;
const MAX_SCRYPT_WORK: u64 = 1 << 25;
/// Django's scrypt always derives 64 bytes.
const SCRYPT_LEN: usize = 64;

// Salt and digest that `dummy_verify` hashes against; never a real user's.
const DUMMY_SALT: &[u8] = b"botoraNoSuchUserSalt00";
const DUMMY_DIGEST: [u8; 32] = [0; 32];

/// What [`verify`] concluded about a password and a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The password is right.
    Match {
        /// The caller should store [`make`]'s hash of the password in place
        /// of this one (Django's `must_update`): the stored hash is not
        /// `pbkdf2_sha256`, not at the preferred iteration count, or has a
        /// salt shorter than Django's 22 characters.
        needs_rehash: bool,
    },
    /// The password is wrong, or the stored hash cannot be checked.
    Mismatch,
}

/// Why a stored hash could not be checked. It never leaves this module:
/// [`verify`] logs it and answers [`Verdict::Mismatch`].
#[derive(Debug, thiserror::Error)]
enum PasswordError {
    #[error("password of {0} bytes is over the {MAX_PASSWORD_LEN}-byte limit")]
    TooLong(usize),
    #[error("stored hash is empty or marked unusable")]
    Unusable,
    // The prefix is not echoed: a column holding plain text would leak it.
    #[error("hash algorithm is not one Botora knows")]
    UnknownAlgorithm,
    #[error("{algorithm} hash is malformed: bad {what}")]
    Malformed {
        algorithm: &'static str,
        what: &'static str,
    },
    #[error("{algorithm} {name} of {value} is outside 1..={max}")]
    OutOfRange {
        algorithm: &'static str,
        name: &'static str,
        value: u64,
        max: u64,
    },
    #[error("bad base64 in hash: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("argon2 refused the hash: {0}")]
    Argon2(#[from] argon2::Error),
    #[error("scrypt refused the parameters: {0}")]
    ScryptParams(#[from] scrypt::errors::InvalidParams),
    #[error("scrypt refused the output: {0}")]
    ScryptOutput(#[from] scrypt::errors::InvalidOutputLen),
    #[error("bcrypt refused the hash: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
}

impl PasswordError {
    /// Whether an operator should hear of it: a corrupt or foreign hash is
    /// worth a warning, an unusable password or an oversized guess is not.
    fn is_notable(&self) -> bool {
        !matches!(self, Self::TooLong(_) | Self::Unusable)
    }
}

/// Hashes `password` as Django's default hasher does, with a fresh salt:
/// `pbkdf2_sha256$<iterations>$<salt>$<base64 digest>`.
///
/// `iterations` is clamped to 1..=100,000,000, the range [`verify`] accepts.
/// The password is hashed whatever its length; callers refuse passwords
/// over [`MAX_PASSWORD_LEN`] bytes first. The salt is 22 characters of
/// `[a-zA-Z0-9]` from `rand`'s thread generator, a CSPRNG seeded by the OS.
pub fn make(password: &str, iterations: u32) -> String {
    let salt: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(SALT_LEN)
        .map(char::from)
        .collect();
    let iterations = clamp_iterations(iterations);
    let digest = Prf::Sha256.derive(password.as_bytes(), salt.as_bytes(), iterations);
    format!(
        "{PREFERRED}${iterations}${salt}${}",
        STANDARD.encode(digest)
    )
}

/// Checks `password` against a hash that Django or [`make`] stored.
///
/// Accepts `pbkdf2_sha256`, `pbkdf2_sha1`, `argon2` (argon2id, argon2i or
/// argon2d), `bcrypt_sha256` and `scrypt`. Anything else, a malformed or
/// over-costly hash, an unusable one (`!…`) and a password over
/// [`MAX_PASSWORD_LEN`] bytes are a [`Verdict::Mismatch`] that still costs
/// a `pbkdf2_sha256` check at `preferred_iterations`, as in Django. So does
/// a wrong password against a cheaper `pbkdf2_sha256` hash (Django's
/// `harden_runtime`).
pub fn verify(password: &str, encoded: &str, preferred_iterations: u32) -> Verdict {
    let preferred = clamp_iterations(preferred_iterations);
    match check(password.as_bytes(), encoded, preferred) {
        Ok(verdict) => verdict,
        Err(error) => {
            if error.is_notable() {
                tracing::warn!(%error, "stored password hash cannot be checked");
            }
            dummy_verify(password, preferred);
            Verdict::Mismatch
        }
    }
}

/// Spends what checking a `pbkdf2_sha256` hash of `iterations` costs, so
/// that a login as an unknown user takes as long as one with a wrong
/// password. Only the first [`MAX_PASSWORD_LEN`] bytes are hashed, and
/// `iterations` is clamped as in [`make`].
pub fn dummy_verify(password: &str, iterations: u32) {
    let bytes = password.as_bytes();
    let capped = &bytes[..bytes.len().min(MAX_PASSWORD_LEN)];
    let digest = Prf::Sha256.derive(capped, DUMMY_SALT, clamp_iterations(iterations));
    black_box(digest.ct_eq(&DUMMY_DIGEST));
}

/// The steps of [`verify`], with the reason when the hash is unusable.
fn check(password: &[u8], encoded: &str, preferred: u32) -> Result<Verdict, PasswordError> {
    // Refuse an oversized password before hashing anything.
    if password.len() > MAX_PASSWORD_LEN {
        return Err(PasswordError::TooLong(password.len()));
    }

    // Parse the stored hash and bound its costs, then hash the password.
    let stored = Stored::parse(encoded)?;
    if stored.matches(password)? {
        let needs_rehash = stored.needs_rehash(preferred);
        return Ok(Verdict::Match { needs_rehash });
    }

    // A wrong password costs what the preferred hash would have.
    stored.harden_runtime(password, preferred);
    Ok(Verdict::Mismatch)
}

fn clamp_iterations(iterations: u32) -> u32 {
    iterations.clamp(1, MAX_ITERATIONS)
}

/// The HMAC hash under Django's two PBKDF2 hashers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prf {
    Sha256,
    Sha1,
}

impl Prf {
    fn algorithm(self) -> &'static str {
        match self {
            Self::Sha256 => "pbkdf2_sha256",
            Self::Sha1 => "pbkdf2_sha1",
        }
    }

    /// Django asks PBKDF2 for one digest of the underlying hash.
    fn digest_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha1 => 20,
        }
    }

    fn derive(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.digest_len()];
        match self {
            Self::Sha256 => pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
            Self::Sha1 => pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
        }
        out
    }
}

/// A stored hash, parsed, with its costs within bounds.
enum Stored<'a> {
    Pbkdf2 {
        prf: Prf,
        iterations: u32,
        salt: &'a str,
        digest: Vec<u8>,
    },
    Argon2 {
        hasher: Argon2<'static>,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    /// The whole `$2b$…` bcrypt string that follows `bcrypt_sha256$`.
    BcryptSha256(&'a str),
    Scrypt {
        params: scrypt::Params,
        salt: &'a str,
        hash: Vec<u8>,
    },
}

impl<'a> Stored<'a> {
    fn parse(encoded: &'a str) -> Result<Self, PasswordError> {
        if encoded.is_empty() || encoded.starts_with(UNUSABLE_PREFIX) {
            return Err(PasswordError::Unusable);
        }
        let (algorithm, rest) = encoded
            .split_once('$')
            .ok_or(PasswordError::UnknownAlgorithm)?;
        match algorithm {
            "pbkdf2_sha256" => parse_pbkdf2(Prf::Sha256, rest),
            "pbkdf2_sha1" => parse_pbkdf2(Prf::Sha1, rest),
            "argon2" => parse_argon2(rest),
            "bcrypt_sha256" => parse_bcrypt_sha256(rest),
            "scrypt" => parse_scrypt(rest),
            _ => Err(PasswordError::UnknownAlgorithm),
        }
    }

    /// Hashes `password` as the stored hash was made and compares the two
    /// in constant time.
    fn matches(&self, password: &[u8]) -> Result<bool, PasswordError> {
        match self {
            Self::Pbkdf2 {
                prf,
                iterations,
                salt,
                digest,
            } => {
                let computed = prf.derive(password, salt.as_bytes(), *iterations);
                Ok(computed.ct_eq(digest).into())
            }
            Self::Argon2 { hasher, salt, hash } => {
                let mut computed = vec![0; hash.len()];
                hasher.hash_password_into(password, salt, &mut computed)?;
                Ok(computed.ct_eq(hash).into())
            }
            // The bcrypt crate compares in constant time itself.
            Self::BcryptSha256(bcrypt) => Ok(bcrypt::verify(sha256_hex(password), bcrypt)?),
            Self::Scrypt { params, salt, hash } => {
                let mut computed = [0; SCRYPT_LEN];
                scrypt::scrypt(password, salt.as_bytes(), params, &mut computed)?;
                Ok(computed.ct_eq(hash.as_slice()).into())
            }
        }
    }

    /// Django's `must_update` with `pbkdf2_sha256` as the preferred hasher.
    fn needs_rehash(&self, preferred: u32) -> bool {
        match self {
            Self::Pbkdf2 {
                prf: Prf::Sha256,
                iterations,
                salt,
                ..
            } => *iterations != preferred || salt.chars().count() < SALT_LEN,
            _ => true,
        }
    }

    /// Django's `harden_runtime`: after a wrong password against a
    /// `pbkdf2_sha256` hash of fewer iterations than preferred, spends the
    /// difference. Other hashers are not the preferred one, and Django
    /// leaves them alone too.
    fn harden_runtime(&self, password: &[u8], preferred: u32) {
        if let Self::Pbkdf2 {
            prf: Prf::Sha256,
            iterations,
            salt,
            ..
        } = self
        {
            let extra = preferred.saturating_sub(*iterations);
            if extra > 0 {
                black_box(Prf::Sha256.derive(password, salt.as_bytes(), extra));
            }
        }
    }
}

/// `<iterations>$<salt>$<base64 digest>`, as Django's PBKDF2 hashers write.
fn parse_pbkdf2(prf: Prf, rest: &str) -> Result<Stored<'_>, PasswordError> {
    let algorithm = prf.algorithm();
    let [iterations, salt, digest] = split_fields(algorithm, rest)?;
    let iterations = bounded(algorithm, "iterations", iterations, MAX_ITERATIONS)?;
    let salt = non_empty(algorithm, salt)?;

    let digest = STANDARD.decode(digest)?;
    if digest.len() != prf.digest_len() {
        return Err(malformed(algorithm, "digest length"));
    }
    Ok(Stored::Pbkdf2 {
        prf,
        iterations,
        salt,
        digest,
    })
}

/// `<variant>[$v=<version>]$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>`:
/// a PHC string less its leading `$`, salt and hash in unpadded base64.
/// Without `v=`, the version is 0x10, as libargon2 reads such strings.
fn parse_argon2(rest: &str) -> Result<Stored<'_>, PasswordError> {
    let fields: Vec<&str> = rest.split('$').collect();
    let (variant, version, costs, salt, hash) = match fields.as_slice() {
        [variant, version, costs, salt, hash] => {
            (*variant, argon2_version(version)?, *costs, *salt, *hash)
        }
        [variant, costs, salt, hash] => (*variant, Version::V0x10, *costs, *salt, *hash),
        _ => return Err(malformed("argon2", "field count")),
    };

    let algorithm = argon2::Algorithm::new(variant)?;
    let (memory, passes, lanes) = argon2_costs(costs)?;
    let salt = STANDARD_NO_PAD.decode(salt)?;
    let hash = STANDARD_NO_PAD.decode(hash)?;
    let params = argon2::Params::new(memory, passes, lanes, Some(hash.len()))?;
    Ok(Stored::Argon2 {
        hasher: Argon2::new(algorithm, version, params),
        salt,
        hash,
    })
}

fn argon2_version(field: &str) -> Result<Version, PasswordError> {
    match field {
        "v=19" => Ok(Version::V0x13),
        "v=16" => Ok(Version::V0x10),
        _ => Err(malformed("argon2", "version")),
    }
}

/// `m=…,t=…,p=…`, in that order, as libargon2 writes them.
fn argon2_costs(field: &str) -> Result<(u32, u32, u32), PasswordError> {
    let mut costs = field.split(',');
    let mut next = |key: &'static str, max: u32| {
        let value = costs
            .next()
            .and_then(|cost| cost.strip_prefix(key))
            .and_then(|cost| cost.strip_prefix('='))
            .ok_or(malformed("argon2", "cost list"))?;
        bounded("argon2", key, value, max)
    };
    let memory = next("m", MAX_ARGON2_KIB)?;
    let passes = next("t", MAX_ARGON2_PASSES)?;
    let lanes = next("p", MAX_ARGON2_LANES)?;
    if costs.next().is_some() {
        return Err(malformed("argon2", "cost list"));
    }
    Ok((memory, passes, lanes))
}

/// `$2b$<cost>$<bcrypt salt and hash>`: bcrypt over the lowercase hex of
/// the password's SHA-256, which spares long passwords bcrypt's 72-byte cut.
fn parse_bcrypt_sha256(rest: &str) -> Result<Stored<'_>, PasswordError> {
    let cost = rest.get(4..6).ok_or(malformed("bcrypt_sha256", "cost"))?;
    bounded("bcrypt_sha256", "cost", cost, MAX_BCRYPT_COST)?;
    Ok(Stored::BcryptSha256(rest))
}

/// `<n>$<salt>$<r>$<p>$<base64 hash>`, the order Django's scrypt hasher
/// writes, with a 64-byte hash.
fn parse_scrypt(rest: &str) -> Result<Stored<'_>, PasswordError> {
    let [n, salt, r, p, hash] = split_fields("scrypt", rest)?;
    let n = bounded("scrypt", "n", n, MAX_SCRYPT_N)?;
    let r = bounded("scrypt", "r", r, MAX_SCRYPT_R_OR_P)?;
    let p = bounded("scrypt", "p", p, MAX_SCRYPT_R_OR_P)?;
    let log_n = scrypt_log_n(n)?;
    scrypt_cost(n, r, p)?;
    let salt = non_empty("scrypt", salt)?;

    let hash = STANDARD.decode(hash)?;
    if hash.len() != SCRYPT_LEN {
        return Err(malformed("scrypt", "hash length"));
    }
    let params = scrypt::Params::new(log_n, r, p)?;
    Ok(Stored::Scrypt { params, salt, hash })
}

/// scrypt's `n` must be a power of two above 1.
fn scrypt_log_n(n: u32) -> Result<u8, PasswordError> {
    if n < 2 || !n.is_power_of_two() {
        return Err(malformed("scrypt", "n (not a power of two above 1)"));
    }
    u8::try_from(n.trailing_zeros()).map_err(|_| malformed("scrypt", "n"))
}

/// Refuses memory (`128·n·r` bytes) or work (`n·r·p`) past the limits.
fn scrypt_cost(n: u32, r: u32, p: u32) -> Result<(), PasswordError> {
    let memory = 128 * u64::from(n) * u64::from(r);
    if memory > u64::from(MAX_SCRYPT_MEMORY) {
        return Err(out_of_range(
            "scrypt",
            "memory",
            memory,
            MAX_SCRYPT_MEMORY.into(),
        ));
    }
    let work = u64::from(n) * u64::from(r) * u64::from(p);
    if work > MAX_SCRYPT_WORK {
        return Err(out_of_range("scrypt", "n*r*p", work, MAX_SCRYPT_WORK));
    }
    Ok(())
}

/// Splits on `$` into exactly `N` fields.
fn split_fields<'a, const N: usize>(
    algorithm: &'static str,
    rest: &'a str,
) -> Result<[&'a str; N], PasswordError> {
    let fields: Vec<&str> = rest.split('$').collect();
    fields
        .try_into()
        .map_err(|_| malformed(algorithm, "field count"))
}

/// Parses a decimal cost within `1..=max`. Only ASCII digits are taken
/// (`str::parse` would also take a leading `+`).
fn bounded(
    algorithm: &'static str,
    name: &'static str,
    field: &str,
    max: u32,
) -> Result<u32, PasswordError> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(algorithm, name));
    }
    // Digits only, so parsing fails on overflow alone.
    let value = field.parse::<u64>().unwrap_or(u64::MAX);
    u32::try_from(value)
        .ok()
        .filter(|v| (1..=max).contains(v))
        .ok_or(out_of_range(algorithm, name, value, max.into()))
}

fn non_empty<'a>(algorithm: &'static str, salt: &'a str) -> Result<&'a str, PasswordError> {
    if salt.is_empty() {
        return Err(malformed(algorithm, "salt"));
    }
    Ok(salt)
}

fn malformed(algorithm: &'static str, what: &'static str) -> PasswordError {
    PasswordError::Malformed { algorithm, what }
}

fn out_of_range(
    algorithm: &'static str,
    name: &'static str,
    value: u64,
    max: u64,
) -> PasswordError {
    PasswordError::OutOfRange {
        algorithm,
        name,
        value,
        max,
    }
}

/// The lowercase hex of SHA-256, the input Django's `bcrypt_sha256` gives bcrypt.
fn sha256_hex(password: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    Sha256::digest(password)
        .iter()
        .flat_map(|byte| [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0x0f)]])
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests;
