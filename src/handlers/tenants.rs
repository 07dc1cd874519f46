//! The operators' API on public hosts: tenants and their domains, for
//! superusers of the public schema only.

use chrono::{Datelike, NaiveDate};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use super::fields::{self, Errors, Text};
use super::pages::{Page, PageRequest};
use super::{authenticated, read_body};
use crate::http::body::query_param;
use crate::http::{ApiError, Response, empty_response, json_response};
use crate::route::Context;
use crate::tenant::store::{self, NewTenant, StoreError, TenantPatch};

/// The one mapping from store failures to responses.
pub(super) fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Invalid { field, message } => ApiError::field(field, message),
        StoreError::Taken { field, message } => ApiError::Validation {
            status: StatusCode::CONFLICT,
            body: json!({ field: [message] }),
        },
        StoreError::NotFound => ApiError::NotFound,
        StoreError::Db(error) => error.into(),
        StoreError::Migrate(error) => ApiError::Internal(error.to_string()),
    }
}

/// Only superusers of the public schema get past this.
async fn require_superuser(
    context: &Context<'_>,
    request: &Request<Incoming>,
) -> Result<(), ApiError> {
    let (scope, user) = authenticated(context, request.headers()).await?;
    scope.commit().await?;
    match user.is_superuser {
        true => Ok(()),
        false => Err(ApiError::PermissionDenied),
    }
}

fn schema_param<'a>(context: &'a Context<'_>) -> &'a str {
    context.params.get("schema").unwrap_or_default()
}

/// `GET /api/tenants/?page=N`
pub(super) async fn list(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    // Who asks comes first, as in DRF: a stranger learns nothing of pages.
    require_superuser(context, &request).await?;
    let page =
        PageRequest::from_query(request.uri().query(), context.settings.config.api.page_size)?;
    let (count, tenants) = store::list(&context.app.pool, page.offset()?, page.size)
        .await
        .map_err(store_error)?;
    page.check(count)?;
    let base = format!("{}{}", context.origin, request.uri().path());
    Ok(json_response(
        StatusCode::OK,
        &Page::new(page, count, &base, tenants).to_json(),
    ))
}

/// `GET /api/tenants/{schema}/`
pub(super) async fn retrieve(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    require_superuser(context, &request).await?;
    let info = store::get(&context.app.pool, schema_param(context))
        .await
        .map_err(store_error)?;
    Ok(json_response(StatusCode::OK, &info))
}

/// `POST /api/tenants/`: schema, tables, row and domains, all or nothing.
pub(super) async fn create(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    require_superuser(context, &request).await?;
    let body = read_body(context, request).await?;
    let new = read_new_tenant(&body)?;
    let info = store::create(&context.app.pool, &new, &context.settings.rules)
        .await
        .map_err(store_error)?;
    for domain in &info.domains {
        context.app.resolver.domain_added(&domain.domain).await;
    }
    Ok(json_response(StatusCode::CREATED, &info))
}

fn read_new_tenant(body: &Map<String, Value>) -> Result<NewTenant, ApiError> {
    let mut errors = Errors::default();
    let schema_rule = Text {
        name: "schema_name",
        required: true,
        max_chars: 63,
        allow_blank: false,
    };
    let name_rule = Text {
        name: "name",
        required: true,
        max_chars: 100,
        allow_blank: false,
    };
    let schema_name = schema_rule.read(body, &mut errors);
    let name = name_rule.read(body, &mut errors);
    let paid_until = date(body, &mut errors).flatten();
    let on_trial = fields::boolean(body, "on_trial", &mut errors).unwrap_or(false);
    let domains = domain_list(body, &mut errors);
    errors.finish()?;
    Ok(NewTenant {
        schema_name: schema_name.unwrap_or_default(),
        name: name.unwrap_or_default(),
        paid_until,
        on_trial,
        domains,
    })
}

/// `paid_until`: absent is `None`, null is `Some(None)`.
fn date(body: &Map<String, Value>, errors: &mut Errors) -> Option<Option<NaiveDate>> {
    match body.get("paid_until")? {
        Value::Null => Some(None),
        Value::String(text) => match parse_day(text) {
            Some(day) => Some(Some(day)),
            None => {
                errors.add(
                    "paid_until",
                    "Date has wrong format. Use one of these formats instead: YYYY-MM-DD.",
                );
                None
            }
        },
        _ => {
            errors.add(
                "paid_until",
                "Date has wrong format. Use one of these formats instead: YYYY-MM-DD.",
            );
            None
        }
    }
}

/// A `YYYY-MM-DD` day within Django's range (years 1 to 9999). chrono alone
/// also reads signed and five-digit years, which PostgreSQL may refuse (a
/// 500) and Django cannot load.
fn parse_day(text: &str) -> Option<NaiveDate> {
    let year = text.split('-').next()?;
    let four_digits = year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit());
    let day = text.parse::<NaiveDate>().ok()?;
    (four_digits && day.year() >= 1).then_some(day)
}

fn domain_list(body: &Map<String, Value>, errors: &mut Errors) -> Vec<String> {
    let Some(value) = body.get("domains") else {
        errors.add("domains", "This field is required.");
        return Vec::new();
    };
    let Value::Array(items) = value else {
        errors.add("domains", "Expected a list of items.");
        return Vec::new();
    };
    let mut domains = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(domain) => domains.push(domain.clone()),
            _ => errors.add("domains", "Not a valid string."),
        }
    }
    domains
}

/// `PATCH /api/tenants/{schema}/`: `name`, `paid_until`, `on_trial`.
pub(super) async fn update(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    require_superuser(context, &request).await?;
    let body = read_body(context, request).await?;
    let mut errors = Errors::default();
    let name_rule = Text {
        name: "name",
        required: false,
        max_chars: 100,
        allow_blank: false,
    };
    let patch = TenantPatch {
        name: name_rule.read(&body, &mut errors),
        paid_until: date(&body, &mut errors),
        on_trial: fields::boolean(&body, "on_trial", &mut errors),
    };
    errors.finish()?;
    let info = store::update(&context.app.pool, schema_param(context), &patch)
        .await
        .map_err(store_error)?;
    context.app.resolver.invalidate_tenant(info.tenant.id);
    Ok(json_response(StatusCode::OK, &info))
}

/// `DELETE /api/tenants/{schema}/[?keep_schema=true]`
pub(super) async fn delete(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    require_superuser(context, &request).await?;
    let keep =
        query_param(request.uri().query(), "keep_schema").is_some_and(|v| v == "true" || v == "1");
    let schema = schema_param(context);
    let info = store::get(&context.app.pool, schema)
        .await
        .map_err(store_error)?;
    store::delete(&context.app.pool, schema, keep)
        .await
        .map_err(store_error)?;
    context.app.resolver.invalidate_tenant(info.tenant.id);
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `POST /api/tenants/{schema}/domains/`
pub(super) async fn add_domain(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    require_superuser(context, &request).await?;
    let body = read_body(context, request).await?;
    let mut errors = Errors::default();
    let rule = Text {
        name: "domain",
        required: true,
        max_chars: 253,
        allow_blank: false,
    };
    let domain = rule.read(&body, &mut errors);
    errors.finish()?;
    let domain = domain.unwrap_or_default();
    let rules = &context.settings.rules;
    let added = store::add_domain(&context.app.pool, schema_param(context), &domain, rules)
        .await
        .map_err(store_error)?;
    context.app.resolver.domain_added(&added.domain).await;
    Ok(json_response(StatusCode::CREATED, &added))
}

/// `DELETE /api/tenants/{schema}/domains/{domain}/`
pub(super) async fn remove_domain(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    require_superuser(context, &request).await?;
    let domain = context.params.get("domain").unwrap_or_default();
    store::remove_domain(&context.app.pool, schema_param(context), domain)
        .await
        .map_err(store_error)?;
    context.app.resolver.invalidate_domain(domain).await;
    Ok(empty_response(StatusCode::NO_CONTENT))
}
