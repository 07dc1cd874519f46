//! The HTTPS listener against a real server: a self-signed certificate for
//! two tenants and the public host, HTTP/2 by ALPN, SNI and Host that name
//! different tenants (421), clients that send no SNI, clients that never
//! start the handshake, plain HTTP on the TLS port and a hello cut short.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use botora::config::TlsConfig;
use common::*;
use serde_json::json;
use tokio::io::AsyncReadExt;

/// The public host of `test_config()`.
const PUBLIC: &str = "admin.test";

/// A server with HTTPS on, two tenants and a certificate covering them.
struct Https {
    server: TestServer,
    addr: SocketAddr,
    a: String,
    b: String,
    ca: reqwest::Certificate,
    dir: PathBuf,
}

impl Https {
    async fn start(handshake_timeout: Duration) -> Https {
        let pool = pool();
        let (_, a) = tenant(&pool, "tls_a").await;
        let (_, b) = tenant(&pool, "tls_b").await;

        // One self-signed certificate for both tenants and the public host.
        let dir =
            std::env::temp_dir().join(format!("botora-tls-{}-{}", std::process::id(), unique("")));
        let names = vec![a.clone(), b.clone(), PUBLIC.to_owned()];
        let (default_cert, default_key) =
            botora::listen::tls::write_self_signed(&dir, &names).expect("certificate");
        let pem = std::fs::read(&default_cert).unwrap();
        let ca = reqwest::Certificate::from_pem(&pem).unwrap();

        let mut config = test_config();
        config.tls = Some(TlsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            default_cert,
            default_key,
            certs: vec![],
            cert_dir: None,
            handshake_timeout,
        });
        let server = TestServer::start_with(config).await;
        let addr = server.server.as_ref().unwrap().https_addr.expect("https");
        Https {
            server,
            addr,
            a,
            b,
            ca,
            dir,
        }
    }

    /// A client that trusts the certificate and finds `names` on our port.
    fn client(&self, names: &[&str], http1: bool) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .add_root_certificate(self.ca.clone())
            .tls_built_in_root_certs(false);
        for name in names {
            builder = builder.resolve(name, self.addr);
        }
        if http1 {
            builder = builder.http1_only();
        }
        builder.build().unwrap()
    }

    /// `https://<name>:<port><path>`: SNI is `name`.
    fn url(&self, name: &str, path: &str) -> String {
        format!("https://{name}:{}{path}", self.addr.port())
    }

    fn mismatches(&self) -> u64 {
        self.server.app.metrics.sni_mismatches.get()
    }

    async fn stop(self) {
        self.server.stop().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn https_serves_a_tenant_over_http2() {
    let https = Https::start(Duration::from_secs(5)).await;
    let client = https.client(&[&https.a], false);
    let response = client
        .get(https.url(&https.a, "/api/me/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 401);

    // A request with a body goes over the same HTTP/2 connection.
    let body = json!({"username": "nobody", "password": "x"});
    let response = client
        .post(https.url(&https.a, "/api/token/"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let handshakes = &https.server.app.metrics.tls_handshakes;
    assert!(handshakes.with_label_values(&["ok"]).get() >= 1);
    https.stop().await;
}

#[tokio::test]
async fn sni_of_one_tenant_and_host_of_another_is_misdirected() {
    let https = Https::start(Duration::from_secs(5)).await;
    let client = https.client(&[&https.a, PUBLIC], true);
    let misdirected = json!({"detail": "Misdirected Request.", "code": "misdirected_request"});

    // SNI names A, Host names B.
    let before = https.mismatches();
    let response = client
        .get(https.url(&https.a, "/api/me/"))
        .header("Host", &https.b)
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(into_json(response).await, (421, misdirected.clone()));
    assert_eq!(https.mismatches(), before + 1);

    // The public host counts as a tenant of its own, both ways round.
    let response = client
        .get(https.url(&https.a, "/api/tenants/"))
        .header("Host", PUBLIC)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 421);
    let response = client
        .get(https.url(PUBLIC, "/api/me/"))
        .header("Host", &https.a)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 421);
    assert_eq!(https.mismatches(), before + 3);

    // SNI and Host of the same tenant, spelled differently: served.
    for host in [
        https.a.clone(),
        format!("www.{}:443", https.a.to_uppercase()),
    ] {
        let response = client
            .get(https.url(&https.a, "/api/me/"))
            .header("Host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "Host {host}");
    }
    let response = client
        .get(https.url(PUBLIC, "/api/tenants/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(https.mismatches(), before + 3);
    https.stop().await;
}

#[tokio::test]
async fn without_sni_the_host_decides() {
    let https = Https::start(Duration::from_secs(5)).await;

    // To an IP address rustls sends no SNI; the default certificate serves.
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .http1_only()
        .build()
        .unwrap();
    let url = format!("https://{}/api/me/", https.addr);
    for host in [&https.a, &https.b] {
        let response = client.get(&url).header("Host", host).send().await.unwrap();
        assert_eq!(response.status(), 401, "Host {host}");
    }
    let response = client
        .get(&url)
        .header("Host", "nobody.test")
        .send()
        .await
        .unwrap();
    let not_found = json!({"detail": "Tenant not found.", "code": "tenant_not_found"});
    assert_eq!(into_json(response).await, (404, not_found));

    // An SNI that names no tenant does not contradict the Host either.
    let stranger = format!("stranger-{}", https.a);
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve(&stranger, https.addr)
        .http1_only()
        .build()
        .unwrap();
    let response = client
        .get(https.url(&stranger, "/api/me/"))
        .header("Host", &https.b)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(https.mismatches(), 0);
    https.stop().await;
}

#[tokio::test]
async fn a_client_that_never_says_hello_is_closed_after_the_timeout() {
    let https = Https::start(Duration::from_millis(300)).await;
    let mut stream = tokio::net::TcpStream::connect(https.addr).await.unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await;
    let elapsed = started.elapsed();
    match read {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("the server sent {n} bytes to a silent client"),
        Err(_) => panic!("the connection was still open after 2 s"),
    }
    assert!(
        elapsed >= Duration::from_millis(250),
        "closed after {elapsed:?}, before the 300 ms timeout"
    );

    // It was counted as a timeout, and the listener still serves.
    let timeouts = https
        .server
        .app
        .metrics
        .tls_handshakes
        .with_label_values(&["timeout"]);
    for _ in 0..50 {
        if timeouts.get() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(timeouts.get(), 1);
    let client = https.client(&[&https.a], false);
    let response = client
        .get(https.url(&https.a, "/api/me/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    https.stop().await;
}

/// Reads until the server closes the connection; what it sent, or panics
/// when it is still open after `limit`.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 1024];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return seen,
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("the connection was still open after {limit:?}"),
        }
    }
}

/// Waits until the handshake counter of `outcome` reaches `count`.
async fn wait_handshakes(https: &Https, outcome: &str, count: u64) {
    let counter = https
        .server
        .app
        .metrics
        .tls_handshakes
        .with_label_values(&[outcome]);
    for _ in 0..100 {
        if counter.get() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{outcome} handshakes: {}, expected {count}", counter.get());
}

/// Plain HTTP on the HTTPS port and a ClientHello cut short: each connection
/// is closed without an HTTP answer, counted, and the listener still serves.
#[tokio::test]
async fn plain_http_and_a_truncated_hello_on_the_tls_port_are_closed() {
    use tokio::io::AsyncWriteExt;
    let https = Https::start(Duration::from_millis(500)).await;

    // Plain HTTP: not a TLS record, so the handshake fails at once.
    let mut plain = tokio::net::TcpStream::connect(https.addr).await.unwrap();
    let request = format!("GET /api/me/ HTTP/1.1\r\nHost: {}\r\n\r\n", https.a);
    plain.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut plain, Duration::from_secs(3)).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "answered plain HTTP on the TLS port: {:?}",
        String::from_utf8_lossy(&answer)
    );
    wait_handshakes(&https, "failed", 1).await;

    // A record header promising a 512-byte ClientHello, then 10 bytes of
    // it and silence: closed by the handshake timeout.
    let mut truncated = tokio::net::TcpStream::connect(https.addr).await.unwrap();
    let mut hello = vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03];
    hello.extend_from_slice(&[0x03, 0x00, 0x00, 0x00, 0x00]);
    truncated.write_all(&hello).await.unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut truncated, Duration::from_secs(3)).await;
    assert!(
        answer.is_empty(),
        "the server answered a cut hello: {answer:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "closed after {:?}, before the 500 ms timeout",
        started.elapsed()
    );
    wait_handshakes(&https, "timeout", 1).await;

    let client = https.client(&[&https.a], false);
    let response = client
        .get(https.url(&https.a, "/api/me/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    https.stop().await;
}
