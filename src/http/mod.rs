//! The request pipeline: request id, tenant resolution, routing, the
//! handler, then the access log line and metrics.
//!
//! [`serve`] is the hyper service of every connection. Each step that can
//! refuse a request returns an [`ApiError`]; the response for it is built
//! in `error.rs` and nowhere else.

pub mod body;
mod error;

pub use error::ApiError;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Serialize;

use crate::app::{App, Settings};
use crate::route::{self, Target};
use crate::tenant::host;

/// Every response Botora sends.
pub type Response = http::Response<Full<Bytes>>;

const REQUEST_ID: &str = "x-request-id";
const MAX_REQUEST_ID_LEN: usize = 128;

/// What the connection knows, shared by its requests.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The TLS SNI name, normalised; `None` on plain HTTP or without SNI.
    pub sni: Option<String>,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// A JSON response.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let json = HeaderValue::from_static("application/json");
    response.headers_mut().insert(header::CONTENT_TYPE, json);
    response
}

/// A response with no body.
pub fn empty_response(status: StatusCode) -> Response {
    let mut response = http::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// The hyper service: never fails, every problem is a response.
pub async fn serve(
    app: Arc<App>,
    conn: Arc<ConnInfo>,
    request: Request<Incoming>,
) -> Result<Response, Infallible> {
    let settings = app.settings();
    let mut exchange = Exchange::begin(&app, &conn, &request);

    // Resolve, route and handle, within the request time limit.
    let limit = settings.config.server.request_timeout;
    let handling = handle(&app, &settings, &conn, request, &mut exchange.log);
    let mut response = match tokio::time::timeout(limit, handling).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error.into_response(),
        Err(_) => ApiError::Unavailable(format!("request took over {limit:?}")).into_response(),
    };

    // Stamp; the exchange counts and logs as it ends.
    if let Ok(value) = HeaderValue::from_str(&exchange.request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    exchange.status = Some(response.status());
    Ok(response)
}

/// What the access log learns while the request is handled.
#[derive(Default)]
struct RequestLog {
    route: &'static str,
    schema: Option<String>,
}

/// One request from its head to its end. Dropping it counts the request
/// and writes its access log line, also when hyper drops the request
/// because the client left: that one is logged as nginx's `499`.
struct Exchange<'a> {
    app: &'a App,
    conn: &'a ConnInfo,
    started: Instant,
    request_id: String,
    method: http::Method,
    uri: http::Uri,
    log: RequestLog,
    status: Option<StatusCode>,
}

/// nginx's status for a request whose client closed the connection.
fn client_closed() -> StatusCode {
    StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
}

impl<'a> Exchange<'a> {
    fn begin(app: &'a App, conn: &'a ConnInfo, request: &Request<Incoming>) -> Self {
        app.metrics.in_flight.inc();
        Exchange {
            app,
            conn,
            started: Instant::now(),
            request_id: request_id(request),
            method: request.method().clone(),
            uri: request.uri().clone(),
            log: RequestLog {
                route: "unmatched",
                schema: None,
            },
            status: None,
        }
    }
}

impl Drop for Exchange<'_> {
    fn drop(&mut self) {
        self.app.metrics.in_flight.dec();
        let status = self.status.unwrap_or_else(client_closed);
        let elapsed = self.started.elapsed();
        record(
            self.app,
            &self.method,
            self.log.route,
            status,
            elapsed.as_secs_f64(),
        );
        tracing::info!(
            request.id = %self.request_id,
            tenant.schema = self.log.schema.as_deref().unwrap_or("-"),
            client.addr = %self.conn.peer,
            http.method = %self.method,
            http.path = %self.uri.path(),
            http.status = status.as_u16(),
            latency_us = elapsed.as_micros() as u64,
            "request"
        );
    }
}

async fn handle(
    app: &App,
    settings: &Arc<Settings>,
    conn: &ConnInfo,
    request: Request<Incoming>,
    log: &mut RequestLog,
) -> Result<Response, ApiError> {
    // Step 1: the host, then the tenant it names.
    let host = request_host(&request)?;
    let target = resolve(app, settings, &host).await?;
    log.schema = Some(target.schema().to_owned());

    // Step 2: on TLS, SNI must not name another tenant.
    if let Some(sni) = &conn.sni {
        check_sni(app, settings, sni, &target).await?;
    }
    if let Target::Tenant(tenant) = &target {
        app.metrics.count_tenant(&tenant.schema_name);
    }

    // Step 3: route and run the handler.
    let Some((route, params)) = route::find(&target, request.uri().path()) else {
        return Err(ApiError::NotFound);
    };
    log.route = route.name();
    let scheme = if conn.tls { "https" } else { "http" };
    let context = route::Context {
        app,
        settings,
        target,
        params,
        origin: format!(
            "{scheme}://{}",
            request_authority(&request).unwrap_or(&host)
        ),
    };
    crate::handlers::dispatch(route, &context, request).await
}

/// The tenant (or public API) that `host` names.
async fn resolve(app: &App, settings: &Settings, host: &str) -> Result<Target, ApiError> {
    let outcome = resolve_target(app, settings, host).await;
    let label = match &outcome {
        Ok(Target::Public) => "public",
        Ok(Target::Tenant(_)) => "found",
        Err(ApiError::TenantNotFound) => "not_found",
        Err(ApiError::TenantInactive) => "inactive",
        Err(_) => "error",
    };
    app.metrics.resolutions.with_label_values(&[label]).inc();
    outcome
}

async fn resolve_target(app: &App, settings: &Settings, host: &str) -> Result<Target, ApiError> {
    if settings.public_hosts.contains(host) {
        return Ok(Target::Public);
    }
    let tenant = app
        .resolver
        .lookup(host)
        .await?
        .ok_or(ApiError::TenantNotFound)?;
    if tenant.is_public() {
        return Ok(Target::Public);
    }
    if !tenant.is_active(settings.today()) {
        return Err(ApiError::TenantInactive);
    }
    Ok(Target::Tenant(tenant))
}

async fn check_sni(
    app: &App,
    settings: &Settings,
    sni: &str,
    target: &Target,
) -> Result<(), ApiError> {
    let sni_target = match resolve_target(app, settings, sni).await {
        Ok(found) => found,
        // An SNI naming no tenant cannot be another tenant's: Host decides.
        Err(ApiError::TenantNotFound) => return Ok(()),
        Err(ApiError::TenantInactive) => return Err(misdirected(app)),
        Err(other) => return Err(other),
    };
    match sni_target.schema() == target.schema() {
        true => Ok(()),
        false => Err(misdirected(app)),
    }
}

fn misdirected(app: &App) -> ApiError {
    app.metrics.sni_mismatches.inc();
    ApiError::Misdirected
}

/// The authority the client addressed: the URI's (HTTP/2 `:authority`, or
/// an absolute-form HTTP/1.1 target), else the one `Host` header.
fn request_authority<B>(request: &Request<B>) -> Option<&str> {
    if let Some(authority) = request.uri().authority() {
        return Some(authority.as_str());
    }
    request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
}

/// The normalised host of a request; a missing, repeated or malformed one
/// is refused.
pub fn request_host<B>(request: &Request<B>) -> Result<String, ApiError> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(host::BadHost::Repeated.into());
    }
    let normalised = match (request.uri().authority(), first) {
        (Some(authority), _) => host::normalize(authority.as_str())?,
        (None, Some(value)) => host::normalize_bytes(value.as_bytes())?,
        (None, None) => return Err(host::BadHost::Missing.into()),
    };
    Ok(normalised.into_owned())
}

/// The client's request id when it is sane (printable ASCII, at most 128
/// characters), else a new one.
fn request_id<B>(request: &Request<B>) -> String {
    let theirs = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok());
    match theirs {
        Some(id) if is_sane_id(id) => id.to_owned(),
        _ => uuid::Uuid::new_v4().simple().to_string(),
    }
}

fn is_sane_id(id: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.:".contains(&b);
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.bytes().all(allowed)
}

fn record(app: &App, method: &http::Method, route: &str, status: StatusCode, seconds: f64) {
    let class = match *method {
        http::Method::GET | http::Method::HEAD => "read",
        http::Method::OPTIONS => "options",
        _ => "write",
    };
    app.metrics
        .requests
        .with_label_values(&[route, class, status.as_str()])
        .inc();
    app.metrics
        .request_duration
        .with_label_values(&[route])
        .observe(seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host_headers: &[&str], uri: &str) -> Request<()> {
        let mut builder = Request::builder().uri(uri);
        for host in host_headers {
            builder = builder.header(header::HOST, *host);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn host_comes_from_header_or_authority() {
        assert_eq!(
            request_host(&request(&["Acme.Test:8000"], "/api/")).unwrap(),
            "acme.test"
        );
        let absolute = request(&["ignored.test"], "http://www.acme.test/api/");
        assert_eq!(request_host(&absolute).unwrap(), "acme.test");
    }

    #[test]
    fn missing_and_repeated_hosts_are_refused() {
        assert!(request_host(&request(&[], "/")).is_err());
        assert!(request_host(&request(&["a.test", "b.test"], "/")).is_err());
        assert!(request_host(&request(&["a..test"], "/")).is_err());
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        let with = |id: &str| Request::builder().header(REQUEST_ID, id).body(()).unwrap();
        assert_eq!(request_id(&with("abc-123")), "abc-123");
        assert_ne!(
            request_id(&with("bad id\twith space")),
            "bad id\twith space"
        );
        assert_eq!(request_id(&with(&"x".repeat(129))).len(), 32);
    }
}
