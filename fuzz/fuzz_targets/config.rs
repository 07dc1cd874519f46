//! Fuzzes the config parser and validator with arbitrary TOML text.
//!
//! Invariants: it never panics, and every refusal names the line (1-based)
//! or the dotted key it is about, after the file name.
//!
//! The validator reads the PEM files a config names, so an input could
//! name a path; the seeds name only the repository's test fixtures.
//! `scripts/fuzz.sh` clears the `BOTORA_*` overrides before a run.

#![no_main]

use std::path::Path;

use botora::config::{self, ConfigError};
use libfuzzer_sys::fuzz_target;

const FILE: &str = "fuzz.toml";

fuzz_target!(|raw: &[u8]| {
    // The loader reads the file as UTF-8 and refuses anything else.
    let Ok(text) = std::str::from_utf8(raw) else {
        return;
    };
    if let Err(error) = config::parse(Path::new(FILE), text) {
        check_error(text, &error);
    }
});

fn check_error(text: &str, error: &ConfigError) {
    let message = error.to_string();
    assert!(message.starts_with(FILE), "{message:?} names no file");
    match error {
        ConfigError::Read { .. } => panic!("parsing text read a file: {message}"),
        ConfigError::Parse { line, .. } => {
            let lines = text.lines().count().max(1);
            assert!(
                (1..=lines + 1).contains(line),
                "line {line} of {lines} in {message:?} for {text:?}"
            );
        }
        ConfigError::Invalid { key, .. } => {
            assert!(!key.is_empty(), "{message:?} names no key for {text:?}");
        }
    }
}
