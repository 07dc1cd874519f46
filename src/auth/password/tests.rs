//! Tests of the Django password hashers, with hashes made outside Botora.

use proptest::prelude::*;

use super::*;

const PW: &str = "correct horse battery staple";

// Fixtures made outside Botora with Django 5.2.19 on Python 3.11.7
// (OpenSSL 3.0.19), argon2-cffi 25.1.0 and bcrypt 5.0.0, after
// `settings.configure()` (Django's default PASSWORD_HASHERS), from PW
// unless a comment says otherwise. Django's check_password accepted each
// with its password and refused "wrong".

/// `PBKDF2PasswordHasher().encode(PW, hasher.salt(), 12000)`.
const PBKDF2_SHA256: &str =
    "pbkdf2_sha256$12000$kPHmAktwnUnRtiaziKPZfw$KPLiSMBZyq2QZQu1SBc2Hl3vGuxm8NjG/gRF1G0sk6U=";
/// As above with the 12-character salt of hashes from before Django 3.1.
const PBKDF2_SHORT_SALT: &str =
    "pbkdf2_sha256$12000$Xq3fT9ab2KcD$vi0ZXNR7V8RCQligKb28MeChkQAC23KuyneazQBxJxU=";
/// `PBKDF2SHA1PasswordHasher().encode(PW, hasher.salt(), 10000)`.
const PBKDF2_SHA1: &str = "pbkdf2_sha1$10000$FMfaEyM893r3AOeVjKaa5i$ZJFJGrnwISWEV+OWtNQFNBYjR3Y=";
/// `PBKDF2PasswordHasher().encode(UNICODE_PW, salt, 5000)`.
const PBKDF2_UNICODE: &str =
    "pbkdf2_sha256$5000$6rO5AfQVpJGJYB2OWzvDWo$L/vXBv/7rr2Q+rkkIx9Jp2m0gKjLVxwPgqSvUe2S8Zo=";
const UNICODE_PW: &str = "pässwörd ✓ 密码";
/// `PBKDF2PasswordHasher().encode("", salt, 5000)`: Django hashes and
/// checks an empty password like any other.
const PBKDF2_EMPTY_PW: &str =
    "pbkdf2_sha256$5000$7n1OrwP2LZ2QWXjMrD0c3v$/BROOTSnEn3DmWWJQI//XIoHPpcQ8/29rPGJoUohSrs=";
/// `make_password(PW, hasher=h)`, h an Argon2PasswordHasher subclass
/// with time_cost 2, memory_cost 512, parallelism 2.
const ARGON2ID: &str = "argon2$argon2id$v=19$m=512,t=2,p=2$NGxuUXRISnNGcDBkbGlwQVlIdmRsWQ$\
    18E+1WsNoDp5+PJ60s9KgmqGoqMWL1AX1750OyrFeEk";
/// `"argon2" + argon2.low_level.hash_secret(PW, salt, time_cost=1,
/// memory_cost=64, parallelism=1, hash_len=32, type=I, version=19)`,
/// the string Django's hasher would store.
const ARGON2I: &str = "argon2$argon2i$v=19$m=64,t=1,p=1$VHM5a1F2MkxtWHI4V3ExWnA0TmI3Yw$\
    VtswTeW9Yl+Fa0xjgOqMjl6QVeV+M75CR/OGmcNIq8Q";
/// As above with type=D.
const ARGON2D: &str = "argon2$argon2d$v=19$m=64,t=1,p=1$VHM5a1F2MkxtWHI4V3ExWnA0TmI3Yw$\
    2dGhy02OaA3uMYxm3rFaWsQwQU3u5VrwLNDIq4NOGCk";
/// As ARGON2I with version=16.
const ARGON2I_V16: &str = "argon2$argon2i$v=16$m=64,t=1,p=1$VHM5a1F2MkxtWHI4V3ExWnA0TmI3Yw$\
    rGCiQoC/mUqUAqoutYdXKmKwnINw/J7ahmpjxTj5fzo";
/// ARGON2I_V16 with `v=16$` removed, the form of old argon2 hashes.
const ARGON2I_NO_VERSION: &str = "argon2$argon2i$m=64,t=1,p=1$VHM5a1F2MkxtWHI4V3ExWnA0TmI3Yw$\
    rGCiQoC/mUqUAqoutYdXKmKwnINw/J7ahmpjxTj5fzo";
/// `make_password(PW, hasher=h)`, h a BCryptSHA256PasswordHasher
/// subclass with rounds 4.
const BCRYPT_SHA256: &str =
    "bcrypt_sha256$$2b$04$WR1iUub3k2dhSne/zNftGuXXPhjCig3tseEa8cczqtpeQTfNSwmBS";
/// `make_password(PW, hasher=h)`, h a ScryptPasswordHasher subclass with
/// work_factor 2**10, block_size 8, parallelism 2.
const SCRYPT: &str = "scrypt$1024$luGPiYI6Pq27mw3TksNi31$8$2$FXuLrGHTo9GiWz9vfrrhDACFNQ5CZFrk\
    v8ZhD4kYPi4a7Pt4V/OaB3EroXWJl4kQO8e25rGrnRADAgrkYa10yQ==";
/// `make_password(None)`.
const UNUSABLE: &str = "!dYyhMHxFBvfLGxuHoQ9tMcDNHuiRZwTp4A52R1Jo";

/// Made by Botora's `make("Botora → Django ✓", 12000)`; Django 5.2.19's
/// `check_password` accepted it and refused the password plus "x".
const BOTORA_MADE: &str =
    "pbkdf2_sha256$12000$N5gsWD6mjcbo2t24TSDBzb$mGZv5Fej7iGWNp/tmv4NmVuMu1MZVA3wNxFY/KU12Hs=";
const BOTORA_PW: &str = "Botora → Django ✓";

/// Iteration count the fixtures treat as preferred unless they say otherwise.
const PREFERRED_TEST: u32 = 1_000;
const MATCH_OLD: Verdict = Verdict::Match { needs_rehash: true };
const MATCH_CURRENT: Verdict = Verdict::Match {
    needs_rehash: false,
};

/// Every cheap fixture with its password.
const FIXTURES: [(&str, &str); 13] = [
    (PW, PBKDF2_SHA256),
    (PW, PBKDF2_SHORT_SALT),
    (PW, PBKDF2_SHA1),
    (UNICODE_PW, PBKDF2_UNICODE),
    ("", PBKDF2_EMPTY_PW),
    (PW, ARGON2ID),
    (PW, ARGON2I),
    (PW, ARGON2D),
    (PW, ARGON2I_V16),
    (PW, ARGON2I_NO_VERSION),
    (PW, BCRYPT_SHA256),
    (PW, SCRYPT),
    (BOTORA_PW, BOTORA_MADE),
];

#[test]
fn every_format_matches_its_password_and_no_other() {
    for (password, encoded) in FIXTURES {
        let verdict = verify(password, encoded, PREFERRED_TEST);
        assert!(matches!(verdict, Verdict::Match { .. }), "{encoded}");
        assert_eq!(verify("wrong", encoded, PREFERRED_TEST), Verdict::Mismatch);
        assert_eq!(
            verify(&format!("{password} "), encoded, PREFERRED_TEST),
            Verdict::Mismatch
        );
    }
}

#[test]
fn pbkdf2_sha256_at_preferred_cost_needs_no_rehash() {
    assert_eq!(verify(PW, PBKDF2_SHA256, 12_000), MATCH_CURRENT);
    assert_eq!(verify(PW, PBKDF2_SHA256, 13_000), MATCH_OLD);
    assert_eq!(verify(PW, PBKDF2_SHA256, 11_000), MATCH_OLD);
}

#[test]
fn short_salt_needs_rehash_even_at_preferred_cost() {
    assert_eq!(verify(PW, PBKDF2_SHORT_SALT, 12_000), MATCH_OLD);
}

#[test]
fn other_hashers_always_need_rehash() {
    for (password, encoded) in FIXTURES {
        if !encoded.starts_with("pbkdf2_sha256$") {
            assert_eq!(verify(password, encoded, 10_000), MATCH_OLD, "{encoded}");
        }
    }
}

#[test]
fn make_round_trips_in_django_format() {
    let encoded = make(PW, 2_000);
    let [algorithm, iterations, salt, digest] =
        split_fields("test", &encoded).expect("four fields");
    assert_eq!((algorithm, iterations), ("pbkdf2_sha256", "2000"));
    assert_eq!(salt.len(), SALT_LEN);
    assert!(salt.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(STANDARD.decode(digest).expect("base64").len(), 32);
    assert_eq!(verify(PW, &encoded, 2_000), MATCH_CURRENT);
    assert_eq!(verify(PW, &encoded, 3_000), MATCH_OLD);
    assert_eq!(verify("wrong", &encoded, 2_000), Verdict::Mismatch);
}

#[test]
fn make_salts_differ() {
    assert_ne!(make(PW, 1), make(PW, 1));
}

#[test]
fn make_clamps_iterations() {
    assert!(make(PW, 0).starts_with("pbkdf2_sha256$1$"));
}

#[test]
fn passwords_over_the_limit_mismatch() {
    let longest = "x".repeat(MAX_PASSWORD_LEN);
    let encoded = make(&longest, 1);
    assert_eq!(verify(&longest, &encoded, 1), MATCH_CURRENT);

    let over = "x".repeat(MAX_PASSWORD_LEN + 1);
    let encoded = make(&over, 1);
    assert_eq!(verify(&over, &encoded, 1), Verdict::Mismatch);
}

#[test]
fn unusable_and_empty_hashes_mismatch() {
    for encoded in [UNUSABLE, "!", "", "$"] {
        assert_eq!(
            verify(PW, encoded, PREFERRED_TEST),
            Verdict::Mismatch,
            "{encoded:?}"
        );
        assert_eq!(
            verify("", encoded, PREFERRED_TEST),
            Verdict::Mismatch,
            "{encoded:?}"
        );
    }
}

#[test]
fn malformed_hashes_mismatch() {
    let truncated = &PBKDF2_SHA256[..PBKDF2_SHA256.len() - 5];
    let shouting = PBKDF2_SHA256.replacen("pbkdf2_sha256", "PBKDF2_SHA256", 1);
    let cases = [
        truncated,
        "pbkdf2_sha256",
        "pbkdf2_sha256$",
        "pbkdf2_sha256$12000$kPHmAktwnUnRtiaziKPZfw",
        "pbkdf2_sha256$12000$kPHmAktwnUnRtiaziKPZfw$@@@@",
        "pbkdf2_sha256$12000$kPHmAktwnUnRtiaziKPZfw$KPLiSMBZyq2QZQu1SBc2Hl3vGuxm8NjG",
        "pbkdf2_sha256$12000$$KPLiSMBZyq2QZQu1SBc2Hl3vGuxm8NjG/gRF1G0sk6U=",
        "pbkdf2_sha256$12000$kPHm$Akt$KPLiSMBZyq2QZQu1SBc2Hl3vGuxm8NjG/gRF1G0sk6U=",
        &shouting,
        "md5$kPHmAktwnUnRtiaziKPZfw$0123456789abcdef0123456789abcdef",
        "bcrypt$$2b$04$WR1iUub3k2dhSne/zNftGuXXPhjCig3tseEa8cczqtpeQTfNSwmBS",
        "plain text password",
        "argon2$argon2x$v=19$m=64,t=1,p=1$VHM5a1F2MkxtWHI4V3ExWnA0TmI3Yw$AAAA",
        "argon2$argon2i$v=18$m=64,t=1,p=1$VHM5a1F2MkxtWHI4V3ExWnA0TmI3Yw$\
         VtswTeW9Yl+Fa0xjgOqMjl6QVeV+M75CR/OGmcNIq8Q",
        "argon2$argon2i$v=19$t=1,m=64,p=1$VHM5a1F2MkxtWHI4V3ExWnA0TmI3Yw$\
         VtswTeW9Yl+Fa0xjgOqMjl6QVeV+M75CR/OGmcNIq8Q",
        "argon2$argon2i$v=19$m=64,t=1,p=1$VHM5a1F2MkxtWHI4V3ExWnA0TmI3Yw==$\
         VtswTeW9Yl+Fa0xjgOqMjl6QVeV+M75CR/OGmcNIq8Q",
        "argon2$argon2i$v=19$m=64,t=1$VHM5a1F2MkxtWHI4V3ExWnA0TmI3Yw$\
         VtswTeW9Yl+Fa0xjgOqMjl6QVeV+M75CR/OGmcNIq8Q",
        &BCRYPT_SHA256[..BCRYPT_SHA256.len() - 1],
        "bcrypt_sha256$2b$04$WR1iUub3k2dhSne/zNftGuXXPhjCig3tseEa8cczqtpeQTfNSwmBS",
        "bcrypt_sha256$$2q$04$WR1iUub3k2dhSne/zNftGuXXPhjCig3tseEa8cczqtpeQTfNSwmBS",
        "scrypt$luGPiYI6Pq27mw3TksNi31$1024$8$2$AAAA",
        "scrypt$1024$luGPiYI6Pq27mw3TksNi31$8$2$AAAA",
        "scrypt$1024$luGPiYI6Pq27mw3TksNi31$8$2",
    ];
    for encoded in cases {
        assert_eq!(
            verify(PW, encoded, PREFERRED_TEST),
            Verdict::Mismatch,
            "{encoded}"
        );
    }
}

#[test]
fn absurd_costs_mismatch_without_the_work() {
    let digest = "KPLiSMBZyq2QZQu1SBc2Hl3vGuxm8NjG/gRF1G0sk6U=";
    let salt = "VHM5a1F2MkxtWHI4V3ExWnA0TmI3Yw";
    let argon2_hash = "VtswTeW9Yl+Fa0xjgOqMjl6QVeV+M75CR/OGmcNIq8Q";
    let scrypt_hash = SCRYPT.rsplit('$').next().expect("hash field");
    let cases = [
        format!("pbkdf2_sha256$0$kPHmAktwnUnRtiaziKPZfw${digest}"),
        format!("pbkdf2_sha256$100000001$kPHmAktwnUnRtiaziKPZfw${digest}"),
        format!("pbkdf2_sha256$99999999999999999999999$kPHmAktwnUnRtiaziKPZfw${digest}"),
        format!("pbkdf2_sha256$+12000$kPHmAktwnUnRtiaziKPZfw${digest}"),
        format!("pbkdf2_sha256$-1$kPHmAktwnUnRtiaziKPZfw${digest}"),
        format!("argon2$argon2id$v=19$m=4294967295,t=1,p=1${salt}${argon2_hash}"),
        format!("argon2$argon2id$v=19$m=64,t=4000000000,p=1${salt}${argon2_hash}"),
        format!("argon2$argon2id$v=19$m=64,t=1,p=65${salt}${argon2_hash}"),
        format!("argon2$argon2id$v=19$m=0,t=1,p=1${salt}${argon2_hash}"),
        "bcrypt_sha256$$2b$31$WR1iUub3k2dhSne/zNftGuXXPhjCig3tseEa8cczqtpeQTfNSwmBS".into(),
        "bcrypt_sha256$$2b$17$WR1iUub3k2dhSne/zNftGuXXPhjCig3tseEa8cczqtpeQTfNSwmBS".into(),
        format!("scrypt$1000$luGPiYI6Pq27mw3TksNi31$8$2${scrypt_hash}"),
        format!("scrypt$1$luGPiYI6Pq27mw3TksNi31$8$2${scrypt_hash}"),
        format!("scrypt$1073741824$luGPiYI6Pq27mw3TksNi31$8$2${scrypt_hash}"),
        format!("scrypt$1048576$luGPiYI6Pq27mw3TksNi31$8$1${scrypt_hash}"),
        format!("scrypt$131072$luGPiYI6Pq27mw3TksNi31$8$64${scrypt_hash}"),
        format!("scrypt$1024$luGPiYI6Pq27mw3TksNi31$0$2${scrypt_hash}"),
        format!("scrypt$1024$luGPiYI6Pq27mw3TksNi31$8$4294967295${scrypt_hash}"),
    ];
    for encoded in &cases {
        let error = Stored::parse(encoded).err();
        assert!(error.is_some(), "{encoded} parsed");
        assert_eq!(
            verify(PW, encoded, PREFERRED_TEST),
            Verdict::Mismatch,
            "{encoded}"
        );
    }
}

#[test]
fn errors_name_the_offending_value() {
    let error = Stored::parse("pbkdf2_sha1$0$salt$AAAA")
        .err()
        .expect("refused");
    assert_eq!(
        error.to_string(),
        "pbkdf2_sha1 iterations of 0 is outside 1..=100000000"
    );
    let error = Stored::parse("plain text").err().expect("refused");
    assert!(!error.to_string().contains("plain"));
}

#[test]
fn bcrypt_sha256_input_is_lowercase_hex() {
    let hex = sha256_hex(b"abc");
    assert_eq!(
        hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn dummy_verify_takes_any_input() {
    dummy_verify("", 0);
    dummy_verify(&"y".repeat(MAX_PASSWORD_LEN * 2), 1);
}

// Django's default costs: pbkdf2_sha256 at 1,000,000 iterations,
// argon2id at m=102400,t=2,p=8, bcrypt at 12 rounds, scrypt at
// n=16384,r=8,p=5, all by `make_password(PW, hasher=...)`. The hashing
// crates are optimised even in test builds (`[profile.dev.package."*"]`
// in Cargo.toml), so checking them takes about 3 s in `cargo test`.
const DJANGO_DEFAULTS: [&str; 4] = [
    "pbkdf2_sha256$1000000$YavCtENJI2fetShnCr5l28$KkGTFUnSqx17naeAn3z5wgiswjJV/+A2KNwsRcILuL0=",
    "argon2$argon2id$v=19$m=102400,t=2,p=8$b3RFVnk4T21iOVpIVE9IWWpoa0NuVw$\
     uGhuHNUMXCXuJHYB1YAX1O8fxj2HIh91TadnbmW2fgM",
    "bcrypt_sha256$$2b$12$Aw88dOaZkgRkH98YimwsGeAEPGwA5xKtaQkChArUaaJf.7.w1fXBm",
    "scrypt$16384$0reUVMLAySEUVISi1poXg1$8$5$hvRLAUCQ+Zoyvt4e0akde2HC0oRZMwlxTGwjV4qT2GReS1gE\
     4o6jbQSEvDZep+lC18VRgMz3xaUQmKAt2MGI9A==",
];

#[test]
fn django_default_costs_verify() {
    let [pbkdf2, others @ ..] = DJANGO_DEFAULTS;
    assert_eq!(verify(PW, pbkdf2, 1_000_000), MATCH_CURRENT);
    assert_eq!(verify("wrong", pbkdf2, 1_000_000), Verdict::Mismatch);
    for encoded in others {
        assert_eq!(verify(PW, encoded, 1_000_000), MATCH_OLD, "{encoded}");
    }
}

/// Truncates `original` to `keep` characters and puts `with` at `at`.
fn damage(original: &str, keep: usize, at: usize, with: char) -> String {
    let chars = original.chars().take(keep).enumerate();
    chars.map(|(i, c)| if i == at { with } else { c }).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    // A damaged fixture never panics and never matches. The substitutes
    // hold no digit but 0, so no cost can grow past the fixture's own.
    #[test]
    fn damaged_hashes_mismatch(
        index in 0..FIXTURES.len(),
        keep in 0usize..200,
        at in 0usize..200,
        with in prop::sample::select(vec!['$', '=', ',', '!', '+', '/', '0', 'a', 'é']),
    ) {
        let (password, original) = FIXTURES[index];
        let damaged = damage(original, keep, at, with);
        let verdict = verify(password, &damaged, PREFERRED_TEST);
        if damaged == original {
            prop_assert_ne!(verdict, Verdict::Mismatch);
        } else {
            prop_assert_eq!(verdict, Verdict::Mismatch, "{}", damaged);
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(encoded in "\\PC{0,160}") {
        prop_assert_eq!(verify(PW, &encoded, PREFERRED_TEST), Verdict::Mismatch);
    }

    #[test]
    fn arbitrary_fields_never_panic(
        algorithm in "(pbkdf2_sha256|pbkdf2_sha1|argon2|bcrypt_sha256|scrypt)",
        fields in prop::collection::vec("[0-9]{0,3}|[a-z=,$+/]{0,40}", 0..7),
    ) {
        let encoded = format!("{algorithm}${}", fields.join("$"));
        prop_assert_eq!(verify(PW, &encoded, PREFERRED_TEST), Verdict::Mismatch);
    }
}
