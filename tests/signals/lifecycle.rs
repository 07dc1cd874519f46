//! Start and stop under signals: SIGTERM with requests in flight, and a
//! SIGHUP that comes while the server is still starting.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::clients::Http1;
use crate::harness::{Botora, catches};
use crate::site::Site;
use crate::{DEADLINE, DOMAIN, PASSWORD, USERNAME};

/// Opens a plain connection and sends a login's head and half its body.
async fn half_login(addr: SocketAddr) -> (Http1<TcpStream>, String) {
    let body = json!({"username": USERNAME, "password": PASSWORD}).to_string();
    let mut conn = Http1::new(TcpStream::connect(addr).await.expect("connect"));
    let head = format!(
        "POST /api/token/ HTTP/1.1\r\nHost: {DOMAIN}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    let start = format!("{head}{first}");
    conn.stream.write_all(start.as_bytes()).await.expect("send");
    (conn, rest.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_and_exits_within_the_grace() {
    const GRACE: Duration = Duration::from_secs(2);
    let site = Site::prepare("sigterm", "2s").await;
    let mut server = Botora::start(&site).await;

    // Two logins in flight: one finishes after SIGTERM, one never does.
    let (mut slow, rest) = half_login(server.http).await;
    let (stuck, _) = half_login(server.http).await;
    let deadline = Instant::now() + DEADLINE;
    while server.sample("botora_requests_in_flight").await != Some(2.0) {
        assert!(Instant::now() < deadline, "the logins never began");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // SIGTERM: the listener closes at once.
    server.signal("TERM").await;
    let termed = Instant::now();
    while TcpStream::connect(server.http).await.is_ok() {
        assert!(termed.elapsed() < DEADLINE, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The slow request completes and is answered.
    slow.stream
        .write_all(rest.as_bytes())
        .await
        .expect("send the rest");
    let answer = slow.answer().await.expect("an answer after SIGTERM");
    assert_eq!(answer.status, 200, "{answer:?}");
    let body: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
    assert!(body["access"].is_string(), "{body}");

    // The stuck one holds the process for the grace, no longer; exit 0.
    let status = server.exit_within(GRACE + Duration::from_secs(2)).await;
    let took = termed.elapsed();
    eprintln!("exited {took:?} after SIGTERM with {status}");
    assert!(status.success(), "exit status {status}");
    // Timers start a little after kill(1) returns, and exit takes a moment.
    let early = GRACE - Duration::from_millis(300);
    let late = GRACE + Duration::from_secs(1);
    assert!(took >= early, "exited after {took:?}, before the grace");
    assert!(took <= late, "exited after {took:?}, past the grace");
    drop(stuck);

    // Nothing alarming was logged on the way out.
    let log = server.log();
    assert!(!log.contains("ERROR"), "{log}");
}

/// `serve` registers its signal handlers before it builds anything, so a
/// SIGHUP that comes while it is still starting (a `systemctl reload` just
/// after start) is one reload once the reload task runs, never the default
/// action (death). Start-up is too quick to pin the signal inside it from
/// outside every time; the test sends it the moment the handler exists,
/// which before the fix was only after the listeners opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_while_starting_is_a_reload_not_a_death() {
    let site = Site::prepare("early", "5s").await;
    let mut server = Botora::spawn(&site);
    let deadline = Instant::now() + DEADLINE;
    while !catches(server.pid, 1) {
        assert!(
            Instant::now() < deadline,
            "no SIGHUP handler: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    server.signal("HUP").await;

    server.wait_ready().await;
    server.wait_reloads((1, 0)).await;
    assert!(server.child.try_wait().expect("try_wait").is_none());
}
