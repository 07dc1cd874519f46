//! `/api/me/` and `/api/tenant/`: who the caller is, and which tenant.

use chrono::{DateTime, Utc};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;

use super::posts::rfc3339;
use super::{authenticated, read_as_user};
use crate::http::{ApiError, Response, json_response};
use crate::route::{Context, Target};
use crate::tenant::store::{self, Domain};

#[derive(Serialize)]
struct Me<'a> {
    id: i64,
    username: &'a str,
    email: &'a str,
    first_name: &'a str,
    last_name: &'a str,
    is_staff: bool,
    #[serde(serialize_with = "rfc3339")]
    date_joined: DateTime<Utc>,
}

/// `GET /api/me/`
pub(super) async fn me(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    let claims = crate::auth::bearer(context, request.headers())?;
    let (user, _) = read_as_user(context, &claims, &[]).await?;
    let me = Me {
        id: user.id,
        username: &user.username,
        email: &user.email,
        first_name: &user.first_name,
        last_name: &user.last_name,
        is_staff: user.is_staff,
        date_joined: user.date_joined,
    };
    Ok(json_response(StatusCode::OK, &me))
}

#[derive(Serialize)]
struct TenantView<'a> {
    schema_name: &'a str,
    name: &'a str,
    paid_until: Option<chrono::NaiveDate>,
    on_trial: bool,
    created_on: chrono::NaiveDate,
    domains: Vec<Domain>,
}

/// `GET /api/tenant/`
pub(super) async fn tenant(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    let Target::Tenant(tenant) = &context.target else {
        return Err(ApiError::NotFound);
    };
    let (scope, _user) = authenticated(context, request.headers()).await?;
    let domains = store::domains_of(scope.client(), tenant.id)
        .await
        .map_err(super::tenants::store_error)?;
    scope.commit().await?;
    let view = TenantView {
        schema_name: &tenant.schema_name,
        name: &tenant.name,
        paid_until: tenant.paid_until,
        on_trial: tenant.on_trial,
        created_on: tenant.created_on,
        domains,
    };
    Ok(json_response(StatusCode::OK, &view))
}
