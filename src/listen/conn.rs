//! One client connection: the TLS handshake when there is one, then hyper
//! (HTTP/1.1 and HTTP/2 on the same port) until the client leaves, the
//! connection idles out, or the server shuts down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::Instrument;

use super::{Kind, tls};
use crate::app::App;
use crate::config::ServerConfig;
use crate::http::{self, ConnInfo};
use crate::tenant::host;

/// hyper's connection builder, configured once per listener.
pub(super) type Builder = hyper_util::server::conn::auto::Builder<TokioExecutor>;

/// How often an open connection checks whether it has idled out.
const IDLE_CHECK: Duration = Duration::from_secs(1);

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nretry-after: 1\r\nconnection: close\r\n\
content-length: 45\r\n\r\n{\"detail\": \"Service temporarily unavailable.\"}";

/// The builder for connections of a listener. hyper's header-read timeout
/// needs a timer, so both protocols get one.
pub(super) fn builder(server: &ServerConfig) -> Builder {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout)
        .max_headers(server.max_headers)
        .max_buf_size(server.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(server.idle_timeout))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Answers a connection over the limit with a plain `503` and closes it.
pub(super) async fn refuse(mut stream: TcpStream, kind: Kind) {
    if kind == Kind::Http {
        let written = tokio::time::timeout(Duration::from_secs(1), stream.write_all(REFUSAL)).await;
        if matches!(written, Ok(Ok(()))) {
            let _ = stream.shutdown().await;
        }
    }
}

/// A connection about to be served.
pub(super) struct Connection {
    pub(super) app: Arc<App>,
    pub(super) peer: SocketAddr,
    pub(super) kind: Kind,
    pub(super) shutdown: watch::Receiver<bool>,
    pub(super) builder: Builder,
}

impl Connection {
    /// Handshakes (on HTTPS), then serves requests until the end.
    pub(super) async fn run(self, stream: TcpStream, acceptor: Option<tokio_rustls::TlsAcceptor>) {
        let _ = stream.set_nodelay(true);
        let span =
            tracing::debug_span!("conn", client.addr = %self.peer, tls.sni = tracing::field::Empty);
        let Some(acceptor) = acceptor else {
            return self.serve(stream, None).instrument(span).await;
        };
        let limit = self.handshake_timeout();
        let metrics = Arc::clone(&self.app.metrics);
        let handshake = async {
            match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => {
                    metrics.tls_handshakes.with_label_values(&["ok"]).inc();
                    let sni = tls::sni_of(&tls_stream).and_then(|name| normalise_sni(&name));
                    if let Some(name) = &sni {
                        tracing::Span::current().record("tls.sni", name.as_str());
                    }
                    self.serve(tls_stream, sni).await;
                }
                Ok(Err(error)) => {
                    metrics.tls_handshakes.with_label_values(&["failed"]).inc();
                    tracing::debug!(%error, "TLS handshake failed");
                }
                Err(_) => {
                    metrics.tls_handshakes.with_label_values(&["timeout"]).inc();
                    tracing::debug!(timeout = ?limit, "TLS handshake timed out");
                }
            }
        };
        handshake.instrument(span).await;
    }

    fn handshake_timeout(&self) -> Duration {
        let settings = self.app.settings();
        settings
            .config
            .tls
            .as_ref()
            .map_or(Duration::from_secs(10), |tls| tls.handshake_timeout)
    }

    async fn serve<IO>(mut self, io: IO, sni: Option<String>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let info = Arc::new(ConnInfo {
            peer: self.peer,
            sni,
            tls: self.kind == Kind::Https,
        });
        let activity = Arc::new(Activity::new());
        let app = Arc::clone(&self.app);
        let seen = Arc::clone(&activity);
        let service = service_fn(move |request| {
            let guard = seen.begin();
            let served = http::serve(Arc::clone(&app), Arc::clone(&info), request);
            async move {
                let response = served.await;
                drop(guard);
                response
            }
        });
        let connection = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);

        // hyper's header-read timer starts only once hyper-util has told
        // HTTP/1 from HTTP/2, so a client that sends nothing (or drips the
        // HTTP/2 preface) would stay until the idle timeout. The first
        // request must begin within the header-read timeout instead.
        let (idle_timeout, first_request) = {
            let settings = self.app.settings();
            let server = &settings.config.server;
            (server.idle_timeout, server.header_read_timeout)
        };
        let first_request = tokio::time::sleep(first_request);
        tokio::pin!(first_request);
        let mut awaiting_first = true;
        let mut tick = tokio::time::interval(IDLE_CHECK);
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                _ = &mut first_request, if awaiting_first => {
                    if !activity.has_begun() {
                        tracing::debug!("no request began within the header-read timeout");
                        return;
                    }
                    awaiting_first = false;
                }
                _ = self.shutdown.wait_for(|stop| *stop), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = tick.tick(), if !closing => {
                    if activity.idle_for() >= idle_timeout {
                        tracing::debug!(idle = ?idle_timeout, "closing idle connection");
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }
}

/// SNI as a lookup key; a name that is not a valid host is ignored.
fn normalise_sni(name: &str) -> Option<String> {
    host::normalize(name).ok().map(|n| n.into_owned())
}

/// When a connection last did something, and how many requests it has open.
struct Activity {
    started: Instant,
    /// Milliseconds after `started`, plus one, of the last request event;
    /// zero until the first request begins.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Whether any request has begun on this connection.
    fn has_begun(&self) -> bool {
        self.last_ms.load(Ordering::Relaxed) > 0
    }

    fn begin(self: &Arc<Self>) -> ActivityGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        ActivityGuard(Arc::clone(self))
    }

    /// Zero while a request is open; else the time since the last one.
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = self.last_ms.load(Ordering::Relaxed).saturating_sub(1);
        self.started
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }
}

struct ActivityGuard(Arc<Activity>);

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
