//! Clients of the signal tests: HTTPS connections that stay open, over
//! HTTP/1.1 or HTTP/2, and a load of them that tallies every request.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::harness::kid_of;
use crate::{DEADLINE, DOMAIN};

/// ALPN protocols a client offers (one each, so the protocol is certain).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    fn alpn(self) -> &'static [u8] {
        match self {
            Protocol::Http1 => b"http/1.1",
            Protocol::Http2 => b"h2",
        }
    }
}

/// A TLS handshake with SNI `DOMAIN`, trusting `trusted` only.
async fn handshake(
    addr: SocketAddr,
    trusted: &CertificateDer<'static>,
    protocol: Protocol,
) -> io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).map_err(io::Error::other)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![protocol.alpn().to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(DOMAIN).map_err(io::Error::other)?;
    let stream = connector
        .connect(name, TcpStream::connect(addr).await?)
        .await?;
    let agreed = stream.get_ref().1.alpn_protocol();
    if agreed != Some(protocol.alpn()) {
        return Err(io::Error::other(format!("ALPN agreed {agreed:?}")));
    }
    Ok(stream)
}

/// The leaf certificate the server presented.
fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    let certs = stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("certificates");
    certs[0].clone()
}

/// One answer: status, body, and whether the server is closing.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
    closing: bool,
}

/// A keep-alive HTTP/1.1 connection reading `Content-Length` bodies.
pub(crate) struct Http1<S> {
    pub(crate) stream: S,
    buffer: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Http1<S> {
    pub(crate) fn new(stream: S) -> Self {
        Http1 {
            stream,
            buffer: Vec::new(),
        }
    }

    async fn get(&mut self, path: &str, token: &str) -> io::Result<Answer> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {DOMAIN}\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        self.stream.write_all(request.as_bytes()).await?;
        self.answer().await
    }

    pub(crate) async fn answer(&mut self) -> io::Result<Answer> {
        loop {
            if let Some(answer) = self.take_answer()? {
                return Ok(answer);
            }
            let mut chunk = [0u8; 8192];
            let read = tokio::time::timeout(DEADLINE, self.stream.read(&mut chunk)).await;
            let n = read.map_err(|_| io::Error::other("no answer in time"))??;
            if n == 0 {
                return Err(io::Error::other("the server closed the connection"));
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// A whole answer from the buffer, if one is there.
    fn take_answer(&mut self) -> io::Result<Option<Answer>> {
        let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Ok(None);
        };
        let head = String::from_utf8_lossy(&self.buffer[..end]).to_ascii_lowercase();
        let header = |name: &str| {
            head.lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(key, _)| key.trim() == name)
                .map(|(_, value)| value.trim().to_owned())
        };
        if header("transfer-encoding").is_some() {
            return Err(io::Error::other(format!("a body without length: {head}")));
        }
        let length: usize = header("content-length")
            .map_or(Ok(0), |v| v.parse())
            .map_err(io::Error::other)?;
        let whole = end + 4 + length;
        if self.buffer.len() < whole {
            return Ok(None);
        }
        let status = head.get(9..12).and_then(|code| code.parse().ok());
        let status = status.ok_or_else(|| io::Error::other(format!("bad status line: {head}")))?;
        let body = Bytes::copy_from_slice(&self.buffer[end + 4..whole]);
        self.buffer.drain(..whole);
        let closing = header("connection").as_deref() == Some("close");
        Ok(Some(Answer {
            status,
            body,
            closing,
        }))
    }
}

/// An HTTP/2 connection; its driver task ends when the connection does.
pub(crate) struct Http2 {
    sender: h2::client::SendRequest<Bytes>,
    driver: tokio::task::JoinHandle<Result<(), h2::Error>>,
}

impl Http2 {
    async fn open(stream: TlsStream<TcpStream>) -> io::Result<Http2> {
        let (sender, connection) = h2::client::handshake(stream)
            .await
            .map_err(io::Error::other)?;
        let driver = tokio::spawn(connection);
        Ok(Http2 { sender, driver })
    }

    async fn get(&mut self, path: &str, token: &str) -> Result<Answer, h2::Error> {
        let request = http::Request::get(format!("https://{DOMAIN}{path}"))
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .expect("request");
        let mut sender = self.sender.clone().ready().await?;
        let (response, _) = sender.send_request(request, true)?;
        let response = response.await?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut data = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            body: data.into(),
            closing: false,
        })
    }
}

/// A client connection of either protocol.
pub(crate) enum Conn {
    H1(Box<Http1<TlsStream<TcpStream>>>),
    H2(Http2),
}

impl Conn {
    /// Handshakes trusting `trusted` only; returns the connection and the
    /// certificate the server presented.
    pub(crate) async fn open(
        addr: SocketAddr,
        trusted: &CertificateDer<'static>,
        protocol: Protocol,
    ) -> io::Result<(Conn, CertificateDer<'static>)> {
        let stream = handshake(addr, trusted, protocol).await?;
        let leaf = presented(&stream);
        let conn = match protocol {
            Protocol::Http1 => Conn::H1(Box::new(Http1::new(stream))),
            Protocol::Http2 => Conn::H2(Http2::open(stream).await?),
        };
        Ok((conn, leaf))
    }

    pub(crate) async fn get(&mut self, path: &str, token: &str) -> Result<Answer, String> {
        match self {
            Conn::H1(conn) => conn.get(path, token).await.map_err(|e| e.to_string()),
            Conn::H2(conn) => conn.get(path, token).await.map_err(|e| e.to_string()),
        }
    }

    /// `GET /api/posts/` answered 200, or why not.
    pub(crate) async fn posts(&mut self, token: &str) -> Result<(), String> {
        match self.get("/api/posts/", token).await? {
            Answer {
                status: 200,
                closing: false,
                body,
            } => {
                let page: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                page.get("results")
                    .map(|_| ())
                    .ok_or(format!("no results: {page}"))
            }
            answer => Err(format!("{answer:?}")),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Conn::H1(_) => true,
            Conn::H2(conn) => !conn.driver.is_finished(),
        }
    }
}

/// Requests sent and failed by every client, with the first failures.
#[derive(Default)]
pub(crate) struct Tally {
    sent: AtomicU64,
    failed: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, SeqCst);
        let mut failures = self.failures.lock().expect("failures");
        if failures.len() < 10 {
            failures.push(why);
        }
    }

    pub(crate) fn assert_clean(&self, what: &str) {
        let sent = self.sent.load(SeqCst);
        let failed = self.failed.load(SeqCst);
        eprintln!("{what}: {sent} requests sent, {failed} failed");
        let failures = self.failures.lock().expect("failures");
        assert_eq!(failed, 0, "{what}: failed requests: {failures:#?}");
        assert!(sent > 0, "{what}: no request was sent");
    }
}

/// What the clients of a load share.
pub(crate) struct Shared {
    /// Tokens the clients take turns with.
    tokens: Mutex<Vec<String>>,
    pub(crate) tally: Tally,
    stop: AtomicBool,
}

/// One client: its task, and how many requests it has begun.
struct Client {
    begun: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<(Conn, usize)>,
}

/// Clients that each keep one connection busy until told to stop.
pub(crate) struct Load {
    shared: Arc<Shared>,
    clients: Vec<Client>,
    /// Connections the clients opened (none is ever reopened).
    pub(crate) opened: usize,
}

impl Load {
    pub(crate) async fn start(
        addr: SocketAddr,
        trusted: &CertificateDer<'static>,
        protocols: &[Protocol],
        token: &str,
    ) -> Load {
        let shared = Arc::new(Shared {
            tokens: Mutex::new(vec![token.to_owned()]),
            tally: Tally::default(),
            stop: AtomicBool::new(false),
        });
        let mut clients = Vec::new();
        for &protocol in protocols {
            let (conn, _) = Conn::open(addr, trusted, protocol).await.expect("connect");
            let begun = Arc::new(AtomicUsize::new(0));
            let client = drive(conn, Arc::clone(&shared), Arc::clone(&begun));
            let task = tokio::spawn(client);
            clients.push(Client { begun, task });
        }
        let opened = clients.len();
        Load {
            shared,
            clients,
            opened,
        }
    }

    /// Gives the clients `tokens`, and returns once no request that took
    /// an older one is still in flight.
    pub(crate) async fn use_tokens(&self, tokens: Vec<String>) {
        *self.shared.tokens.lock().expect("tokens") = tokens;

        // A client that has begun a request since took a new token, and
        // a client's requests follow each other.
        let marks: Vec<usize> = self.clients.iter().map(|c| c.begun.load(SeqCst)).collect();
        let deadline = Instant::now() + DEADLINE;
        for (client, mark) in self.clients.iter().zip(marks) {
            while client.begun.load(SeqCst) == mark && !client.task.is_finished() {
                assert!(Instant::now() < deadline, "a client is stuck");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }

    /// Requests the clients have sent so far.
    pub(crate) fn sent(&self) -> u64 {
        self.shared.tally.sent.load(SeqCst)
    }

    /// Stops the clients and hands back their connections, each with the
    /// number of requests it carried.
    pub(crate) async fn stop(self) -> (Arc<Shared>, Vec<(Conn, usize)>) {
        self.shared.stop.store(true, SeqCst);
        let mut conns = Vec::new();
        for client in self.clients {
            conns.push(client.task.await.expect("client task"));
        }
        (self.shared, conns)
    }
}

/// Sends `GET /api/posts/` on `conn` until told to stop, taking turns
/// with the shared tokens. A connection that breaks ends the client: it
/// is never reopened.
async fn drive(mut conn: Conn, shared: Arc<Shared>, begun: Arc<AtomicUsize>) -> (Conn, usize) {
    let mut sent = 0;
    while !shared.stop.load(SeqCst) {
        begun.fetch_add(1, SeqCst);
        let token = {
            let tokens = shared.tokens.lock().expect("tokens");
            tokens[sent % tokens.len()].clone()
        };
        sent += 1;
        shared.tally.sent.fetch_add(1, SeqCst);
        if let Err(why) = conn.posts(&token).await {
            let kid = kid_of(&token);
            shared.tally.fail(format!("with the token of {kid}: {why}"));
            if !conn.is_open() || matches!(conn, Conn::H1(_)) {
                break;
            }
        }
    }
    (conn, sent)
}

/// Checks each returned connection still answers after everything.
pub(crate) async fn assert_survived(conns: &mut [(Conn, usize)], token: &str) {
    for (index, (conn, sent)) in conns.iter_mut().enumerate() {
        assert!(*sent > 0, "client {index} sent nothing");
        assert!(conn.is_open(), "client {index}'s connection was dropped");
        let last = conn.posts(token).await;
        assert_eq!(
            last,
            Ok(()),
            "client {index}'s connection after the reloads"
        );
    }
}
