//! Request bodies and query strings: size-limited reads and DRF-style
//! parse errors.

use bytes::Bytes;
use http::header;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use super::ApiError;

/// Reads the whole body, refusing it with `413` once it passes `limit`
/// bytes: at once when `Content-Length` says so, else as chunks arrive.
pub async fn read(request: http::Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let collected = Limited::new(request.into_body(), limit).collect().await;
    match collected {
        Ok(body) => Ok(body.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::PayloadTooLarge(limit))
        }
        Err(error) => Err(ApiError::JsonParse(format!(
            "body could not be read: {error}"
        ))),
    }
}

/// Reads the body as a JSON object. Not JSON is `400 JSON parse error`;
/// JSON that is not an object is a DRF `non_field_errors` `400`.
pub async fn read_object(
    request: http::Request<Incoming>,
    limit: usize,
) -> Result<Map<String, Value>, ApiError> {
    let bytes = read(request, limit).await?;
    parse_object(&bytes)
}

/// Parses `bytes` as a JSON object (see [`read_object`]).
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::JsonParse(e.to_string()))?;
    match value {
        Value::Object(map) => Ok(map),
        other => {
            let kind = match other {
                Value::Array(_) => "list",
                Value::String(_) => "str",
                Value::Number(_) => "number",
                Value::Bool(_) => "bool",
                _ => "null",
            };
            let message = format!("Invalid data. Expected a dictionary, but got {kind}.");
            Err(ApiError::field("non_field_errors", message))
        }
    }
}

/// The value of `name` in a query string, percent-decoded. When the name
/// repeats, the last one counts, as Django's `QueryDict` reads it.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    let query = query?;
    form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == name)
        .last()
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_of_a_repeated_parameter_counts() {
        assert_eq!(
            query_param(Some("page=&page=x"), "page").as_deref(),
            Some("x")
        );
        assert_eq!(
            query_param(Some("a=1&page=2"), "page").as_deref(),
            Some("2")
        );
        assert_eq!(query_param(Some("a=1"), "page"), None);
        assert_eq!(query_param(None, "page"), None);
    }

    #[test]
    fn objects_parse_and_others_are_refused() {
        assert!(parse_object(br#"{"a": 1}"#).is_ok());
        assert!(matches!(
            parse_object(b"{nope"),
            Err(ApiError::JsonParse(_))
        ));
        assert!(matches!(parse_object(b""), Err(ApiError::JsonParse(_))));
        let list = parse_object(b"[1]").unwrap_err();
        assert!(matches!(list, ApiError::Validation { .. }));
    }

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(
            query_param(Some("page=2&x=1"), "page").as_deref(),
            Some("2")
        );
        assert_eq!(
            query_param(Some("keep_schema=tr%75e"), "keep_schema").as_deref(),
            Some("true")
        );
        assert_eq!(query_param(None, "page"), None);
    }
}
