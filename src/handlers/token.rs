//! `/api/token/`, `/api/token/refresh/` and `/api/token/verify/`, with
//! simplejwt 5.5's bodies. Tokens carry the tenant's schema and are refused
//! on every other host.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use super::fields::{Errors, Text};
use super::{read_body, scope};
use crate::auth::password::{self, Verdict};
use crate::auth::token::{Claims, TokenError, TokenType};
use crate::auth::{now, users};
use crate::http::{ApiError, Response, json_response};
use crate::route::Context;

/// Longest password looked at; longer ones fail without hashing.
const MAX_PASSWORD_BYTES: usize = 4096;

fn no_active_account() -> ApiError {
    ApiError::unauthorized(
        "No active account found with the given credentials",
        "no_active_account",
    )
}

/// A required string field as simplejwt's serializers read it. They are
/// DRF `CharField`s (its `PasswordField` too), so numbers become strings
/// and surrounding whitespace is trimmed.
const fn required(name: &'static str) -> Text {
    Text {
        name,
        required: true,
        max_chars: usize::MAX,
        allow_blank: false,
    }
}

/// `POST /api/token/`: username and password for a refresh and an access
/// token.
pub(super) async fn obtain(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    let body = read_body(context, request).await?;
    let mut errors = Errors::default();
    let username = required("username").read(&body, &mut errors);
    let password = required("password").read(&body, &mut errors);
    errors.finish()?;
    let (Some(username), Some(password)) = (username, password) else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };

    // The user row; the connection goes back before the slow hashing.
    let lookup = scope(context).await?;
    let found = users::by_username(&lookup, &username).await?;
    lookup.commit().await?;

    // Hash off the async workers; unknown users cost the same.
    let auth = &context.settings.config.auth;
    let iterations = auth.password_iterations;
    let stored = found.as_ref().map(|c| c.password.clone());
    let job = move || check_password(&password, stored.as_deref(), iterations);
    let checked = context.app.hasher.run(auth.hash_queue_timeout, job).await;
    let (verdict, upgrade) = checked.map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let user = match (verdict, found) {
        (Verdict::Match { .. }, Some(found)) if found.user.is_active => found.user,
        _ => return Err(no_active_account()),
    };

    // As Django does, store an outdated hash again in the preferred form.
    if let Some(encoded) = upgrade {
        let rewrite = scope(context).await?;
        users::set_password(&rewrite, user.id, &encoded).await?;
        rewrite.commit().await?;
    }
    let user_id = user.id.to_string();
    let refresh = mint(context, TokenType::Refresh, &user_id)?;
    let access = mint(context, TokenType::Access, &user_id)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "refresh": refresh, "access": access }),
    ))
}

/// Verifies `password` against `stored` (a dummy hash when there is no
/// user); returns the verdict and, when the hash is outdated, a new one.
fn check_password(
    password: &str,
    stored: Option<&str>,
    iterations: u32,
) -> (Verdict, Option<String>) {
    let Some(stored) = stored.filter(|_| password.len() <= MAX_PASSWORD_BYTES) else {
        password::dummy_verify(password, iterations);
        return (Verdict::Mismatch, None);
    };
    let verdict = password::verify(password, stored, iterations);
    let upgrade = match verdict {
        Verdict::Match { needs_rehash: true } => Some(password::make(password, iterations)),
        _ => None,
    };
    (verdict, upgrade)
}

fn mint(context: &Context<'_>, kind: TokenType, user_id: &str) -> Result<String, ApiError> {
    let auth = &context.settings.config.auth;
    let lifetime = match kind {
        TokenType::Access => auth.access_lifetime,
        TokenType::Refresh => auth.refresh_lifetime,
    };
    let schema = context.target.schema();
    context
        .settings
        .keys
        .mint(kind, user_id, schema, lifetime, now())
        .map_err(|e| ApiError::Internal(format!("cannot sign a token: {e}")))
}

/// A token from the body, verified and bound to this host's tenant.
fn decode_body_token(
    context: &Context<'_>,
    body: &Map<String, Value>,
    field: &'static str,
    wanted: Option<TokenType>,
) -> Result<Claims, ApiError> {
    let mut errors = Errors::default();
    let raw = required(field).read(body, &mut errors);
    errors.finish()?;
    let raw = raw.unwrap_or_default();
    crate::auth::verify(context, &raw, wanted).map_err(|error| {
        let detail = match error {
            TokenError::Expired => "Token is expired",
            _ => "Token is invalid",
        };
        ApiError::unauthorized(detail, "token_not_valid")
    })
}

/// `POST /api/token/refresh/`: a refresh token for a new access token
/// (and a new refresh token when rotation is on).
pub(super) async fn refresh(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    let body = read_body(context, request).await?;
    let claims = decode_body_token(context, &body, "refresh", Some(TokenType::Refresh))?;

    // The user must still exist and be active.
    let gone = || {
        let detail = "No active account found for the given token.";
        ApiError::unauthorized(detail, "no_active_account")
    };
    let id: i64 = claims.user_id.parse().map_err(|_| gone())?;
    let lookup = scope(context).await?;
    let user = users::by_id(&lookup, id).await?;
    lookup.commit().await?;
    if !user.is_some_and(|user| user.is_active) {
        return Err(gone());
    }

    let mut answer = Map::new();
    let access = mint(context, TokenType::Access, &claims.user_id)?;
    answer.insert("access".into(), Value::String(access));
    if context.settings.config.auth.rotate_refresh_tokens {
        let refresh = mint(context, TokenType::Refresh, &claims.user_id)?;
        answer.insert("refresh".into(), Value::String(refresh));
    }
    Ok(json_response(StatusCode::OK, &answer))
}

/// `POST /api/token/verify/`: `200 {}` for a valid token of this tenant.
pub(super) async fn verify(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    let body = read_body(context, request).await?;
    decode_body_token(context, &body, "token", None)?;
    Ok(json_response(StatusCode::OK, &json!({})))
}
