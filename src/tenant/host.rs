//! Host normalisation: the one way a `Host` header, `:authority` or SNI name
//! becomes a lookup key.
//!
//! The key is lower-case, without the port, one trailing dot or a leading
//! `www.` (django-tenants strips `www.` too). Characters follow Django's
//! host validation: letters, digits, `-` and `.`, or a bracketed IPv6
//! literal.

use std::borrow::Cow;

/// Longest host name once the port and trailing dot are gone.
pub const MAX_HOST_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// Why a host was refused. Every variant becomes `400 bad_host`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadHost {
    /// No host at all.
    #[error("no host given")]
    Missing,
    /// The host was given more than once.
    #[error("host given more than once")]
    Repeated,
    /// Longer than [`MAX_HOST_LEN`].
    #[error("host is {0} characters long, over {MAX_HOST_LEN}")]
    TooLong(usize),
    /// A character outside the allowed set, or not UTF-8.
    #[error("host has a character that is not allowed")]
    BadCharacter,
    /// Two dots in a row, a leading dot, or a label over 63 characters.
    #[error("host has an empty or over-long label")]
    BadLabel,
    /// A port that is empty, not a number, or over 65535.
    #[error("host has a bad port")]
    BadPort,
}

/// Normalises `raw` into the tenant lookup key.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, BadHost> {
    let (name, port) = split_port(raw)?;
    if let Some(port) = port {
        check_port(port)?;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > MAX_HOST_LEN {
        return Err(BadHost::TooLong(name.len()));
    }
    if name.starts_with('[') {
        check_ipv6(name)?;
    } else {
        check_labels(name)?;
    }
    let name = strip_www(name);
    Ok(if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    })
}

/// Normalises the bytes of a header value (which need not be UTF-8).
pub fn normalize_bytes(raw: &[u8]) -> Result<Cow<'_, str>, BadHost> {
    let text = std::str::from_utf8(raw).map_err(|_| BadHost::BadCharacter)?;
    normalize(text)
}

fn split_port(raw: &str) -> Result<(&str, Option<&str>), BadHost> {
    if raw.is_empty() {
        return Err(BadHost::Missing);
    }
    if raw.starts_with('[') {
        let close = raw.find(']').ok_or(BadHost::BadCharacter)?;
        let (name, rest) = raw.split_at(close + 1);
        return match rest {
            "" => Ok((name, None)),
            _ => rest
                .strip_prefix(':')
                .map(|p| (name, Some(p)))
                .ok_or(BadHost::BadPort),
        };
    }
    Ok(match raw.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (raw, None),
    })
}

fn check_port(port: &str) -> Result<(), BadHost> {
    let digits_only =
        !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    match digits_only && port.parse::<u32>().is_ok_and(|p| p <= 65_535) {
        true => Ok(()),
        false => Err(BadHost::BadPort),
    }
}

fn check_labels(name: &str) -> Result<(), BadHost> {
    if name.is_empty() {
        return Err(BadHost::Missing);
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(BadHost::BadLabel);
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(BadHost::BadCharacter);
        }
    }
    Ok(())
}

fn check_ipv6(name: &str) -> Result<(), BadHost> {
    let inner = &name[1..name.len() - 1];
    let allowed = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
    match inner.contains(':') && inner.bytes().all(allowed) {
        true => Ok(()),
        false => Err(BadHost::BadCharacter),
    }
}

fn strip_www(name: &str) -> &str {
    match name.get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case("www.") && name.len() > 4 => &name[4..],
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(raw: &str) -> String {
        normalize(raw).unwrap().into_owned()
    }

    #[test]
    fn strips_port_dot_www_and_case() {
        assert_eq!(ok("Acme.Example.COM"), "acme.example.com");
        assert_eq!(ok("acme.example.com:8000"), "acme.example.com");
        assert_eq!(ok("acme.example.com."), "acme.example.com");
        assert_eq!(ok("www.acme.example.com.:443"), "acme.example.com");
        assert_eq!(ok("WWW.acme.test"), "acme.test");
        assert_eq!(ok("localhost"), "localhost");
        assert_eq!(ok("127.0.0.1:8000"), "127.0.0.1");
        assert_eq!(ok("[::1]:8000"), "[::1]");
    }

    #[test]
    fn only_one_trailing_dot_is_removed() {
        assert_eq!(normalize("acme.test.."), Err(BadHost::BadLabel));
    }

    /// Found by `fuzz/` (target `host`): django-tenants strips `www.` once,
    /// so a doubled prefix keeps one and the key is not a fixed point.
    #[test]
    fn only_one_leading_www_is_stripped() {
        assert_eq!(ok("wWw.wWw.w"), "www.w");
        assert_eq!(ok("www.w"), "w");
    }

    #[test]
    fn refuses_malformed_hosts() {
        assert_eq!(normalize(""), Err(BadHost::Missing));
        assert_eq!(normalize(":80"), Err(BadHost::Missing));
        assert_eq!(normalize("a..b"), Err(BadHost::BadLabel));
        assert_eq!(normalize(".a.b"), Err(BadHost::BadLabel));
        assert_eq!(normalize("a b.test"), Err(BadHost::BadCharacter));
        assert_eq!(normalize("a_b.test"), Err(BadHost::BadCharacter));
        assert_eq!(normalize("evil.test/../x"), Err(BadHost::BadCharacter));
        assert_eq!(normalize("acme.test:"), Err(BadHost::BadPort));
        assert_eq!(normalize("acme.test:99999"), Err(BadHost::BadPort));
        assert_eq!(normalize("acme.test:8o"), Err(BadHost::BadPort));
        assert_eq!(normalize("a:b:c"), Err(BadHost::BadPort));
        assert_eq!(normalize("[::1"), Err(BadHost::BadCharacter));
        assert_eq!(normalize("[zz]"), Err(BadHost::BadCharacter));
        assert_eq!(normalize_bytes(b"\xff.test"), Err(BadHost::BadCharacter));
    }

    #[test]
    fn length_is_counted_after_port_and_dot() {
        let label = "a".repeat(63);
        let host = format!("{label}.{label}.{label}.{}", "b".repeat(61));
        assert_eq!(host.len(), 253);
        assert!(normalize(&format!("{host}.:8080")).is_ok());
        let long = format!("{host}c");
        assert_eq!(normalize(&long), Err(BadHost::TooLong(254)));
        assert_eq!(
            normalize(&format!("{}.test", "a".repeat(64))),
            Err(BadHost::BadLabel)
        );
    }

    proptest! {
        #[test]
        fn never_panics(raw in "\\PC{0,300}") {
            let _ = normalize(&raw);
        }

        #[test]
        fn idempotent(raw in "[a-zA-Z0-9.:\\-\\[\\]]{0,80}") {
            if let Ok(once) = normalize(&raw) {
                let once = once.into_owned();
                let twice = normalize(&once).map(Cow::into_owned);
                // Stripping `www.` twice is the one allowed difference.
                if !once.starts_with("www.") {
                    prop_assert_eq!(twice, Ok(once));
                }
            }
        }
    }
}
