//! Secrets (database password, signing key, passwords, tokens, hashes)
//! that must never reach a log line, `botora check` or a response body.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use botora::db::Scope;
use deadpool_postgres::Pool;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;

use crate::common::{ENV_OVERRIDES, database_url, pool, tenant, user};
use crate::support::{DEADLINE, claims, eventually, forge_hmac};

const DB_SECRET: &str = "dbpw-Q7x2-never-log-this";
const SIGNING_SECRET: &str = "signing-key-Z9k4-never-log-this-either";
const USER_SECRET: &str = "user-pw-M3v8-never-log";
const WRONG_SECRET: &str = "wrong-pw-T5c1-never-log";

/// This binary's database URL with a password in it, and the password.
/// Without trust authentication an invented password cannot connect: then
/// the URL is the plain one and the signing key stands in as the secret.
async fn url_with_password() -> (String, String) {
    let url = database_url();
    let plain = (url.clone(), SIGNING_SECRET.to_owned());
    let Some((scheme, rest)) = url.split_once("://") else {
        return plain;
    };
    let Some((userinfo, location)) = rest.split_once('@') else {
        return plain;
    };
    if let Some((_, password)) = userinfo.split_once(':') {
        return (url.clone(), password.to_owned());
    }
    let with = format!("{scheme}://{userinfo}:{DB_SECRET}@{location}");
    match tokio_postgres::connect(&with, tokio_postgres::NoTls).await {
        Ok(_) => (with, DB_SECRET.to_owned()),
        Err(error) => {
            eprintln!("security: {error}; checking the signing key only");
            plain
        }
    }
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// `botora serve` as a child process with JSON debug logs, its output
/// collected as it comes; killed when dropped.
struct Served {
    child: tokio::process::Child,
    log: Arc<Mutex<String>>,
    http: SocketAddr,
    admin: SocketAddr,
    dir: PathBuf,
    config: PathBuf,
    /// The config file it started with.
    good: String,
}

impl Served {
    async fn start(label: &str, url: &str) -> Served {
        let dir = std::env::temp_dir().join(format!("botora-sec-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.toml");
        let (http, admin) = (free_port(), free_port());
        let good = format!(
            "[server]\nlisten = \"{http}\"\n\n[admin]\nlisten = \"{admin}\"\n\n\
             [database]\nurl = \"{url}\"\npool_size = 4\n\n\
             [tenancy]\npublic_hosts = [\"admin.test\"]\n\n\
             [log]\nlevel = \"debug\"\nformat = \"json\"\n\n\
             [auth]\nsigning_key = \"{SIGNING_SECRET}\"\npassword_iterations = 1000\n"
        );
        std::fs::write(&config, &good).unwrap();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_botora"));
        command.arg("--config").arg(&config).arg("serve");
        for name in ENV_OVERRIDES {
            command.env_remove(name);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        tokio::spawn(collect(child.stdout.take().unwrap(), Arc::clone(&log)));
        tokio::spawn(collect(child.stderr.take().unwrap(), Arc::clone(&log)));
        let served = Served {
            child,
            log,
            http,
            admin,
            dir,
            config,
            good,
        };
        let listening = "botora_tenant_listen_connected";
        let running = &served;
        eventually("the child server", || async move {
            running.metric(listening).await == 1.0
        })
        .await;
        served
    }

    /// A request to `path` on `host`: status and body text.
    async fn send(
        &self,
        method: &str,
        host: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, String) {
        let url = format!("http://{}{path}", self.http);
        let mut request = reqwest::Client::new()
            .request(method.parse().unwrap(), url)
            .header("Host", host);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        // A JSON string is sent as it is: the raw body, well-formed or not.
        if let Some(body) = body {
            let text = match body {
                Value::String(raw) => raw,
                other => other.to_string(),
            };
            request = request
                .header("Content-Type", "application/json")
                .body(text);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// The value of one series of `/metrics`, 0 when absent.
    async fn metric(&self, series: &str) -> f64 {
        let url = format!("http://{}/metrics", self.admin);
        let Ok(response) = reqwest::get(url).await else {
            return 0.0;
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
    }

    async fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        let mut kill = tokio::process::Command::new("kill");
        let status = kill.args([&format!("-{name}"), &pid]).status().await;
        assert!(status.unwrap().success(), "kill -{name} {pid}");
    }

    /// Rewrites the config, sends SIGHUP and waits for the outcome `want`
    /// (`success` or `failure`) to be counted once more.
    async fn reload(&self, text: &str, outcome: &str) {
        let series = format!("botora_config_reloads_total{{outcome=\"{outcome}\"}}");
        let before = self.metric(&series).await;
        std::fs::write(&self.config, text).unwrap();
        self.signal("HUP").await;
        let series = series.as_str();
        eventually("the reload", || async move {
            self.metric(series).await == before + 1.0
        })
        .await;
    }

    /// Stops the server with SIGTERM; returns everything it wrote.
    async fn stop(mut self) -> String {
        self.signal("TERM").await;
        let exited = tokio::time::timeout(DEADLINE, self.child.wait()).await;
        assert!(exited.expect("the child stops").unwrap().success());
        std::fs::remove_dir_all(&self.dir).ok();
        let log = self.log.lock().unwrap().clone();
        assert!(
            log.lines().all(|line| line.starts_with('{')),
            "not JSON lines: {log}"
        );
        log
    }
}

async fn collect(mut stream: impl tokio::io::AsyncRead + Unpin, log: Arc<Mutex<String>>) {
    let mut buffer = [0u8; 8192];
    while let Ok(n @ 1..) = stream.read(&mut buffer).await {
        let text = String::from_utf8_lossy(&buffer[..n]);
        log.lock().unwrap().push_str(&text);
    }
}

/// `botora --config PATH check`: (success, output).
fn botora_check(config: &Path) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_botora"));
    for name in ENV_OVERRIDES {
        command.env_remove(name);
    }
    let output = command.arg("--config").arg(config).arg("check").output();
    let output = output.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A token for `user_id` on `schema` signed with the child's key.
fn child_token(user_id: i64, schema: &str, lifetime: i64) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let claims = claims("access", user_id, schema, lifetime);
    forge_hmac(&header, &claims, SIGNING_SECRET.as_bytes())
}

/// Three tenants: sound, refusing the title "boom" (a 500) and missing its
/// schema (a 503); returns (schema, domain) of each and the writer's id.
async fn leak_tenants(pool: &Pool) -> ([(String, String); 3], i64) {
    let sound = tenant(pool, "leak").await;
    let broken = tenant(pool, "leak_broken").await;
    let gone = tenant(pool, "leak_gone").await;
    let writer = user(pool, &sound.0, "writer", USER_SECRET, false).await;
    user(pool, &broken.0, "writer", USER_SECRET, false).await;
    let sql = format!(
        "ALTER TABLE {}.blog_post ADD CONSTRAINT no_boom CHECK (title <> 'boom');
         DROP SCHEMA {} CASCADE",
        broken.0, gone.0
    );
    pool.get().await.unwrap().batch_execute(&sql).await.unwrap();
    ([sound, broken, gone], writer)
}

/// Config files a reload must refuse, each with the secrets in it.
fn refused_configs(good: &str, url: &str) -> [String; 4] {
    let hosts = "public_hosts = [\"admin.test\"]";
    let credentials = url.split_once('@').map_or(url, |(head, _)| head);
    let key_line = format!("signing_key = \"{SIGNING_SECRET}\"");
    [
        good.replace(hosts, &format!("{hosts}\ntimezone = \"Mars/Base\"")),
        good.replace(url, &format!("{credentials}@127.0.0.1:notaport/x")),
        good.replace(&key_line, &format!("signing_key = \"{SIGNING_SECRET}")),
        good.replace(&key_line, &format!("signing_key = {SIGNING_SECRET}")),
    ]
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_or_a_body() {
    let pool = pool();
    let (url, db_secret) = url_with_password().await;
    let (
        [
            (schema, domain),
            (broken, broken_domain),
            (gone, gone_domain),
        ],
        writer,
    ) = leak_tenants(&pool).await;
    let served = Served::start("leak", &url).await;
    let mut bodies = Vec::new();

    // Logins, right and wrong.
    let login = json!({"username": "writer", "password": USER_SECRET});
    let (status, text) = served
        .send("POST", &domain, "/api/token/", None, Some(login))
        .await;
    assert_eq!(status, 200, "{text}");
    let tokens: Value = serde_json::from_str(&text).unwrap();
    let access = tokens["access"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh"].as_str().unwrap().to_owned();
    let wrong = json!({"username": "writer", "password": WRONG_SECRET});
    let answer = served
        .send("POST", &domain, "/api/token/", None, Some(wrong))
        .await;
    assert_eq!(answer.0, 401);
    bodies.push(answer.1);

    // Tokens: good, then refused in four ways.
    let claims_part = access.split('.').nth(1).unwrap();
    let other_key = forge_hmac(
        &json!({"alg": "HS256"}),
        &claims("access", writer, &schema, 300),
        b"another-key",
    );
    let refusals = [
        other_key,
        child_token(writer, &schema, -10),
        format!("eyJhbGciOiJub25lIn0.{claims_part}."),
        "garbage".into(),
        refresh.clone(),
    ];
    let answer = served
        .send("GET", &domain, "/api/me/", Some(&access), None)
        .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    for token in &refusals {
        let answer = served
            .send("GET", &domain, "/api/me/", Some(token), None)
            .await;
        assert_eq!(answer.0, 401, "{}", answer.1);
        bodies.push(answer.1);
    }

    // A database error (500), a missing schema (503), bad JSON (400).
    let boom = json!({"title": "boom", "body": "boom"});
    let token = child_token(1, &broken, 300);
    let answer = served
        .send(
            "POST",
            &broken_domain,
            "/api/posts/",
            Some(&token),
            Some(boom),
        )
        .await;
    assert_eq!(
        answer,
        (500, r#"{"detail":"A server error occurred."}"#.into())
    );
    let token = child_token(1, &gone, 300);
    let answer = served
        .send("GET", &gone_domain, "/api/me/", Some(&token), None)
        .await;
    assert_eq!(answer.0, 503, "{}", answer.1);
    bodies.push(answer.1);
    let bad_json = format!("{{\"title\": \"{USER_SECRET}");
    let answer = served
        .send(
            "POST",
            &domain,
            "/api/posts/",
            Some(&access),
            Some(json!(bad_json)),
        )
        .await;
    assert_eq!(answer.0, 400, "{}", answer.1);
    assert!(answer.1.contains("JSON parse error"), "{}", answer.1);
    bodies.push(answer.1);

    // Refused reloads (each also through `botora check`), then a good one.
    let mut checks = Vec::new();
    let refused = refused_configs(&served.good, &url);
    for text in &refused {
        served.reload(text, "failure").await;
        checks.push(botora_check(&served.config));
    }
    served.reload(&served.good.clone(), "success").await;
    let log = served.stop().await;

    // The log says what happened...
    for expected in ["\"level\":\"DEBUG\"", "answering 500", "answering 503"] {
        assert!(log.contains(expected), "no {expected:?} in the log:\n{log}");
    }
    let reload_refused = log.matches("config reload refused").count();
    assert_eq!(reload_refused, refused.len(), "{log}");
    for (ok, output) in &checks {
        assert!(!ok && output.contains("config.toml"), "{output}");
    }

    // ...and holds no secret, nor do the answers.
    let secrets = [
        db_secret.as_str(),
        SIGNING_SECRET,
        USER_SECRET,
        WRONG_SECRET,
    ];
    for secret in secrets.iter().chain(&[access.as_str(), refresh.as_str()]) {
        let line = log.lines().find(|line| line.contains(secret));
        assert!(line.is_none(), "a log line holds {secret:?}: {line:?}");
        let check = checks.iter().find(|(_, output)| output.contains(secret));
        assert!(
            check.is_none(),
            "botora check printed {secret:?}: {check:?}"
        );
    }
    for secret in secrets {
        let body = bodies.iter().find(|body| body.contains(secret));
        assert!(body.is_none(), "a body holds {secret:?}: {body:?}");
    }
}

/// A login that rewrites an outdated hash must not log the new one: at
/// debug level, tokio-postgres logs every statement's parameters.
#[tokio::test]
async fn a_rehashed_password_never_reaches_the_debug_log() {
    let pool = pool();
    let (url, _) = url_with_password().await;
    let (schema, domain) = tenant(&pool, "rehash").await;
    let outdated = botora::auth::password::make(USER_SECRET, 500);
    let scope = Scope::begin(&pool, &schema).await.unwrap();
    scope
        .client()
        .execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                 email, is_staff, is_active, date_joined)
             VALUES ($1, false, 'legacy', '', '', '', false, true, now())",
            &[&outdated],
        )
        .await
        .unwrap();
    scope.commit().await.unwrap();
    let served = Served::start("rehash", &url).await;

    let login = json!({"username": "legacy", "password": USER_SECRET});
    let (status, text) = served
        .send("POST", &domain, "/api/token/", None, Some(login))
        .await;
    assert_eq!(status, 200, "{text}");
    let log = served.stop().await;

    // The hash was rewritten (1,000 iterations now), and is nowhere logged.
    let scope = Scope::begin(&pool, &schema).await.unwrap();
    let sql = "SELECT password::text FROM auth_user WHERE username = 'legacy'";
    let stored: String = scope.client().query_one(sql, &[]).await.unwrap().get(0);
    scope.commit().await.unwrap();
    assert!(stored.starts_with("pbkdf2_sha256$1000$"), "{stored}");
    let digest = stored.rsplit('$').next().unwrap();
    for secret in [stored.as_str(), digest, outdated.as_str(), USER_SECRET] {
        let line = log.lines().find(|line| line.contains(secret));
        assert!(line.is_none(), "a log line holds {secret:?}: {line:?}");
    }
}
