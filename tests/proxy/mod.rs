//! A TCP proxy between Botora and PostgreSQL that cuts, stalls or slows
//! every connection on command, for the fault-injection tests.
//!
//! Point `database.url` at [`Proxy::url`]; every pooled connection, the
//! LISTEN connection and query cancellations then pass through it.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Forward everything.
    Open,
    /// Accept connections but hold every byte until restored.
    Stalled,
    /// Close every connection and refuse new ones until restored.
    Cut,
}

#[derive(Debug, Clone, Copy)]
struct State {
    mode: Mode,
    delay: Duration,
}

/// Live links: an id per accepted connection and the local port of its
/// upstream side (the `client_port` PostgreSQL sees).
type Links = Arc<Mutex<HashMap<u64, u16>>>;

/// A running proxy; dropping it closes every link.
pub struct Proxy {
    addr: SocketAddr,
    url: String,
    state: watch::Sender<State>,
    links: Links,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on `127.0.0.1:0` in front of the server that
    /// `database_url` (a `postgres://…@host:port/db` URL) names.
    pub async fn start(database_url: &str) -> Proxy {
        let (prefix, upstream, rest) = split_url(database_url);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, watching) = watch::channel(State {
            mode: Mode::Open,
            delay: Duration::ZERO,
        });
        let links = Links::default();
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            watching,
            Arc::clone(&links),
        ));
        Proxy {
            addr,
            url: format!("{prefix}{addr}{rest}"),
            state,
            links,
            accept,
        }
    }

    /// The database URL, rewritten to go through the proxy.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Closes every open connection and refuses new ones until
    /// [`Proxy::restore`].
    pub fn cut(&self) {
        self.state.send_modify(|state| state.mode = Mode::Cut);
    }

    /// Keeps accepting, but forwards no byte either way until
    /// [`Proxy::restore`].
    pub fn stall(&self) {
        self.state.send_modify(|state| state.mode = Mode::Stalled);
    }

    /// Forwards again, without delay.
    pub fn restore(&self) {
        self.state.send_modify(|state| {
            state.mode = Mode::Open;
            state.delay = Duration::ZERO;
        });
    }

    /// Holds every forwarded chunk for `delay` (both directions).
    pub fn delay(&self, delay: Duration) {
        self.state.send_modify(|state| state.delay = delay);
    }

    /// Connections open through the proxy now.
    pub fn open_links(&self) -> usize {
        self.links.lock().unwrap().len()
    }

    /// The upstream ports of the open links, as PostgreSQL's
    /// `pg_stat_activity.client_port` shows them.
    pub fn upstream_ports(&self) -> Vec<i32> {
        let links = self.links.lock().unwrap();
        links.values().map(|port| i32::from(*port)).collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// Splits `scheme://user@host:port/rest` into the part before the host,
/// `host:port` (port 5432 when absent) and the rest.
fn split_url(url: &str) -> (String, String, String) {
    let (scheme, after) = url.split_once("://").expect("database URL has a scheme");
    let authority_end = after.find(['/', '?']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(authority_end);
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, host_port)) => (format!("{user}@"), host_port),
        None => (String::new(), authority),
    };
    assert!(
        !host_port.is_empty() && !host_port.contains(','),
        "the proxy needs one TCP host in the database URL: {url}"
    );
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
    let upstream = match has_port {
        true => host_port.to_owned(),
        false => format!("{host_port}:5432"),
    };
    (format!("{scheme}://{user}"), upstream, rest.to_owned())
}

async fn accept_loop(
    listener: TcpListener,
    upstream: String,
    state: watch::Receiver<State>,
    links: Links,
) {
    let mut next_id = 0u64;
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };

        // While cut, a new connection is closed at once.
        if state.borrow().mode == Mode::Cut {
            drop(client);
            continue;
        }
        next_id += 1;
        let link = Link {
            id: next_id,
            state: state.clone(),
            links: Arc::clone(&links),
        };
        tokio::spawn(link.run(client, upstream.clone()));
    }
}

/// One client connection and its upstream twin.
struct Link {
    id: u64,
    state: watch::Receiver<State>,
    links: Links,
}

impl Link {
    async fn run(mut self, client: TcpStream, upstream: String) {
        let Ok(server) = TcpStream::connect(&upstream).await else {
            return;
        };
        let port = server.local_addr().map_or(0, |addr| addr.port());
        self.links.lock().unwrap().insert(self.id, port);
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);

        // Both directions until both ends close, or until a cut.
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        let up = pump(client_read, server_write, self.state.clone());
        let down = pump(server_read, client_write, self.state.clone());
        tokio::select! {
            _ = async { tokio::join!(up, down) } => {}
            _ = self.state.wait_for(|state| state.mode == Mode::Cut) => {}
        }
        self.links.lock().unwrap().remove(&self.id);
    }
}

/// Copies `from` to `to`, holding bytes while stalled and delaying them
/// when asked. Ends when `from` closes or `to` fails.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut state: watch::Receiver<State>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let delay = match state.wait_for(|state| state.mode != Mode::Stalled).await {
            Ok(state) => state.delay,
            Err(_) => break,
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if to.write_all(&buf[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[test]
fn urls_are_split_around_the_host() {
    let (prefix, upstream, rest) = split_url("postgres://postgres@127.0.0.1:5432/db_1");
    assert_eq!(
        (prefix.as_str(), upstream.as_str(), rest.as_str()),
        ("postgres://postgres@", "127.0.0.1:5432", "/db_1")
    );
    let (prefix, upstream, rest) = split_url("postgresql://u:p@w@localhost/db?sslmode=disable");
    assert_eq!(
        (prefix.as_str(), upstream.as_str(), rest.as_str()),
        (
            "postgresql://u:p@w@",
            "localhost:5432",
            "/db?sslmode=disable"
        )
    );
}
