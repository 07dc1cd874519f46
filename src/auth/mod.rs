//! Authentication: Django password hashes, simplejwt-compatible tokens
//! bound to a tenant, and the `Authorization: Bearer` check of protected
//! routes.

pub mod hashing;
pub mod password;
pub mod token;
pub mod users;

use std::sync::Arc;

use http::HeaderMap;
use serde_json::json;

use crate::db::Scope;
use crate::http::ApiError;
use crate::route::Context;
use token::{Claims, TokenError, TokenType};
use users::User;

/// Seconds since the Unix epoch, the clock tokens are checked against.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The verified access token of a request, before the user is looked up.
/// Costs no database round trip.
pub fn bearer(context: &Context<'_>, headers: &HeaderMap) -> Result<Claims, ApiError> {
    let token = bearer_token(headers)?;
    verify(context, token, Some(TokenType::Access)).map_err(|error| access_token_error(&error))
}

/// Verifies `token` for this request's host: signature, times, the
/// `wanted` type (any when `None`) and the tenant it is bound to. Each
/// failure is counted by reason.
pub fn verify(
    context: &Context<'_>,
    token: &str,
    wanted: Option<TokenType>,
) -> Result<Claims, TokenError> {
    let settings = context.settings;
    let auth = &settings.config.auth;
    let checked = settings
        .keys
        .decode(token, now(), auth.leeway.as_secs())
        .and_then(|claims| match wanted {
            Some(kind) => token::check_type(&claims, kind).map(|()| claims),
            None => Ok(claims),
        })
        .and_then(|claims| {
            token::check_binding(&claims, context.target.schema(), auth.accept_unbound_tokens)?;
            Ok(claims)
        });
    if let Err(error) = &checked {
        let failures = &context.app.metrics.token_failures;
        failures.with_label_values(&[error.reason()]).inc();
    }
    checked
}

/// The token of an `Authorization: Bearer <token>` header, as simplejwt
/// reads it: another scheme counts as no credentials; a Bearer header that
/// is not exactly two parts is `bad_authorization_header`. Two
/// `Authorization` headers are one bad header, as Django sees them joined.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::NotAuthenticated);
    };
    if values.next().is_some() {
        return Err(bad_header());
    }
    let Ok(text) = value.to_str() else {
        return Err(bad_header());
    };
    let mut parts = text.split_ascii_whitespace();
    if parts.next() != Some("Bearer") {
        return Err(ApiError::NotAuthenticated);
    }
    match (parts.next(), parts.next()) {
        (Some(token), None) => Ok(token),
        _ => Err(bad_header()),
    }
}

fn bad_header() -> ApiError {
    ApiError::unauthorized(
        "Authorization header must contain two space-delimited values",
        "bad_authorization_header",
    )
}

/// simplejwt's body for an access token that did not verify.
fn access_token_error(error: &TokenError) -> ApiError {
    ApiError::Unauthorized(json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{
            "token_class": "AccessToken",
            "token_type": "access",
            "message": error.to_string(),
        }],
    }))
}

fn user_not_found() -> ApiError {
    ApiError::unauthorized("User not found", "user_not_found")
}

/// The user id a verified token claims.
pub fn claimed_id(claims: &Claims) -> Result<i64, ApiError> {
    claims.user_id.parse().map_err(|_| user_not_found())
}

/// The user a verified token names, who must still exist and be active.
pub async fn user(
    context: &Context<'_>,
    scope: &Scope,
    claims: &Claims,
) -> Result<Arc<User>, ApiError> {
    let id = claimed_id(claims)?;
    let schema = context.target.schema();
    active(context.app.users.get(scope, schema, id).await?)
}

/// Refuses a user that is gone or inactive.
pub fn active(user: Option<Arc<User>>) -> Result<Arc<User>, ApiError> {
    let user = user.ok_or_else(user_not_found)?;
    match user.is_active {
        true => Ok(user),
        false => Err(ApiError::unauthorized("User is inactive", "user_inactive")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    fn code_of(error: ApiError) -> String {
        match error {
            ApiError::Unauthorized(body) => body["code"].as_str().unwrap_or("").to_owned(),
            ApiError::NotAuthenticated => "not_authenticated".into(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bearer_header_forms() {
        assert_eq!(bearer_token(&headers("Bearer abc")).unwrap(), "abc");
        assert_eq!(
            code_of(bearer_token(&HeaderMap::new()).unwrap_err()),
            "not_authenticated"
        );
        assert_eq!(
            code_of(bearer_token(&headers("Basic abc")).unwrap_err()),
            "not_authenticated"
        );
        assert_eq!(
            code_of(bearer_token(&headers("Bearer")).unwrap_err()),
            "bad_authorization_header"
        );
        assert_eq!(
            code_of(bearer_token(&headers("Bearer a b")).unwrap_err()),
            "bad_authorization_header"
        );
        let mut twice = headers("Bearer abc");
        twice.append(http::header::AUTHORIZATION, "Bearer def".parse().unwrap());
        assert_eq!(
            code_of(bearer_token(&twice).unwrap_err()),
            "bad_authorization_header"
        );
    }
}
