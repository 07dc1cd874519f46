//! Fuzzes request bodies and query strings: the JSON object parser, the
//! DRF-style field readers and the `?page=` parser.
//!
//! Each input is read twice: as a body (then through the field rules the
//! handlers use) and as a query string. Invariants: nothing panics, every
//! refusal is the `ApiError` the API documents for it, and a value read is
//! one its rule allows.

#![no_main]

use botora::handlers::fields::{self, Errors, Text};
use botora::handlers::pages::{Page, PageRequest};
use botora::http::ApiError;
use botora::http::body;
use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// The rules of the handlers' fields (posts, tokens, tenants, domains).
const RULES: [Text; 5] = [
    rule("title", true, 200),
    rule("body", true, usize::MAX),
    rule("schema_name", true, 63),
    rule("name", false, 100),
    rule("domain", true, 253),
];

/// Page sizes `api.page_size` may take (1 to 1000).
const SIZES: [u32; 3] = [1, 20, 1000];

/// Row counts, up to far more rows than a table holds.
const COUNTS: [i64; 6] = [0, 1, 20, 21, 1_000_000, 1 << 53];

const fn rule(name: &'static str, required: bool, max_chars: usize) -> Text {
    Text {
        name,
        required,
        max_chars,
        allow_blank: false,
    }
}

fuzz_target!(|raw: &[u8]| {
    match body::parse_object(raw) {
        Ok(object) => read_fields(&object),
        Err(error) => check_body_error(&error),
    }
    let query = String::from_utf8_lossy(raw);
    read_page(&query);
});

fn read_fields(object: &Map<String, Value>) {
    let mut errors = Errors::default();

    // Every value read obeys its rule, as DRF's CharField.
    for rule in &RULES {
        if let Some(text) = rule.read(object, &mut errors) {
            assert!(!text.is_empty() && !text.contains('\0'), "{text:?}");
            assert_eq!(text.trim(), text, "untrimmed {text:?}");
            assert!(text.chars().count() <= rule.max_chars, "{text:?}");
        }
    }
    let _ = fields::boolean(object, "on_trial", &mut errors);

    // Problems come back as one `400 {"field": ["message", ...]}`.
    if let Err(error) = errors.finish() {
        check_field_errors(&error);
    }
}

fn check_body_error(error: &ApiError) {
    match error {
        ApiError::JsonParse(_) => {}
        ApiError::Validation { body, .. } => {
            assert!(body.get("non_field_errors").is_some(), "{body}");
            check_field_errors(error);
        }
        other => panic!("a body was refused with {other:?}"),
    }
}

fn check_field_errors(error: &ApiError) {
    let ApiError::Validation { status, body } = error else {
        panic!("field errors came back as {error:?}");
    };
    assert_eq!(*status, StatusCode::BAD_REQUEST);
    let fields = body.as_object().expect("an object of fields");
    assert!(!fields.is_empty());
    for messages in fields.values() {
        let messages = messages.as_array().expect("a list of messages");
        assert!(!messages.is_empty() && messages.iter().all(Value::is_string));
    }
}

fn read_page(query: &str) {
    for size in SIZES {
        let page = match PageRequest::from_query(Some(query), size) {
            Ok(page) => page,
            Err(error) => return check_invalid_page(&error),
        };
        assert!(page.number >= 1);
        let offset = match page.offset() {
            Ok(offset) => offset,
            Err(error) => return check_invalid_page(&error),
        };
        assert!(offset >= 0);
        for count in COUNTS {
            match page.check(count) {
                Ok(()) => check_links(page, count),
                Err(error) => check_invalid_page(&error),
            }
        }
    }
}

fn check_links(page: PageRequest, count: i64) {
    let base = "http://acme.test/api/posts/";
    let links: Page<u8> = Page::new(page, count, base, Vec::new());
    let json = links.to_json();
    assert_eq!(json["count"], count);
    if let Some(next) = &links.next {
        assert_eq!(*next, format!("{base}?page={}", page.number + 1));
    }
    assert_eq!(links.previous.is_some(), page.number > 1);
}

fn check_invalid_page(error: &ApiError) {
    assert!(matches!(error, ApiError::InvalidPage), "{error:?}");
}
