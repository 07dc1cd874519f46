//! Tenant schema names: the rules for names Botora creates, and the one
//! place a name becomes SQL (always as a quoted identifier).

/// Names no tenant may take, whatever the config says.
const BUILT_IN_RESERVED: [&str; 2] = ["public", "information_schema"];

/// Why a schema name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSchema {
    /// Empty, over 63 characters, or outside `^[a-z_][a-z0-9_]*$`.
    #[error("must match ^[a-z_][a-z0-9_]{{0,62}}$")]
    Pattern,
    /// Starts with `pg_`, which PostgreSQL keeps for itself.
    #[error("must not start with pg_")]
    SystemPrefix,
    /// `public`, `information_schema` or a name reserved in config.
    #[error("{0:?} is reserved")]
    Reserved(String),
}

/// Checks a name for a schema Botora is about to create.
pub fn validate_new(name: &str, reserved: &[String]) -> Result<(), BadSchema> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !first_ok || !rest_ok || name.len() > 63 {
        return Err(BadSchema::Pattern);
    }
    if name.starts_with("pg_") {
        return Err(BadSchema::SystemPrefix);
    }
    let is_reserved = BUILT_IN_RESERVED.contains(&name) || reserved.iter().any(|r| r == name);
    match is_reserved {
        true => Err(BadSchema::Reserved(name.to_owned())),
        false => Ok(()),
    }
}

/// `name` as a quoted SQL identifier: `"name"`, inner quotes doubled.
/// Used for DDL, where PostgreSQL takes no parameters.
pub fn quote_ident(name: &str) -> String {
    postgres_protocol::escape::escape_identifier(name)
}

/// The `search_path` value that scopes a connection to `schema`: the
/// schema (quoted, so any name django-tenants allows is safe) then `public`.
pub fn search_path(schema: &str) -> String {
    format!("{}, public", quote_ident(schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for name in ["acme", "_x", "a1_b2", &"a".repeat(63)] {
            assert_eq!(validate_new(name, &[]), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_hostile_and_reserved_names() {
        let reserved = vec!["admin".to_owned()];
        let cases = [
            ("", BadSchema::Pattern),
            ("Acme", BadSchema::Pattern),
            ("1acme", BadSchema::Pattern),
            ("acme-corp", BadSchema::Pattern),
            ("a\"; DROP SCHEMA public; --", BadSchema::Pattern),
            ("acme\0", BadSchema::Pattern),
            ("ácme", BadSchema::Pattern),
            (&"a".repeat(64), BadSchema::Pattern),
            ("pg_catalog", BadSchema::SystemPrefix),
            ("public", BadSchema::Reserved("public".into())),
            (
                "information_schema",
                BadSchema::Reserved("information_schema".into()),
            ),
            ("admin", BadSchema::Reserved("admin".into())),
        ];
        for (name, expected) in cases {
            assert_eq!(validate_new(name, &reserved), Err(expected), "{name:?}");
        }
    }

    #[test]
    fn quoting_neutralises_any_name() {
        assert_eq!(quote_ident("acme"), "\"acme\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(search_path("Mixed Case"), "\"Mixed Case\", public");
    }
}
