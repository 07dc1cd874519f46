//! Start-up wiring: bind the listeners, start the LISTEN task and the admin
//! listener, and shut everything down in order.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin;
use crate::app::App;
use crate::listen::{Kind, Listeners};
use crate::tenant::notify;

/// A running server.
pub struct Server {
    /// The shared state.
    pub app: Arc<App>,
    /// Where plain HTTP is served.
    pub http_addr: SocketAddr,
    /// Where HTTPS is served, when configured.
    pub https_addr: Option<SocketAddr>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub admin_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    done: JoinHandle<()>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Binds every listener and starts serving in the background.
pub async fn start(app: Arc<App>) -> Result<Server, ServeError> {
    let settings = app.settings();
    let config = &settings.config;

    // Step 1: bind, so that a taken port fails start-up, not later.
    let http = bind(config.server.listen).await?;
    let https = match &config.tls {
        Some(tls) => Some(bind(tls.listen).await?),
        None => None,
    };
    let admin_listener = bind(config.admin.listen).await?;
    let local = |listener: &TcpListener| {
        listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.server.listen,
            source,
        })
    };
    let http_addr = local(&http)?;
    let https_addr = https.as_ref().map(local).transpose()?;
    let admin_addr = local(&admin_listener)?;

    // Step 2: the background tasks: LISTEN, admin, accept loops.
    let (shutdown, stop) = watch::channel(false);
    let listen_task = notify::run(
        config.database.clone(),
        Arc::clone(&app.resolver),
        Arc::clone(&app.metrics),
        stop.clone(),
    );
    tokio::spawn(listen_task);
    tokio::spawn(admin::run(Arc::clone(&app), admin_listener, stop.clone()));
    let listeners = Arc::new(Listeners::new(Arc::clone(&app), stop.clone()));
    let mut loops = vec![spawn_loop(&listeners, http, Kind::Http)];
    if let Some(https) = https {
        loops.push(spawn_loop(&listeners, https, Kind::Https));
    }

    // Step 3: on shutdown, stop accepting, then let connections finish.
    let drain_app = Arc::clone(&app);
    let mut stopped = stop;
    let done = tokio::spawn(async move {
        let _ = stopped.wait_for(|stop| *stop).await;
        for accept_loop in loops {
            let _ = accept_loop.await;
        }
        let grace = drain_app.settings().config.server.shutdown_grace;
        match listeners.drain(grace).await {
            true => tracing::info!("all connections finished"),
            false => tracing::warn!(grace = ?grace, "shutdown grace expired with connections open"),
        }
    });
    tracing::info!(http.addr = %http_addr, https.addr = ?https_addr, admin.addr = %admin_addr, "serving");
    Ok(Server {
        app,
        http_addr,
        https_addr,
        admin_addr,
        shutdown,
        done,
    })
}

fn spawn_loop(listeners: &Arc<Listeners>, listener: TcpListener, kind: Kind) -> JoinHandle<()> {
    let listeners = Arc::clone(listeners);
    tokio::spawn(async move { listeners.run(listener, kind).await })
}

impl Server {
    /// Stops accepting, lets in-flight requests finish (up to
    /// `server.shutdown_grace`), and returns when done.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.done.await;
    }
}

/// Resolves on SIGTERM (delivered to `terminations`) or SIGINT.
pub async fn termination(mut terminations: tokio::signal::unix::Signal) {
    tokio::select! {
        _ = terminations.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
