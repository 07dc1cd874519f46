//! Every failure a client can see, and the one place each becomes an HTTP
//! response. Bodies follow DRF and simplejwt; anything unexpected is a
//! generic `500` whose detail goes to the log only.

use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::{Response, json_response};
use crate::db::DbError;

/// Seconds a client is asked to wait after a `503`.
const RETRY_AFTER_SECS: &str = "1";

/// A request that cannot be served, as the client will see it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, repeated or malformed host.
    #[error("invalid host: {0}")]
    BadHost(#[from] crate::tenant::host::BadHost),
    /// SNI and Host name different tenants.
    #[error("SNI and Host name different tenants")]
    Misdirected,
    /// No tenant has this host.
    #[error("tenant not found")]
    TenantNotFound,
    /// The tenant's trial and payment have lapsed.
    #[error("tenant inactive")]
    TenantInactive,
    /// No route, or no such object.
    #[error("not found")]
    NotFound,
    /// A page number that is not a page.
    #[error("invalid page")]
    InvalidPage,
    /// The route exists but not for this method.
    #[error("method {method} not allowed")]
    MethodNotAllowed {
        /// The method used.
        method: http::Method,
        /// The methods the route takes, for `Allow`.
        allow: &'static str,
    },
    /// The body is over `server.max_body_bytes`.
    #[error("body over {0} bytes")]
    PayloadTooLarge(usize),
    /// The body is not JSON.
    #[error("JSON parse error - {0}")]
    JsonParse(String),
    /// Field errors, DRF style: `400` (or `409` for taken values).
    #[error("validation failed: {body}")]
    Validation {
        /// `400` or `409`.
        status: StatusCode,
        /// `{"field": ["message", …]}`.
        body: Value,
    },
    /// No credentials where they are needed.
    #[error("not authenticated")]
    NotAuthenticated,
    /// A 401 with a simplejwt body (`detail`, `code`, maybe `messages`).
    #[error("authentication failed: {0}")]
    Unauthorized(Value),
    /// Authenticated but not allowed.
    #[error("permission denied")]
    PermissionDenied,
    /// The database is away or slow, the pool is exhausted, or the
    /// tenant's schema is missing.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else. The client sees a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A single-field validation error.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        let mut body = serde_json::Map::new();
        body.insert(field.to_owned(), json!([message.into()]));
        ApiError::Validation {
            status: StatusCode::BAD_REQUEST,
            body: Value::Object(body),
        }
    }

    /// A simplejwt-style 401 with `detail` and `code`.
    pub fn unauthorized(detail: &str, code: &str) -> ApiError {
        ApiError::Unauthorized(json!({ "detail": detail, "code": code }))
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadHost(_) | ApiError::JsonParse(_) => StatusCode::BAD_REQUEST,
            ApiError::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            ApiError::TenantNotFound | ApiError::NotFound | ApiError::InvalidPage => {
                StatusCode::NOT_FOUND
            }
            ApiError::TenantInactive | ApiError::PermissionDenied => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Validation { status, .. } => *status,
            ApiError::NotAuthenticated | ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> Value {
        match self {
            ApiError::BadHost(_) => json!({"detail": "Invalid Host header.", "code": "bad_host"}),
            ApiError::Misdirected => {
                json!({"detail": "Misdirected Request.", "code": "misdirected_request"})
            }
            ApiError::TenantNotFound => {
                json!({"detail": "Tenant not found.", "code": "tenant_not_found"})
            }
            ApiError::TenantInactive => {
                json!({"detail": "Tenant is inactive.", "code": "tenant_inactive"})
            }
            ApiError::NotFound => json!({"detail": "Not found."}),
            ApiError::InvalidPage => json!({"detail": "Invalid page."}),
            ApiError::MethodNotAllowed { method, .. } => {
                json!({"detail": format!("Method \"{method}\" not allowed.")})
            }
            ApiError::PayloadTooLarge(limit) => {
                json!({"detail": format!("Request body exceeds {limit} bytes."), "code": "payload_too_large"})
            }
            ApiError::JsonParse(reason) => {
                json!({"detail": format!("JSON parse error - {reason}")})
            }
            ApiError::Validation { body, .. } | ApiError::Unauthorized(body) => body.clone(),
            ApiError::NotAuthenticated => {
                json!({"detail": "Authentication credentials were not provided."})
            }
            ApiError::PermissionDenied => {
                json!({"detail": "You do not have permission to perform this action."})
            }
            ApiError::Unavailable(_) => json!({"detail": "Service temporarily unavailable."}),
            ApiError::Internal(_) => json!({"detail": "A server error occurred."}),
        }
    }

    /// The response, with the headers its status calls for.
    pub fn into_response(self) -> Response {
        match &self {
            ApiError::Unavailable(cause) => tracing::warn!(%cause, "answering 503"),
            ApiError::Internal(cause) => tracing::error!(%cause, "answering 500"),
            _ => {}
        }
        let mut response = json_response(self.status(), &self.body());
        let headers = response.headers_mut();
        match &self {
            ApiError::MethodNotAllowed { allow, .. } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::NotAuthenticated | ApiError::Unauthorized(_) => {
                let realm = HeaderValue::from_static("Bearer realm=\"api\"");
                headers.insert(header::WWW_AUTHENTICATE, realm);
            }
            ApiError::Unavailable(_) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        if error.is_unavailable() {
            ApiError::Unavailable(error.to_string())
        } else {
            ApiError::Internal(error.to_string())
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(error: tokio_postgres::Error) -> Self {
        DbError::from(error).into()
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        DbError::from(error).into()
    }
}
