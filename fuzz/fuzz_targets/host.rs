//! Fuzzes the host normaliser with arbitrary `Host` header bytes.
//!
//! Invariants: it never panics, and a key it returns is lower-case, has no
//! port and no trailing dot, is at most 253 characters long, and normalises
//! to itself. The one exception is django-tenants' own: `www.` is stripped
//! once, so only a name that began with it twice keeps one, and that key
//! normalises to itself less `www.`.

#![no_main]

use botora::tenant::host::{self, MAX_HOST_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    let Ok(key) = host::normalize_bytes(raw) else {
        return;
    };
    check_key(raw, &key);
});

fn check_key(raw: &[u8], key: &str) {
    let shown = String::from_utf8_lossy(raw);

    // The shape of a lookup key.
    assert!(!key.is_empty(), "{shown:?} gave an empty key");
    assert!(key.len() <= MAX_HOST_LEN, "{shown:?} gave {key:?}");
    assert!(!key.bytes().any(|b| b.is_ascii_uppercase()), "{key:?}");
    assert!(!key.ends_with('.'), "{shown:?} gave {key:?}");
    assert!(!has_port(key), "{shown:?} kept a port: {key:?}");

    // A key is already normal, unless `www.` was doubled.
    let again = host::normalize(key);
    match key.strip_prefix("www.") {
        Some(rest) => {
            assert!(doubled_www(raw), "{shown:?} kept www.: {key:?}");
            assert_eq!(again.as_deref(), Ok(rest), "{shown:?} then {key:?}");
        }
        None => assert_eq!(again.as_deref(), Ok(key), "{shown:?} then {key:?}"),
    }
}

fn doubled_www(raw: &[u8]) -> bool {
    raw.get(..8)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"www.www."))
}

/// A port follows the last `:` of a name, or the `]` of an IPv6 literal.
fn has_port(key: &str) -> bool {
    match key.strip_prefix('[') {
        Some(literal) => !literal.ends_with(']'),
        None => key.contains(':'),
    }
}
