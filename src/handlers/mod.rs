//! The built-in handlers, one file per resource, and the dispatch from a
//! matched route and method to them.

pub mod fields;
mod me;
mod openapi;
pub mod pages;
mod posts;
mod tenants;
mod token;

use std::sync::Arc;

use http::{Method, Request};
use hyper::body::Incoming;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::auth::token::Claims;
use crate::auth::users::{self, User};
use crate::db::Query;

use crate::http::{ApiError, Response};
use crate::route::{Context, Route};

pub use openapi::DOCUMENT as OPENAPI_DOCUMENT;

/// Runs the handler of `route` for the request's method.
pub async fn dispatch(
    route: Route,
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    let method = request.method().clone();
    let read = method == Method::GET || method == Method::HEAD;
    match route {
        Route::Token if method == Method::POST => token::obtain(context, request).await,
        Route::TokenRefresh if method == Method::POST => token::refresh(context, request).await,
        Route::TokenVerify if method == Method::POST => token::verify(context, request).await,
        Route::Schema if read => Ok(openapi::serve()),
        Route::Me if read => me::me(context, request).await,
        Route::TenantInfo if read => me::tenant(context, request).await,
        Route::Posts if read => posts::list(context, request).await,
        Route::Posts if method == Method::POST => posts::create(context, request).await,
        Route::Post if read => posts::retrieve(context, request).await,
        Route::Post if method == Method::PUT => posts::update(context, request, false).await,
        Route::Post if method == Method::PATCH => posts::update(context, request, true).await,
        Route::Post if method == Method::DELETE => posts::delete(context, request).await,
        Route::Tenants if read => tenants::list(context, request).await,
        Route::Tenants if method == Method::POST => tenants::create(context, request).await,
        Route::TenantItem if read => tenants::retrieve(context, request).await,
        Route::TenantItem if method == Method::PATCH => tenants::update(context, request).await,
        Route::TenantItem if method == Method::DELETE => tenants::delete(context, request).await,
        Route::TenantDomains if method == Method::POST => {
            tenants::add_domain(context, request).await
        }
        Route::TenantDomain if method == Method::DELETE => {
            tenants::remove_domain(context, request).await
        }
        _ => Err(ApiError::MethodNotAllowed {
            method,
            allow: allowed(route),
        }),
    }
}

/// The `Allow` header of a route.
pub fn allowed(route: Route) -> &'static str {
    match route {
        Route::Token | Route::TokenRefresh | Route::TokenVerify => "POST",
        Route::Schema | Route::Me | Route::TenantInfo => "GET, HEAD",
        Route::Posts | Route::Tenants => "GET, POST, HEAD",
        Route::Post => "GET, PUT, PATCH, DELETE, HEAD",
        Route::TenantItem => "GET, PATCH, DELETE, HEAD",
        Route::TenantDomains => "POST",
        Route::TenantDomain => "DELETE",
    }
}

/// A scope on the request's schema, timing the pool checkout.
async fn scope(context: &Context<'_>) -> Result<crate::db::Scope, ApiError> {
    let started = std::time::Instant::now();
    let scope = crate::db::Scope::begin(&context.app.pool, context.target.schema()).await;
    let metrics = &context.app.metrics;
    metrics
        .pool_checkout
        .observe(started.elapsed().as_secs_f64());
    context.app.observe_pool();
    Ok(scope?)
}

/// Runs read-only `queries` in the request's schema (one round trip when
/// the connection is warm), timing the pool checkout.
async fn read(
    context: &Context<'_>,
    queries: &[crate::db::Query<'_>],
) -> Result<Vec<Vec<tokio_postgres::Row>>, ApiError> {
    let started = std::time::Instant::now();
    let rows = crate::db::read(&context.app.pool, context.target.schema(), queries).await;
    context
        .app
        .metrics
        .pool_checkout
        .observe(started.elapsed().as_secs_f64());
    Ok(rows?)
}

/// The bearer token's user, active, and a scope to work in.
async fn authenticated(
    context: &Context<'_>,
    headers: &http::HeaderMap,
) -> Result<(crate::db::Scope, std::sync::Arc<crate::auth::users::User>), ApiError> {
    let claims = crate::auth::bearer(context, headers)?;
    let scope = scope(context).await?;
    let user = crate::auth::user(context, &scope, &claims).await?;
    Ok((scope, user))
}

/// Runs `queries` in one read for the user of verified `claims`; the user
/// is looked up in the same round trip unless it is cached, and with no
/// queries and a cached user nothing reaches the database. Returns the
/// user, known to be active, and the rows of `queries`.
pub(super) async fn read_as_user(
    context: &Context<'_>,
    claims: &Claims,
    queries: &[Query<'_>],
) -> Result<(Arc<User>, Vec<Vec<Row>>), ApiError> {
    let id = crate::auth::claimed_id(claims)?;
    let schema = context.target.schema();
    let cached = context.app.users.peek(schema, id).await;
    let user_params: [&(dyn ToSql + Sync); 1] = [&id];
    let mut all = queries.to_vec();
    if cached.is_none() {
        all.push((users::BY_ID, &user_params));
    }

    let mut rows = match all.is_empty() {
        true => Vec::new(),
        false => read(context, &all).await?,
    };
    let user = match cached {
        Some(user) => user,
        None => {
            let found = rows.pop().unwrap_or_default();
            let user = found.first().map(User::from_row);
            context.app.users.remember(schema, id, user).await
        }
    };
    Ok((crate::auth::active(user)?, rows))
}

/// `error` (a bad page or id), unless the token's user is gone or inactive:
/// DRF checks the user before it looks at the query or the path.
pub(super) async fn refuse_after_user(
    context: &Context<'_>,
    claims: &Claims,
    error: ApiError,
) -> ApiError {
    match read_as_user(context, claims, &[]).await {
        Ok(_) => error,
        Err(refusal) => refusal,
    }
}

/// The request body as a JSON object, within the configured size limit.
async fn read_body(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let limit = context.settings.config.server.max_body_bytes;
    crate::http::body::read_object(request, limit).await
}
