//! Reading fields of a JSON body the way DRF serializers do, collecting
//! every field's errors into one `400 {"<field>": [...]}`.

use serde_json::{Map, Value, json};

use crate::http::ApiError;

/// Field errors gathered while reading a body.
#[derive(Default)]
pub struct Errors(Map<String, Value>);

impl Errors {
    /// Records `message` against `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        let entry = self.0.entry(field.to_owned()).or_insert_with(|| json!([]));
        if let Value::Array(messages) = entry {
            messages.push(Value::String(message.into()));
        }
    }

    /// `Ok` when nothing was recorded, else the `400`.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(ApiError::Validation {
                status: http::StatusCode::BAD_REQUEST,
                body: Value::Object(self.0),
            }),
        }
    }
}

/// Rules for one string field, as a DRF `CharField`.
pub struct Text {
    /// The field's name.
    pub name: &'static str,
    /// Missing is an error.
    pub required: bool,
    /// Most characters, after trimming.
    pub max_chars: usize,
    /// `""` is allowed.
    pub allow_blank: bool,
}

impl Text {
    /// Reads the field: `None` when absent (with an error if required) or
    /// invalid (with its error). Numbers become strings and whitespace is
    /// trimmed, as DRF does.
    pub fn read(&self, body: &Map<String, Value>, errors: &mut Errors) -> Option<String> {
        let text = match body.get(self.name) {
            None => {
                if self.required {
                    errors.add(self.name, "This field is required.");
                }
                return None;
            }
            Some(Value::Null) => return self.fail(errors, "This field may not be null."),
            Some(Value::String(text)) => text.trim().to_owned(),
            Some(Value::Number(number)) => number.to_string(),
            Some(_) => return self.fail(errors, "Not a valid string."),
        };
        if text.contains('\0') {
            return self.fail(errors, "Null characters are not allowed.");
        }
        if text.is_empty() && !self.allow_blank {
            return self.fail(errors, "This field may not be blank.");
        }
        if text.chars().count() > self.max_chars {
            let message = format!(
                "Ensure this field has no more than {} characters.",
                self.max_chars
            );
            return self.fail(errors, message);
        }
        Some(text)
    }

    fn fail(&self, errors: &mut Errors, message: impl Into<String>) -> Option<String> {
        errors.add(self.name, message);
        None
    }
}

/// Reads an optional boolean the way DRF's `BooleanField` does.
pub fn boolean(body: &Map<String, Value>, name: &str, errors: &mut Errors) -> Option<bool> {
    match body.get(name)? {
        Value::Bool(flag) => Some(*flag),
        Value::Number(n) if n.as_i64() == Some(1) => Some(true),
        Value::Number(n) if n.as_i64() == Some(0) => Some(false),
        Value::String(s) if ["true", "True", "1"].contains(&s.as_str()) => Some(true),
        Value::String(s) if ["false", "False", "0"].contains(&s.as_str()) => Some(false),
        _ => {
            errors.add(name, "Must be a valid boolean.");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TITLE: Text = Text {
        name: "title",
        required: true,
        max_chars: 5,
        allow_blank: false,
    };

    fn read(value: Value) -> (Option<String>, Result<(), ApiError>) {
        let mut errors = Errors::default();
        let body = value.as_object().unwrap().clone();
        let text = TITLE.read(&body, &mut errors);
        (text, errors.finish())
    }

    #[test]
    fn strings_follow_drf() {
        assert_eq!(read(json!({"title": " hi "})).0.as_deref(), Some("hi"));
        assert_eq!(read(json!({"title": 12})).0.as_deref(), Some("12"));
        for bad in [
            json!({}),
            json!({"title": ""}),
            json!({"title": null}),
            json!({"title": [1]}),
            json!({"title": "toolong"}),
        ] {
            let (text, result) = read(bad.clone());
            assert!(text.is_none() && result.is_err(), "{bad}");
        }
    }

    #[test]
    fn booleans_follow_drf() {
        let mut errors = Errors::default();
        let body = json!({"a": true, "b": "false", "c": "maybe"});
        let body = body.as_object().unwrap();
        assert_eq!(boolean(body, "a", &mut errors), Some(true));
        assert_eq!(boolean(body, "b", &mut errors), Some(false));
        assert_eq!(boolean(body, "c", &mut errors), None);
        assert_eq!(boolean(body, "d", &mut errors), None);
        assert!(errors.finish().is_err());
    }
}
