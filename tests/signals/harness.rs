//! `botora serve` as a child process: started from a [`Site`], signalled
//! with kill(1), and watched through its stderr and its `/metrics`.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::site::{Site, botora};
use crate::{DEADLINE, DOMAIN, PASSWORD, USERNAME};

/// `botora serve` as a child process, killed when dropped.
pub(crate) struct Botora {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) http: SocketAddr,
    pub(crate) https: SocketAddr,
    admin: SocketAddr,
    /// Everything the child wrote to stderr so far.
    log: Arc<Mutex<String>>,
    pub(crate) web: reqwest::Client,
}

impl Botora {
    pub(crate) async fn start(site: &Site) -> Botora {
        let mut server = Botora::spawn(site);
        server.wait_ready().await;
        server
    }

    /// Starts `botora serve` without waiting for it to be ready.
    pub(crate) fn spawn(site: &Site) -> Botora {
        let mut child = botora(&site.file.path)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn botora serve");
        let pid = child.id().expect("pid");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        tokio::spawn(collect(stderr, Arc::clone(&log)));
        let web = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        Botora {
            child,
            pid,
            http: site.file.http,
            https: site.file.https,
            admin: site.file.admin,
            log,
            web,
        }
    }

    /// Healthy, LISTEN up, and catching SIGHUP and SIGTERM: only then is
    /// a signal a reload or a stop rather than the default (death).
    pub(crate) async fn wait_ready(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("botora exited with {status}: {}", self.log());
            }
            let handlers = catches(self.pid, 1) && catches(self.pid, 15);
            if handlers && self.sample("botora_tenant_listen_connected").await == Some(1.0) {
                return;
            }
            assert!(Instant::now() < deadline, "not ready: {}", self.log());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// `kill -SIGNAL PID` for this process, ready to run.
    pub(crate) fn kill(&self, signal: &str) -> Command {
        let mut command = Command::new("kill");
        command.arg(format!("-{signal}")).arg(self.pid.to_string());
        command
    }

    /// Sends `signal` (`HUP`, `TERM`) with kill(1).
    pub(crate) async fn signal(&self, signal: &str) {
        let status = self.kill(signal).status().await.expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid);
    }

    pub(crate) async fn admin_get(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{path}", self.admin);
        let response = self.web.get(url).send().await.expect("admin listener");
        let status = response.status().as_u16();
        (status, response.text().await.expect("admin body"))
    }

    /// The value of one series (`name{labels}` as rendered), if present.
    pub(crate) async fn sample(&self, series: &str) -> Option<f64> {
        let url = format!("http://{}/metrics", self.admin);
        let text = self.web.get(url).send().await.ok()?.text().await.ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|value| value.trim().parse().expect("a number"))
    }

    /// Reloads counted as (success, failure).
    pub(crate) async fn reloads(&self) -> (u64, u64) {
        let count = |outcome: &str| format!("botora_config_reloads_total{{outcome=\"{outcome}\"}}");
        let success = self.sample(&count("success")).await.unwrap_or(0.0);
        let failure = self.sample(&count("failure")).await.unwrap_or(0.0);
        (success as u64, failure as u64)
    }

    /// Waits until the reload counters read exactly `expected`.
    pub(crate) async fn wait_reloads(&self, expected: (u64, u64)) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let seen = self.reloads().await;
            if seen == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "reloads (success, failure) {seen:?}, expected {expected:?}: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `count` stderr lines contain `part`; returns the last.
    pub(crate) async fn wait_log_line(&self, part: &str, count: usize) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let log = self.log();
            let mut found = log.lines().filter(|line| line.contains(part));
            if let Some(line) = found.nth(count - 1) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "not {count} lines with {part:?}: {log}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// An access token for the tenant's user, over plain HTTP.
    pub(crate) async fn login(&self) -> String {
        let url = format!("http://{}/api/token/", self.http);
        let body = json!({"username": USERNAME, "password": PASSWORD});
        let request = self.web.post(url).header("Host", DOMAIN).json(&body);
        let response = request.send().await.expect("login");
        assert_eq!(response.status(), 200, "login refused");
        let answer: serde_json::Value = response.json().await.expect("login body");
        answer["access"].as_str().expect("access token").to_owned()
    }

    /// Waits for the child to exit, at most `limit`.
    pub(crate) async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.expect("wait"),
            Err(_) => panic!("botora still running after {limit:?}: {}", self.log()),
        }
    }
}

impl Drop for Botora {
    fn drop(&mut self) {
        // kill_on_drop stops the child; a failed test also shows its log.
        if std::thread::panicking() {
            eprintln!("--- botora stderr ---\n{}", self.log());
        }
    }
}

/// Appends every line of `stderr` to `log`.
async fn collect(stderr: tokio::process::ChildStderr, log: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut log = log.lock().expect("log");
        log.push_str(&line);
        log.push('\n');
    }
}

/// Whether process `pid` has a handler installed for signal number `signal`
/// (the `SigCgt` mask of `/proc/PID/status`).
pub(crate) fn catches(pid: u32, signal: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    mask & (1 << (signal - 1)) != 0
}

pub(crate) fn unix_now() -> f64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.expect("a clock after 1970").as_secs_f64()
}

/// The `kid` in a token's header.
pub(crate) fn kid_of(token: &str) -> String {
    let header = jsonwebtoken::decode_header(token).expect("a JWT");
    header.kid.expect("a kid")
}
