//! Config reload (what SIGHUP runs) against a real file and a real server:
//! a valid change takes effect for the next request, an invalid file is
//! refused with its path and line while the old config keeps serving, open
//! connections survive, and settings that need a restart are reported.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use botora::app::App;
use botora::config::Config;
use botora::reload::{ReloadError, restart_only_changes};
use botora::server::Server;
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The public host of the written config.
const PUBLIC: &str = "admin.test";
const PASSWORD: &str = "writer-pw-1";

/// What the tests vary in the file; the rest is `test_config()`'s values.
#[derive(Clone)]
struct File {
    page_size: u32,
    public_hosts: Vec<String>,
    listen: String,
    /// Appended as is (a `[tls]` table, say).
    tail: String,
}

impl File {
    fn new(page_size: u32) -> File {
        File {
            page_size,
            public_hosts: vec![PUBLIC.to_owned()],
            listen: "127.0.0.1:0".to_owned(),
            tail: String::new(),
        }
    }

    fn text(&self) -> String {
        let hosts: Vec<String> = self.public_hosts.iter().map(|h| quote(h)).collect();
        let expected = test_config();
        format!(
            "# Written by tests/reload.rs.\n\
             [server]\n\
             listen = {listen}\n\
             shutdown_grace = \"5s\"\n\
             \n\
             [database]\n\
             url = {url}\n\
             checkout_timeout = \"2s\"\n\
             \n\
             [admin]\n\
             listen = \"127.0.0.1:0\"\n\
             \n\
             [auth]\n\
             signing_key = {key}\n\
             password_iterations = {iterations}\n\
             \n\
             [tenancy]\n\
             public_hosts = [{hosts}]\n\
             \n\
             [api]\n\
             page_size = {page_size}\n\
             {tail}",
            listen = quote(&self.listen),
            url = quote(&database_url()),
            key = quote(TEST_SIGNING_KEY),
            iterations = expected.auth.password_iterations,
            hosts = hosts.join(", "),
            page_size = self.page_size,
            tail = self.tail,
        )
    }
}

fn quote(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A fresh directory under the system's temporary one.
fn temp_dir(label: &str) -> PathBuf {
    let name = format!("botora-{label}-{}-{}", std::process::id(), unique(""));
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A server started from a config file that the test rewrites.
struct Reloadable {
    app: Arc<App>,
    server: Option<Server>,
    path: PathBuf,
    dir: PathBuf,
    client: reqwest::Client,
}

impl Reloadable {
    async fn start(file: &File) -> Reloadable {
        let dir = temp_dir("reload");
        let path = dir.join("config.toml");
        std::fs::write(&path, file.text()).unwrap();
        let config = botora::config::load(&path).expect("the first file loads");
        let app = App::new(path.clone(), config).expect("app");
        let server = botora::server::start(Arc::clone(&app))
            .await
            .expect("server");
        wait_listening(&app).await;
        Reloadable {
            app,
            server: Some(server),
            path,
            dir,
            client: reqwest::Client::new(),
        }
    }

    fn http(&self) -> std::net::SocketAddr {
        self.server.as_ref().unwrap().http_addr
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
    }

    fn reload(&self) -> Result<Vec<&'static str>, ReloadError> {
        botora::reload::reload(&self.app, None)
    }

    /// Reloads counted as (success, failure).
    fn outcomes(&self) -> (u64, u64) {
        let reloads = &self.app.metrics.reloads;
        (
            reloads.with_label_values(&["success"]).get(),
            reloads.with_label_values(&["failure"]).get(),
        )
    }

    async fn get(&self, host: &str, path: &str, token: Option<&str>) -> (u16, Value) {
        let url = format!("http://{}{path}", self.http());
        let mut request = self.client.get(url).header("Host", host);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        into_json(request.send().await.unwrap()).await
    }

    async fn login(&self, host: &str, username: &str) -> String {
        let url = format!("http://{}/api/token/", self.http());
        let body = json!({"username": username, "password": PASSWORD});
        let request = self.client.post(url).header("Host", host).json(&body);
        let (status, answer) = into_json(request.send().await.unwrap()).await;
        assert_eq!(status, 200, "{answer}");
        answer["access"].as_str().unwrap().to_owned()
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A tenant with five posts; returns its domain and a token of the writer.
async fn blog(server: &Reloadable) -> (String, String) {
    let pool = pool();
    let (schema, domain) = tenant(&pool, "blog").await;
    let author = user(&pool, &schema, "writer", PASSWORD, false).await;
    posts(&pool, &schema, author, "post", 5).await;
    let token = server.login(&domain, "writer").await;
    (domain, token)
}

/// How many posts the first page holds, and its `next` link.
async fn first_page(server: &Reloadable, domain: &str, token: &str) -> (usize, Value) {
    let (status, page) = server.get(domain, "/api/posts/", Some(token)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["count"], 5);
    (
        page["results"].as_array().unwrap().len(),
        page["next"].clone(),
    )
}

/// 1-based line of the first line of `text` that starts with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    let index = text.lines().position(|line| line.starts_with(prefix));
    index.unwrap_or_else(|| panic!("no line starts with {prefix:?}")) + 1
}

#[tokio::test]
async fn a_valid_change_applies_to_the_next_request() {
    let mut file = File::new(10);
    let server = Reloadable::start(&file).await;
    let (domain, token) = blog(&server).await;
    assert_eq!(first_page(&server, &domain, &token).await, (5, Value::Null));

    file.page_size = 2;
    server.write(&file.text());
    let restart = server.reload().expect("a valid file reloads");
    assert!(
        restart.is_empty(),
        "nothing here needs a restart: {restart:?}"
    );
    let next = json!(format!("http://{domain}/api/posts/?page=2"));
    assert_eq!(first_page(&server, &domain, &token).await, (2, next));
    assert_eq!(server.outcomes(), (1, 0));
    let text = server.app.metrics.render();
    assert!(
        text.contains("botora_config_reloads_total{outcome=\"success\"} 1"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_invalid_file_is_refused_and_the_old_config_stays() {
    let file = File::new(2);
    let server = Reloadable::start(&file).await;
    let (domain, token) = blog(&server).await;
    let good = file.text();
    let path = server.path.display().to_string();

    // Each broken file, and the line its error must name.
    let syntax = good.replace("page_size = 2", "page_size = ");
    let unknown = good.replace("[api]\n", "[api]\ncolour = \"blue\"\n");
    let timezone = good.replace(
        "[tenancy]\n",
        "[tenancy]\ntimezone = \"Mars/Olympus_Mons\"\n",
    );
    let zero = good.replace("page_size = 2", "page_size = 0");
    let cases = [
        (syntax.clone(), line_of(&syntax, "page_size"), "syntax"),
        (unknown.clone(), line_of(&unknown, "colour"), "colour"),
        (
            timezone.clone(),
            line_of(&timezone, "timezone"),
            "Mars/Olympus_Mons",
        ),
        (zero.clone(), line_of(&zero, "page_size"), "page_size"),
    ];
    for (count, (text, line, hint)) in cases.iter().enumerate() {
        server.write(text);
        let error = server.reload().expect_err("a broken file must be refused");
        let shown = error.to_string();
        let prefix = format!("{path}:{line}:");
        assert!(
            shown.starts_with(&prefix),
            "{shown:?} should start {prefix:?}"
        );
        if *hint != "syntax" {
            assert!(shown.contains(hint), "{shown:?} should name {hint:?}");
        }

        // The old page size is still in force, and the failure counted.
        assert_eq!(first_page(&server, &domain, &token).await.0, 2);
        assert_eq!(server.outcomes(), (0, count as u64 + 1));
    }

    // A file that is gone is refused with its path.
    std::fs::remove_file(&server.path).unwrap();
    let shown = server.reload().unwrap_err().to_string();
    assert!(shown.starts_with(&path), "{shown}");
    assert_eq!(server.outcomes(), (0, 5));
    let text = server.app.metrics.render();
    assert!(
        text.contains("botora_config_reloads_total{outcome=\"failure\"} 5"),
        "{text}"
    );

    // Fixed, it loads again.
    server.write(&good.replace("page_size = 2", "page_size = 3"));
    server.reload().expect("the fixed file reloads");
    assert_eq!(first_page(&server, &domain, &token).await.0, 3);
    assert_eq!(server.outcomes(), (1, 5));
    server.stop().await;
}

/// Writes `request` and reads one response (with `Content-Length`) back
/// from the same connection.
async fn exchange(stream: &mut TcpStream, request: &str) -> (u16, Value) {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut data = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).into_owned();
            let length = content_length(&head);
            if data.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                let body = serde_json::from_slice(&data[end + 4..end + 4 + length]);
                return (status, body.unwrap_or(Value::Null));
            }
        }
        let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buffer));
        let n = read.await.expect("no answer in 3 s").expect("read failed");
        assert!(n > 0, "the server closed the connection");
        data.extend_from_slice(&buffer[..n]);
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, value)| value.trim().parse().unwrap())
}

#[tokio::test]
async fn keep_alive_connections_survive_a_reload() {
    let mut file = File::new(4);
    let server = Reloadable::start(&file).await;
    let (domain, token) = blog(&server).await;

    // A raw keep-alive connection and a pooled client, both used once.
    let mut stream = TcpStream::connect(server.http()).await.unwrap();
    let request = format!(
        "GET /api/posts/ HTTP/1.1\r\nHost: {domain}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let (status, page) = exchange(&mut stream, &request).await;
    assert_eq!(
        (status, page["results"].as_array().unwrap().len()),
        (200, 4)
    );
    assert_eq!(first_page(&server, &domain, &token).await.0, 4);
    let open = server.app.metrics.connections.with_label_values(&["http"]);
    assert_eq!(open.get(), 2);

    file.page_size = 1;
    server.write(&file.text());
    server.reload().expect("reload");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(open.get(), 2, "a connection was closed by the reload");

    // The same connection answers, with the new config.
    let (status, page) = exchange(&mut stream, &request).await;
    assert_eq!(
        (status, page["results"].as_array().unwrap().len()),
        (200, 1)
    );
    assert_eq!(first_page(&server, &domain, &token).await.0, 1);
    assert_eq!(open.get(), 2, "the client had to open a new connection");
    server.stop().await;
}

#[tokio::test]
async fn a_new_listen_address_is_reported_as_needing_a_restart() {
    let mut file = File::new(10);
    let server = Reloadable::start(&file).await;
    let (domain, token) = blog(&server).await;

    file.listen = "127.0.0.1:1".to_owned();
    file.page_size = 3;
    server.write(&file.text());
    let restart = server.reload().expect("reload");
    assert_eq!(restart, vec!["server.listen"]);

    // Everything else applied; the old address still serves.
    assert_eq!(first_page(&server, &domain, &token).await.0, 3);
    assert_eq!(server.outcomes(), (1, 0));
    server.stop().await;
}

#[tokio::test]
async fn public_hosts_change_on_reload() {
    let mut file = File::new(10);
    let server = Reloadable::start(&file).await;
    let not_found = json!({"detail": "Tenant not found.", "code": "tenant_not_found"});
    let ops = "ops-reload.test";
    assert_eq!(
        server.get(ops, "/api/tenants/", None).await,
        (404, not_found.clone())
    );
    assert_eq!(server.get(PUBLIC, "/api/tenants/", None).await.0, 401);

    // Added: it answers as a public host.
    file.public_hosts.push(ops.to_owned());
    server.write(&file.text());
    assert_eq!(server.reload().expect("reload"), Vec::<&str>::new());
    assert_eq!(server.get(ops, "/api/tenants/", None).await.0, 401);
    assert_eq!(server.get(PUBLIC, "/api/tenants/", None).await.0, 401);

    // Removed: it is an unknown host again.
    file.public_hosts = vec![ops.to_owned()];
    server.write(&file.text());
    server.reload().expect("reload");
    assert_eq!(
        server.get(PUBLIC, "/api/tenants/", None).await,
        (404, not_found)
    );
    assert_eq!(server.get(ops, "/api/tenants/", None).await.0, 401);
    server.stop().await;
}

/// The `[tls]` table for a certificate pair.
fn tls_table(cert: &Path, key: &Path) -> String {
    format!(
        "\n[tls]\nlisten = \"127.0.0.1:0\"\ndefault_cert = {}\ndefault_key = {}\n",
        quote(&cert.display().to_string()),
        quote(&key.display().to_string()),
    )
}

/// A client trusting `pem` that finds `name` on `addr`.
fn tls_client(pem: &[u8], name: &str, addr: std::net::SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap())
        .tls_built_in_root_certs(false)
        .resolve(name, addr)
        .build()
        .unwrap()
}

#[tokio::test]
async fn certificates_are_replaced_on_reload() {
    let pool = pool();
    let (_, first) = tenant(&pool, "cert").await;
    let (_, second) = tenant(&pool, "cert").await;
    let certs = temp_dir("certs");
    let write = |dir: &str, names: &[&String]| {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        botora::listen::tls::write_self_signed(&certs.join(dir), &names).unwrap()
    };
    let (old_cert, old_key) = write("old", &[&first]);
    let (new_cert, new_key) = write("new", &[&first, &second]);
    let old_pem = std::fs::read(&old_cert).unwrap();
    let new_pem = std::fs::read(&new_cert).unwrap();

    let mut file = File::new(10);
    file.tail = tls_table(&old_cert, &old_key);
    let server = Reloadable::start(&file).await;
    let https = server.server.as_ref().unwrap().https_addr.expect("https");
    let url = |name: &str| format!("https://{name}:{}/api/me/", https.port());
    let old_client = tls_client(&old_pem, &first, https);
    let response = old_client.get(url(&first)).send().await.unwrap();
    assert_eq!(response.status(), 401);

    // A file naming a missing certificate is refused, naming it.
    let missing = certs.join("missing.pem");
    file.tail = tls_table(&missing, &new_key);
    server.write(&file.text());
    let shown = server.reload().unwrap_err().to_string();
    assert!(shown.contains(&missing.display().to_string()), "{shown}");

    // The new pair serves new handshakes once reloaded.
    file.tail = tls_table(&new_cert, &new_key);
    server.write(&file.text());
    assert_eq!(server.reload().expect("reload"), Vec::<&str>::new());
    let new_client = tls_client(&new_pem, &second, https);
    let response = new_client.get(url(&second)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let fresh_old = tls_client(&old_pem, &first, https);
    assert!(
        fresh_old.get(url(&first)).send().await.is_err(),
        "the old certificate is still served"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&certs);
}

/// A config and a copy changed by `change`.
fn changed(change: impl FnOnce(&mut Config)) -> (Config, Config) {
    let old = test_config();
    let mut new = old.clone();
    change(&mut new);
    (old, new)
}

#[test]
fn restart_only_changes_names_each_setting() {
    type Change = fn(&mut Config);
    let cases: [(&str, Change); 12] = [
        ("server.listen", |c| {
            c.server.listen = "127.0.0.1:1".parse().unwrap()
        }),
        ("server.header_read_timeout", |c| {
            c.server.header_read_timeout = Duration::from_secs(1)
        }),
        ("server.max_connections", |c| c.server.max_connections = 7),
        ("server.max_headers", |c| c.server.max_headers = 7),
        ("database.url", |c| {
            c.database.url = "postgres://x@h/other".into()
        }),
        ("database.pool_size", |c| c.database.pool_size = 3),
        ("database.checkout_timeout", |c| {
            c.database.checkout_timeout = Duration::from_secs(9)
        }),
        ("database.statement_timeout", |c| {
            c.database.statement_timeout = Duration::from_secs(9)
        }),
        ("admin.listen", |c| {
            c.admin.listen = "127.0.0.1:2".parse().unwrap()
        }),
        ("log.format", |c| {
            c.log.format = botora::config::LogFormat::Json
        }),
        ("auth.max_concurrent_hashes", |c| {
            c.auth.max_concurrent_hashes = Some(1)
        }),
        ("auth.user_cache_ttl", |c| {
            c.auth.user_cache_ttl = Duration::from_secs(9)
        }),
    ];
    for (name, change) in cases {
        let (old, new) = changed(change);
        assert_eq!(restart_only_changes(&old, &new), vec![name]);
    }

    // Several at once are all named, in a stable order.
    let (old, new) = changed(|c| {
        c.server.listen = "127.0.0.1:1".parse().unwrap();
        c.database.pool_size = 3;
    });
    let names = restart_only_changes(&old, &new);
    assert_eq!(names, vec!["server.listen", "database.pool_size"]);
    let (old, same) = changed(|_| {});
    assert!(restart_only_changes(&old, &same).is_empty());
}

#[test]
fn restart_only_changes_covers_the_tls_listener() {
    let tls = botora::config::TlsConfig {
        listen: "127.0.0.1:8443".parse().unwrap(),
        default_cert: "a.pem".into(),
        default_key: "a.key".into(),
        certs: vec![],
        cert_dir: None,
        handshake_timeout: Duration::from_secs(5),
    };
    let (old, new) = changed(|c| c.tls = Some(tls.clone()));
    assert_eq!(restart_only_changes(&old, &new), vec!["tls.listen"]);

    // New certificates and timeouts on the same address reload in place.
    let mut with_tls = test_config();
    with_tls.tls = Some(tls.clone());
    let mut swapped = with_tls.clone();
    if let Some(tls) = swapped.tls.as_mut() {
        tls.default_cert = "b.pem".into();
        tls.handshake_timeout = Duration::from_secs(1);
    }
    assert!(restart_only_changes(&with_tls, &swapped).is_empty());
}

#[test]
fn reloadable_settings_need_no_restart() {
    let (old, new) = changed(|c| {
        c.api.page_size = 3;
        c.tenancy.public_hosts = vec!["ops.test".into()];
        c.tenancy.timezone = "Europe/Paris".into();
        c.tenancy.positive_ttl = Duration::from_secs(1);
        c.server.max_body_bytes = 10;
        c.server.request_timeout = Duration::from_secs(1);
        c.server.shutdown_grace = Duration::from_secs(1);
        c.auth.password_iterations = 5;
        c.auth.leeway = Duration::from_secs(3);
        c.log.level = "debug".into();
    });
    assert_eq!(restart_only_changes(&old, &new), Vec::<&str>::new());
}

#[test]
fn restart_only_changes_names_every_restart_only_setting() {
    let (old, new) = changed(|c| c.database.connect_timeout = Duration::from_secs(9));
    assert_eq!(
        restart_only_changes(&old, &new),
        vec!["database.connect_timeout"]
    );
    let (old, new) = changed(|c| c.admin.tenant_label_cap = 5);
    assert_eq!(
        restart_only_changes(&old, &new),
        vec!["admin.tenant_label_cap"]
    );
}
