//! Listeners: accept connections (plain and TLS), hand each to hyper, and
//! shut down gracefully.
//!
//! The accept loop never dies: a reset or aborted connection is skipped, a
//! full file table backs off, and a TLS handshake gets a time limit. Each
//! connection runs in its own task under a span naming the peer and SNI.
//! On shutdown every connection is asked to finish its in-flight requests,
//! and the tasks get `server.shutdown_grace` to do so.

mod conn;
pub mod tls;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;

use crate::app::App;

/// Which listener a connection came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain HTTP.
    Http,
    /// HTTPS.
    Https,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Https => "https",
        }
    }
}

/// Everything the accept loops share.
pub struct Listeners {
    app: Arc<App>,
    tracker: TaskTracker,
    slots: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
}

impl Listeners {
    /// Listeners for `app`, stopping when `shutdown` turns true.
    pub fn new(app: Arc<App>, shutdown: watch::Receiver<bool>) -> Listeners {
        let max = app.settings().config.server.max_connections;
        Listeners {
            app,
            tracker: TaskTracker::new(),
            slots: Arc::new(Semaphore::new(max)),
            shutdown,
        }
    }

    /// Accepts on `listener` until shutdown.
    pub async fn run(&self, listener: TcpListener, kind: Kind) {
        let acceptor = match (kind, &self.app.certs) {
            (Kind::Https, Some(certs)) => match tls::server_config(Arc::clone(certs)) {
                Ok(config) => Some(tokio_rustls::TlsAcceptor::from(config)),
                Err(error) => {
                    tracing::error!(%error, "cannot build the TLS config; HTTPS listener not started");
                    return;
                }
            },
            _ => None,
        };
        let builder = conn::builder(&self.app.settings().config.server);
        let mut shutdown = self.shutdown.clone();
        loop {
            let accepted = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    self.spawn(stream, peer, kind, acceptor.clone(), builder.clone())
                }
                Err(error) => back_off(&error).await,
            }
        }
        self.tracker.close();
    }

    fn spawn(
        &self,
        stream: TcpStream,
        peer: std::net::SocketAddr,
        kind: Kind,
        acceptor: Option<tokio_rustls::TlsAcceptor>,
        builder: conn::Builder,
    ) {
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            self.app.metrics.connections_refused.inc();
            tracing::warn!(client.addr = %peer, "connection limit reached; refusing");
            self.tracker.spawn(conn::refuse(stream, kind));
            return;
        };
        let connection = conn::Connection {
            app: Arc::clone(&self.app),
            peer,
            kind,
            shutdown: self.shutdown.clone(),
            builder,
        };
        let gauge = self
            .app
            .metrics
            .connections
            .with_label_values(&[kind.label()]);
        self.tracker.spawn(async move {
            gauge.inc();
            connection.run(stream, acceptor).await;
            gauge.dec();
            drop(slot);
        });
    }

    /// Waits for open connections to finish, at most `grace`. Returns
    /// whether they all did.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// Sleeps after an accept error when waiting can help.
async fn back_off(error: &io::Error) {
    match error.raw_os_error() {
        // EMFILE, ENFILE, ENOBUFS, ENOMEM: out of resources; let some free.
        Some(24 | 23 | 105 | 12) => {
            tracing::warn!(%error, "accept failed for want of resources; backing off");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        _ => tracing::debug!(%error, "accept failed"),
    }
}
