//! The operators' listener (`[admin] listen`): `/metrics`, `/healthz` and
//! `/readyz`, whatever the host. Kept off the public port so that metrics
//! and health never depend on tenant resolution.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::App;
use crate::http::{Response, json_response};

/// Longest a readiness probe waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves the admin endpoints until `shutdown` turns true.
pub async fn run(app: Arc<App>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(5));
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::debug!(%error, "admin accept failed");
                    continue;
                }
            },
        };
        let app = Arc::clone(&app);
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(Arc::clone(&app), request));
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(app: Arc<App>, request: Request<Incoming>) -> Result<Response, Infallible> {
    Ok(match request.uri().path() {
        "/metrics" => metrics(&app),
        "/healthz" => json_response(StatusCode::OK, &json!({"status": "ok"})),
        "/readyz" => ready(&app).await,
        _ => json_response(StatusCode::NOT_FOUND, &json!({"detail": "Not found."})),
    })
}

fn metrics(app: &App) -> Response {
    app.observe_pool();
    let text = app.metrics.render();
    let mut response = http::Response::new(Full::new(Bytes::from(text)));
    let kind = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    response.headers_mut().insert(header::CONTENT_TYPE, kind);
    response
}

/// Ready when a pooled connection answers `SELECT 1` within a second.
async fn ready(app: &App) -> Response {
    let probe = async {
        let conn = app.pool.get().await.map_err(|e| e.to_string())?;
        conn.simple_query("SELECT 1")
            .await
            .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    };
    let outcome = match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("database did not answer within {READY_TIMEOUT:?}")),
    };
    match outcome {
        Ok(()) => json_response(
            StatusCode::OK,
            &json!({"status": "ready", "database": "ok"}),
        ),
        Err(reason) => {
            tracing::debug!(%reason, "not ready");
            let body = json!({"status": "not ready", "database": "unreachable"});
            json_response(StatusCode::SERVICE_UNAVAILABLE, &body)
        }
    }
}
