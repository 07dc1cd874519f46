//! SIGHUP under load: twenty reloads with new certificates and rotated
//! keys, refused files, and a storm of a hundred signals.

use std::time::{Duration, Instant};

use crate::DEADLINE;
use crate::clients::{Conn, Load, Protocol, assert_survived};
use crate::harness::{Botora, kid_of};
use crate::site::{Site, line_of, make_cert, quote};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_https_requests_survives_twenty_reloads() {
    const RELOADS: usize = 20;
    let mut site = Site::prepare("twenty", "5s").await;
    let server = Botora::start(&site).await;
    let first = server.login().await;
    assert_eq!(kid_of(&first), "k0");

    // Two clients of each protocol on long-lived connections.
    let protocols = [
        Protocol::Http2,
        Protocol::Http1,
        Protocol::Http2,
        Protocol::Http1,
    ];
    let load = Load::start(server.https, &site.file.cert.der, &protocols, &first).await;
    let mut opened = load.opened;
    let mut minted = vec![first];

    for round in 1..=RELOADS {
        // A new certificate, and key `round` signing with the two before it
        // still listed.
        let cert = site.new_cert(&format!("cert-{round}"));
        site.file.kids = (round.saturating_sub(2)..=round).rev().collect();
        site.file.write();
        server.signal("HUP").await;
        server.wait_reloads((round as u64, 0)).await;

        // A new handshake presents the new certificate (trusting it alone).
        let protocol = [Protocol::Http1, Protocol::Http2][round % 2];
        let (mut probe, leaf) = Conn::open(server.https, &cert.der, protocol)
            .await
            .unwrap_or_else(|e| panic!("round {round}: handshake with the new cert: {e}"));
        opened += 1;
        assert!(
            leaf == cert.der,
            "round {round}: the old certificate was served"
        );

        // A token minted now carries the new key and works.
        let token = server.login().await;
        assert_eq!(kid_of(&token), format!("k{round}"));
        assert_eq!(probe.posts(&token).await, Ok(()), "round {round}: new key");

        // Earlier keys work while listed; the one just dropped does not.
        for (kid, earlier) in minted.iter().enumerate().skip(round.saturating_sub(2)) {
            let outcome = probe.posts(earlier).await;
            assert_eq!(outcome, Ok(()), "round {round}: token of k{kid}");
        }
        if let Some(dropped) = round.checked_sub(3) {
            let answer = probe.get("/api/posts/", &minted[dropped]).await;
            let status = answer.map(|a| a.status);
            assert_eq!(
                status,
                Ok(401),
                "round {round}: token of unlisted k{dropped}"
            );
        }
        minted.push(token);
        load.use_tokens(minted[round - 1..].to_vec()).await;
    }

    // Every long-lived connection survived every reload.
    let (shared, mut conns) = load.stop().await;
    let newest = minted.last().expect("a token").clone();
    assert_survived(&mut conns, &newest).await;
    shared.tally.assert_clean("twenty reloads under HTTPS load");
    let handshakes = server
        .sample("botora_tls_handshakes_total{outcome=\"ok\"}")
        .await;
    assert_eq!(handshakes, Some(opened as f64), "a client reconnected");
    assert_eq!(server.reloads().await, (RELOADS as u64, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_is_refused_and_the_old_config_keeps_serving() {
    let mut site = Site::prepare("refused", "5s").await;
    let server = Botora::start(&site).await;
    let token = server.login().await;
    let serving = site.file.cert.clone();
    let good = site.file.text();
    let path = site.file.path.display().to_string();

    // Each broken file, the line its error names, and a part of the reason.
    let syntax = good.replace("page_size = 20", "page_size = ");
    let missing_path = site.dir.join("missing.pem");
    let missing = good.replace(
        &quote(serving.cert.to_string_lossy()),
        &quote(missing_path.to_string_lossy()),
    );
    let other = make_cert(&site.dir, "other");
    let mismatched = good.replace(
        &quote(serving.key.to_string_lossy()),
        &quote(other.key.to_string_lossy()),
    );
    let unknown = good.replace("[server]\n", "[server]\ncolour = \"blue\"\n");
    let missing_shown = missing_path.display().to_string();
    let cases = [
        (&syntax, line_of(&syntax, "page_size"), "expected"),
        (&missing, line_of(&missing, "[tls]"), missing_shown.as_str()),
        (
            &mismatched,
            line_of(&mismatched, "[tls]"),
            "does not match its key",
        ),
        (&unknown, line_of(&unknown, "colour"), "colour"),
    ];

    for (count, (text, line, reason)) in cases.into_iter().enumerate() {
        site.file.write_text(text);
        server.signal("HUP").await;
        server.wait_reloads((0, count as u64 + 1)).await;

        // The log line names the file, the line and the reason.
        let shown = server.wait_log_line("reload refused", count + 1).await;
        let at = format!("{path}:{line}: ");
        let after = shown.split_once(&at).map(|(_, after)| after);
        assert!(after.is_some(), "{shown:?} should name {at:?}");
        let after = after.unwrap_or_default();
        assert!(after.contains(reason), "{shown:?} should give {reason:?}");

        // The old certificate and keys keep serving.
        let (mut conn, leaf) = Conn::open(server.https, &serving.der, Protocol::Http2)
            .await
            .unwrap_or_else(|e| panic!("after {reason:?}: {e}"));
        assert!(
            leaf == serving.der,
            "after {reason:?} the certificate changed"
        );
        assert_eq!(conn.posts(&token).await, Ok(()), "after {reason:?}");
    }

    // Fixed, the file loads and its new certificate serves.
    let fixed = site.new_cert("fixed");
    site.file.write();
    server.signal("HUP").await;
    server.wait_reloads((1, 4)).await;
    let (mut conn, leaf) = Conn::open(server.https, &fixed.der, Protocol::Http1)
        .await
        .expect("handshake with the fixed certificate");
    assert!(leaf == fixed.der, "the fixed certificate is not served");
    assert_eq!(conn.posts(&token).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_a_hundred_sighups_in_a_second_leaves_it_serving() {
    let mut site = Site::prepare("storm", "5s").await;
    let mut server = Botora::start(&site).await;
    let token = server.login().await;
    let protocols = [Protocol::Http2, Protocol::Http1];
    let load = Load::start(server.https, &site.file.cert.der, &protocols, &token).await;

    // A hundred SIGHUPs, each by its own kill(1), one every 8 ms.
    let before = load.sent();
    let started = Instant::now();
    let mut pace = tokio::time::interval(Duration::from_millis(8));
    let mut kills = Vec::new();
    for _ in 0..100 {
        pace.tick().await;
        kills.push(server.kill("HUP").spawn().expect("spawn kill"));
    }
    for mut kill in kills {
        let status = kill.wait().await.expect("kill ran");
        assert!(status.success(), "kill failed");
    }
    let took = started.elapsed();
    let during = load.sent() - before;
    eprintln!("100 SIGHUPs sent in {took:?}, {during} requests meanwhile");
    assert!(took < Duration::from_secs(1), "the storm took {took:?}");
    assert!(during > 0, "no request flowed during the storm");

    // One more with a new certificate: once it serves, the storm is over.
    let marker = site.new_cert("after-storm");
    site.file.write();
    server.signal("HUP").await;
    let deadline = Instant::now() + DEADLINE;
    while Conn::open(server.https, &marker.der, Protocol::Http1)
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the last reload never took effect"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Nothing failed, nothing was dropped, and the process is alive.
    let (shared, mut conns) = load.stop().await;
    assert_survived(&mut conns, &token).await;
    shared.tally.assert_clean("storm of SIGHUPs");
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "botora died"
    );
    assert_eq!(server.admin_get("/healthz").await.0, 200);

    // The counters agree with each other and with the log.
    let (success, failure) = server.reloads().await;
    eprintln!("the storm caused {success} reloads");
    assert_eq!(failure, 0, "{}", server.log());
    assert!((1..=101).contains(&success), "{success} reloads");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (success, _) = server.reloads().await;
        let logged = server.log().matches("config reloaded").count() as u64;
        if logged == success {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{logged} logged, {success} counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
