//! Hostile clients: slowloris, slow bodies, header floods, request
//! smuggling, HTTP/2 floods, the connection limit and a login flood. The
//! server must refuse them cheaply and keep answering everyone else.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use botora::config::Config;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// A server with a tenant, a reader who wrote three posts, and the
/// reader's access token.
struct Site {
    server: TestServer,
    fixtures: deadpool_postgres::Pool,
    schema: String,
    domain: String,
    token: String,
}

async fn site(tune: impl FnOnce(&mut Config)) -> Site {
    let fixtures = pool();
    let mut config = test_config();
    config.database.pool_size = 4;
    tune(&mut config);
    let (schema, domain) = tenant(&fixtures, "hostile").await;
    let author = user(&fixtures, &schema, "reader", "reader-pw-1", false).await;
    posts(&fixtures, &schema, author, "post", 3).await;
    let server = TestServer::start_with(config).await;
    let (token, _) = server.login(&domain, "reader", "reader-pw-1").await;
    Site {
        server,
        fixtures,
        schema,
        domain,
        token,
    }
}

impl Site {
    /// `GET /api/posts/` as the reader: status and latency.
    async fn read(&self) -> (u16, Duration) {
        let started = Instant::now();
        let (status, _) = self
            .server
            .get(&self.domain, "/api/posts/", Some(&self.token))
            .await;
        (status, started.elapsed())
    }

    /// The same read over HTTP/2 on a new connection.
    async fn read_h2(&self) -> u16 {
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .resolve(&self.domain, self.server.http)
            .build()
            .unwrap();
        let url = format!(
            "http://{}:{}/api/posts/",
            self.domain,
            self.server.http.port()
        );
        let response = client.get(url).bearer_auth(&self.token).send();
        let response = tokio::time::timeout(Duration::from_secs(3), response)
            .await
            .expect("HTTP/2 read hung")
            .unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        response.status().as_u16()
    }
}

/// Everything the server sends until it closes the connection or `limit`
/// passes; and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&reply).into(), true),
            Ok(Ok(read)) => reply.extend_from_slice(&buf[..read]),
            Err(_) => return (String::from_utf8_lossy(&reply).into(), false),
        }
    }
}

/// Sends `request` on a new connection; the reply and whether the server
/// closed the connection within 3 s. A write the server cuts short is
/// not an error: what it answered is what counts.
async fn exchange(addr: SocketAddr, request: &[u8]) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    read_until_closed(&mut stream, Duration::from_secs(3)).await
}

/// The status codes of every response in `reply`, in order.
fn statuses(reply: &str) -> Vec<u16> {
    reply
        .match_indices("HTTP/1.1 ")
        .filter(|(at, _)| *at == 0 || reply[..*at].ends_with('\n'))
        .filter_map(|(at, _)| reply.get(at + 9..at + 12)?.parse().ok())
        .collect()
}

/// Opens a connection and sends `bytes` one at a time, one per `every`,
/// until the server closes it or `limit` passes. Returns how long after
/// connecting the server closed it, if it did.
async fn drip(
    addr: SocketAddr,
    bytes: Vec<u8>,
    every: Duration,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let mut tick = tokio::time::interval(every);
    let mut sent = 0;
    let mut buf = [0u8; 1024];
    let end = tokio::time::sleep(limit);
    tokio::pin!(end);
    loop {
        tokio::select! {
            _ = &mut end => return None,
            _ = tick.tick(), if sent < bytes.len() => {
                if writer.write_all(&bytes[sent..sent + 1]).await.is_err() {
                    return Some(started.elapsed());
                }
                sent += 1;
            }
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Some(started.elapsed()),
                // An answer (a 408, say): the close follows.
                Ok(_) => {}
            },
        }
    }
}

#[tokio::test]
async fn slowloris_is_cut_off_and_normal_clients_keep_their_latency() {
    let header_timeout = Duration::from_secs(2);
    let site = site(|config| config.server.header_read_timeout = header_timeout).await;
    let head = format!(
        "GET /api/posts/ HTTP/1.1\r\nHost: {}\r\nX-Padding: {}",
        site.domain,
        "a".repeat(64)
    );

    // 200 connections, each sending a header byte a second.
    let mut attackers = JoinSet::new();
    for _ in 0..200 {
        let bytes = head.clone().into_bytes();
        attackers.spawn(drip(site.server.http, bytes, ms(1000), ms(4500)));
    }

    // Meanwhile a normal client reads every 100 ms.
    let started = Instant::now();
    let mut reads = Vec::new();
    while started.elapsed() < ms(4000) {
        reads.push(site.read().await);
        tokio::time::sleep(ms(100)).await;
    }
    for (status, took) in &reads {
        assert_eq!(*status, 200);
        assert!(*took < ms(1000), "a normal read took {took:?}");
    }

    // Every slowloris connection was closed soon after the header timeout.
    let mut closed = Vec::new();
    while let Some(done) = attackers.join_next().await {
        closed.push(done.unwrap());
    }
    let limit = header_timeout + ms(1500);
    let late: Vec<_> = closed
        .iter()
        .filter(|after| !after.is_some_and(|after| after <= limit))
        .collect();
    assert!(
        late.is_empty(),
        "{} of 200 still open after {limit:?}: {late:?}",
        late.len()
    );
    let slowest = closed.iter().flatten().max();
    eprintln!(
        "slowloris: {} normal reads; slowest close {slowest:?}",
        reads.len()
    );
}

#[tokio::test]
async fn connections_that_never_finish_a_request_head_are_cut_off() {
    let header_timeout = Duration::from_secs(2);
    let site = site(|config| config.server.header_read_timeout = header_timeout).await;

    // Ten send nothing at all; ten drip the HTTP/2 preface.
    let mut attackers = JoinSet::new();
    for n in 0..20 {
        let bytes = match n % 2 {
            0 => Vec::new(),
            _ => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        };
        attackers.spawn(drip(site.server.http, bytes, ms(300), ms(4500)));
    }
    let limit = header_timeout + ms(1500);
    while let Some(done) = attackers.join_next().await {
        let closed = done.unwrap();
        assert!(
            closed.is_some_and(|after| after <= limit),
            "still open after {limit:?}"
        );
    }
}

#[tokio::test]
async fn a_slow_request_body_is_cut_off_by_the_request_timeout() {
    let request_timeout = ms(1500);
    let site = site(|config| {
        config.server.request_timeout = request_timeout;
        config.server.header_read_timeout = Duration::from_secs(2);
    })
    .await;
    let title = unique("slow-body-");
    let body = json!({"title": title, "body": "x".repeat(40)}).to_string();
    let head = format!(
        "POST /api/posts/ HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        site.domain,
        site.token,
        body.len()
    );

    // The head at once, then the body at a byte a second.
    let stream = TcpStream::connect(site.server.http).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let dripping = tokio::spawn(async move {
        for byte in body.into_bytes().into_iter().take(6) {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(ms(1000)).await;
        }
        // Keep the connection half-open: the server decides when it ends.
        tokio::time::sleep(ms(2000)).await;
    });

    // Others are served as usual meanwhile.
    let (status, took) = site.read().await;
    assert_eq!(status, 200);
    assert!(took < ms(1000), "{took:?}");

    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    let answered = loop {
        match tokio::time::timeout(ms(5000), reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            Ok(Ok(read)) => {
                reply.extend_from_slice(&buf[..read]);
                if reply.windows(4).any(|w| w == b"\r\n\r\n") {
                    break started.elapsed();
                }
            }
            Err(_) => panic!("no answer to a slow body within 5 s"),
        }
    };
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 503"),
        "{reply}"
    );
    assert!(
        answered < request_timeout + ms(1500),
        "answered after {answered:?}"
    );
    dripping.abort();

    // Nothing was written from the partial body.
    let conn = site.fixtures.get().await.unwrap();
    let sql = format!(
        "SELECT count(*) FROM \"{}\".blog_post WHERE title = $1",
        site.schema
    );
    let count: i64 = conn.query_one(&sql, &[&title]).await.unwrap().get(0);
    assert_eq!(count, 0);
}

#[tokio::test]
async fn too_many_headers_are_431_and_huge_ones_are_refused() {
    let site = site(|config| config.server.max_headers = 20).await;
    let head = |extra: usize| {
        let mut head = format!("GET /api/me/ HTTP/1.1\r\nHost: {}\r\n", site.domain);
        for n in 0..extra {
            head.push_str(&format!("X-Extra-{n}: {n}\r\n"));
        }
        head + "\r\n"
    };

    // Twenty headers in all is fine; twenty-five is not.
    let (reply, _) = exchange(site.server.http, head(19).as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    let (reply, closed) = exchange(site.server.http, head(24).as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    assert!(closed, "connection left open after a 431");

    // A megabyte header: refused and closed (or cut off), never a 500.
    let request = format!(
        "GET /api/me/ HTTP/1.1\r\nHost: {}\r\nX-Huge: {}\r\n\r\n",
        site.domain,
        "h".repeat(1024 * 1024)
    );
    let (reply, closed) = exchange(site.server.http, request.as_bytes()).await;
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431") || reply.starts_with("HTTP/1.1 400"),
        "{reply}"
    );
    assert!(closed);
    assert_eq!(site.read().await.0, 200);
}

#[tokio::test]
async fn a_100_kb_header_is_refused() {
    let site = site(|_| {}).await;
    let request = format!(
        "GET /api/me/ HTTP/1.1\r\nHost: {}\r\nX-Big: {}\r\n\r\n",
        site.domain,
        "b".repeat(100 * 1024)
    );
    let (reply, closed) = exchange(site.server.http, request.as_bytes()).await;
    assert!(
        reply.starts_with("HTTP/1.1 431") || reply.starts_with("HTTP/1.1 400"),
        "{}",
        &reply[..reply.len().min(200)]
    );
    assert!(closed);
}

#[tokio::test]
async fn request_smuggling_is_refused_and_no_second_request_gets_through() {
    let site = site(|_| {}).await;
    let smuggled = format!(
        "GET /api/me/ HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
        site.domain, site.token
    );
    // Alone, the smuggled request would succeed.
    let (reply, _) = exchange(site.server.http, smuggled.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    // A body that a Content-Length reader takes whole and a chunked
    // reader ends early, leaving the smuggled request behind it.
    let tail = format!("0\r\n\r\n{smuggled}");
    let length = tail.len();
    let cases = [
        format!("Content-Length: {length}\r\nTransfer-Encoding: chunked\r\n\r\n{tail}"),
        format!("Transfer-Encoding: chunked\r\nContent-Length: {length}\r\n\r\n{tail}"),
        format!("Content-Length: {length}\r\nTransfer-Encoding: xchunked\r\n\r\n{tail}"),
        format!("Content-Length: {length}\r\nTransfer-Encoding:  chunked\r\n\r\n{tail}"),
        format!("Content-Length: {length}\r\nTransfer-Encoding:\tchunked\r\n\r\n{tail}"),
        format!("Content-Length: {length}\r\nTransfer-Encoding : chunked\r\n\r\n{tail}"),
        format!("Content-Length: {length}\r\nTRANSFER-ENCODING: CHUNKED\r\n\r\n{tail}"),
        format!("Content-Length: {length}\r\nTransfer-Encoding: chunked, identity\r\n\r\n{tail}"),
        format!(
            "Content-Length: {length}\r\nTransfer-Encoding: chunked\r\n\
             Transfer-Encoding: identity\r\n\r\n{tail}"
        ),
        // Two lengths: one ends the body before the smuggled request.
        format!(
            "Content-Length: 0\r\nContent-Length: {}\r\n\r\n{smuggled}",
            smuggled.len()
        ),
        format!(
            "Content-Length: {}\r\nContent-Length: 0\r\n\r\n{smuggled}",
            smuggled.len()
        ),
    ];
    for headers in &cases {
        let request = format!(
            "POST /api/token/ HTTP/1.1\r\nHost: {}\r\n{headers}",
            site.domain
        );
        let (reply, closed) = exchange(site.server.http, request.as_bytes()).await;
        let seen = statuses(&reply);
        assert!(
            seen.len() <= 1 && seen.iter().all(|status| *status == 400),
            "{headers:?} answered {seen:?}: {reply}"
        );
        assert!(closed, "{headers:?}: connection left open");
    }
}

#[tokio::test]
async fn two_host_headers_are_a_bad_host() {
    let site = site(|_| {}).await;
    for hosts in [
        format!("Host: {0}\r\nHost: {0}\r\n", site.domain),
        format!("Host: {}\r\nHost: other.test\r\n", site.domain),
    ] {
        let request = format!("GET /api/me/ HTTP/1.1\r\n{hosts}Connection: close\r\n\r\n");
        let (reply, _) = exchange(site.server.http, request.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
        assert!(reply.contains(r#""code":"bad_host""#), "{reply}");
    }
}

#[tokio::test]
async fn http2_rapid_reset_leaves_the_server_serving() {
    let site = site(|_| {}).await;
    let tcp = TcpStream::connect(site.server.http).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);

    // Open streams and reset each at once, 2,000 times or until refused.
    let url = format!("http://{}/api/posts/", site.domain);
    let bearer = format!("Bearer {}", site.token);
    let flood = async {
        let mut client = client;
        let mut opened = 0;
        for _ in 0..2000 {
            client = match client.ready().await {
                Ok(client) => client,
                Err(_) => break,
            };
            let request = http::Request::get(&url)
                .header("authorization", &bearer)
                .body(())
                .unwrap();
            let Ok((_, mut stream)) = client.send_request(request, false) else {
                break;
            };
            stream.send_reset(h2::Reason::CANCEL);
            opened += 1;
        }
        opened
    };
    let opened = tokio::time::timeout(Duration::from_secs(15), flood)
        .await
        .expect("the rapid-reset loop hung");
    let ended = tokio::time::timeout(ms(500), driver).await;
    eprintln!("rapid reset: {opened} streams opened and reset; connection {ended:?}");

    // A fresh connection, either protocol, is served.
    assert_eq!(site.read_h2().await, 200);
    assert_eq!(site.read().await.0, 200);
    within_pool_settles(&site).await;
}

/// Waits (at most 6 s) for every pooled connection to be back.
async fn within_pool_settles(site: &Site) {
    for _ in 0..120 {
        let status = site.server.app.pool.status();
        if status.available == status.size && status.waiting == 0 {
            return;
        }
        tokio::time::sleep(ms(50)).await;
    }
    panic!("pool never settled: {:?}", site.server.app.pool.status());
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One raw HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = (payload.len() as u32).to_be_bytes();
    let mut frame = length[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An HPACK string length (7-bit prefix, no Huffman coding).
fn hpack_length(length: usize, out: &mut Vec<u8>) {
    if length < 127 {
        out.push(length as u8);
        return;
    }
    out.push(127);
    let mut rest = length - 127;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// A header field "literal without indexing, new name".
fn hpack_literal(name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0];
    hpack_length(name.len(), &mut out);
    out.extend_from_slice(name.as_bytes());
    hpack_length(value.len(), &mut out);
    out.extend_from_slice(value.as_bytes());
    out
}

/// What became of a raw HTTP/2 flood.
#[derive(Debug)]
struct Flood {
    frames_sent: usize,
    bytes_back: usize,
    closed_by_server: bool,
}

/// Sends the preface, then `frames` in batches as fast as the server
/// takes them (bounded to 10 s), reading whatever it answers.
async fn flood(addr: SocketAddr, frames: impl Iterator<Item = Vec<u8>>) -> Flood {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let drain = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            match tokio::time::timeout(ms(1500), reader.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (total, true),
                Ok(Ok(read)) => total += read,
                Err(_) => return (total, false),
            }
        }
    });
    let mut opening = PREFACE.to_vec();
    opening.extend(frame(0x4, 0, 0, &[]));
    let started = Instant::now();
    let mut sent = 0;
    let mut batch = opening;
    for next in frames {
        batch.extend(next);
        sent += 1;
        if batch.len() >= 16 * 1024 {
            let write = tokio::time::timeout(ms(2000), writer.write_all(&batch)).await;
            if !matches!(write, Ok(Ok(()))) || started.elapsed() > Duration::from_secs(10) {
                break;
            }
            batch.clear();
        }
    }
    let _ = tokio::time::timeout(ms(2000), writer.write_all(&batch)).await;
    let (bytes_back, closed_by_server) = drain.await.unwrap();
    Flood {
        frames_sent: sent,
        bytes_back,
        closed_by_server,
    }
}

#[tokio::test]
async fn http2_ping_settings_and_continuation_floods_leave_the_server_serving() {
    let site = site(|_| {}).await;
    let addr = site.server.http;

    let pings = (0..20_000u64).map(|n| frame(0x6, 0, 0, &n.to_be_bytes()));
    let outcome = flood(addr, pings).await;
    eprintln!("PING flood: {outcome:?}");
    assert!(outcome.bytes_back > 0, "no answer to the PING flood at all");
    assert_eq!(site.read_h2().await, 200);

    // SETTINGS_MAX_CONCURRENT_STREAMS = 100, over and over.
    let settings = (0..20_000).map(|_| frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]));
    let outcome = flood(addr, settings).await;
    eprintln!("SETTINGS flood: {outcome:?}");
    assert_eq!(site.read_h2().await, 200);

    // A HEADERS frame never ended, then endless CONTINUATION frames.
    let mut block = vec![0x82, 0x86, 0x84, 0x01];
    hpack_length(site.domain.len(), &mut block);
    block.extend_from_slice(site.domain.as_bytes());
    let headers = frame(0x1, 0x1, 1, &block);
    let filler = "c".repeat(1000);
    let continuations = (0..10_000).map(|n| {
        let field = hpack_literal(&format!("x-flood-{n}"), &filler);
        frame(0x9, 0, 1, &field)
    });
    let outcome = flood(addr, std::iter::once(headers).chain(continuations)).await;
    eprintln!("CONTINUATION flood: {outcome:?}");
    assert!(
        outcome.closed_by_server && outcome.frames_sent < 10_001,
        "the server took the whole CONTINUATION flood: {outcome:?}"
    );
    assert_eq!(site.read_h2().await, 200);
    assert_eq!(site.read().await.0, 200);
}

#[tokio::test]
async fn past_the_connection_limit_clients_get_a_clear_503() {
    let site = site(|config| config.server.max_connections = 5).await;
    let gauge = site
        .server
        .app
        .metrics
        .connections
        .with_label_values(&["http"]);
    // The harness client's pooled connection from the login counts too.
    let client_connections = gauge.get();
    let mut idle = Vec::new();
    for _ in client_connections..5 {
        idle.push(TcpStream::connect(site.server.http).await.unwrap());
    }
    for _ in 0..100 {
        if gauge.get() == 5 {
            break;
        }
        tokio::time::sleep(ms(20)).await;
    }
    assert_eq!(gauge.get(), 5);

    // The sixth is told why, then closed.
    let mut sixth = TcpStream::connect(site.server.http).await.unwrap();
    let (reply, closed) = read_until_closed(&mut sixth, Duration::from_secs(3)).await;
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("retry-after: 1"),
        "{reply}"
    );
    assert!(
        reply.contains("Service temporarily unavailable."),
        "{reply}"
    );
    assert!(closed);
    assert!(site.server.app.metrics.connections_refused.get() >= 1);

    // Once they leave, new connections are served again.
    drop(idle);
    let fresh = reqwest::Client::new();
    let url = site.server.url("/api/posts/");
    let mut served = false;
    for _ in 0..100 {
        let sent = fresh
            .get(&url)
            .header("Host", &site.domain)
            .bearer_auth(&site.token)
            .send()
            .await;
        if sent.is_ok_and(|response| response.status() == 200) {
            served = true;
            break;
        }
        tokio::time::sleep(ms(20)).await;
    }
    assert!(served, "never served again after the idle connections left");
}

/// PBKDF2 iterations that take about `target` here, measured.
fn iterations_for(target: Duration) -> u32 {
    let probe = 50_000u32;
    let started = Instant::now();
    let _ = botora::auth::password::make("probe-password", probe);
    let took = started.elapsed().as_secs_f64().max(1e-4);
    let wanted = f64::from(probe) * target.as_secs_f64() / took;
    wanted.clamp(10_000.0, 5_000_000.0) as u32
}

#[tokio::test]
async fn a_login_flood_cannot_starve_reads() {
    let iterations = iterations_for(ms(50));
    let site = site(|config| {
        config.auth.max_concurrent_hashes = Some(1);
        config.auth.password_iterations = iterations;
        config.auth.hash_queue_timeout = ms(200);
    })
    .await;
    // The flooder's hash has the configured cost, so no login rehashes.
    let flooder = user(&site.fixtures, &site.schema, "flooder", "flood-pw-1", false).await;
    let sql = format!(
        "UPDATE \"{}\".auth_user SET password = $1 WHERE id = $2",
        site.schema
    );
    let hash = botora::auth::password::make("flood-pw-1", iterations);
    let conn = site.fixtures.get().await.unwrap();
    let flooder = i32::try_from(flooder).unwrap();
    conn.execute(&sql, &[&hash, &flooder]).await.unwrap();
    let started = Instant::now();
    site.server
        .login(&site.domain, "flooder", "flood-pw-1")
        .await;
    eprintln!(
        "login flood: {iterations} iterations, one login {:?}",
        started.elapsed()
    );

    // Fifty logins at once.
    let body = json!({"username": "flooder", "password": "flood-pw-1"});
    let mut logins = JoinSet::new();
    for _ in 0..50 {
        let request = site
            .server
            .client
            .post(site.server.url("/api/token/"))
            .header("Host", &site.domain)
            .json(&body);
        logins.spawn(async move {
            let response = request.send().await.unwrap();
            let retry_after = response.headers().contains_key("retry-after");
            (response.status().as_u16(), retry_after)
        });
    }

    // Reads go on meanwhile, each quick.
    let mut reads = Vec::new();
    let mut answers = Vec::new();
    while !logins.is_empty() && reads.len() < 200 {
        reads.push(site.read().await);
        while let Some(done) = logins.try_join_next() {
            answers.push(done.unwrap());
        }
        tokio::time::sleep(ms(20)).await;
    }
    while let Some(done) = logins.join_next().await {
        answers.push(done.unwrap());
    }
    for (status, retry_after) in &answers {
        assert!(
            *status == 200 || (*status == 503 && *retry_after),
            "a login answered {status}"
        );
    }
    for (status, took) in &reads {
        assert_eq!(*status, 200);
        assert!(*took < ms(1000), "a read took {took:?} during the flood");
    }
    let refused = site.server.app.metrics.hash_rejected.get();
    eprintln!(
        "login flood: {} reads, {refused} of 50 logins refused",
        reads.len()
    );
    assert!(refused >= 1, "no login was refused: hashing is not bounded");
}
