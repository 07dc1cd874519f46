//! Integration fixtures: a fresh PostgreSQL database per test binary, and
//! a real Botora server per test on ports chosen by the OS.
//!
//! `DATABASE_URL` names the server (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test binary creates
//! its own database on it, so binaries run in parallel without meeting.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use botora::app::App;
use botora::config::Config;
use botora::db::{self, Scope, migrate};
use botora::server::{self, Server};
use botora::tenant::store::{self, NewTenant, Rules};
use chrono::NaiveDate;
use serde_json::Value;

/// The environment that would override a config file written by a test
/// for a `botora` child process; such tests remove it.
pub const ENV_OVERRIDES: [&str; 6] = [
    "BOTORA_CONFIG",
    "BOTORA_DATABASE_URL",
    "BOTORA_SIGNING_KEY",
    "BOTORA_LISTEN",
    "BOTORA_ADMIN_LISTEN",
    "RUST_LOG",
];

/// Iterations for test password hashes: fast, still real PBKDF2.
pub const TEST_ITERATIONS: u32 = 1_000;
/// Signing key of test tokens.
pub const TEST_SIGNING_KEY: &str = "test-signing-key-that-is-long-enough-for-hs256";

fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The URL of this binary's own database, created and migrated once.
pub fn database_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        std::thread::spawn(create_database)
            .join()
            .expect("creating the test database panicked")
    })
    .clone()
}

fn create_database() -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let binary = std::env::current_exe().unwrap();
        let stem = binary
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .replace('-', "_");
        let name = format!("botora_t_{}_{}", stem.to_lowercase(), std::process::id());
        let (client, connection) = tokio_postgres::connect(&server_url(), tokio_postgres::NoTls)
            .await
            .expect("cannot reach PostgreSQL: set DATABASE_URL or run scripts/test.sh");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let mut config: tokio_postgres::Config = server_url().parse().unwrap();
        config.dbname(&name);
        let url = url_with_db(&server_url(), &name);
        let mut database = Config::default().database;
        database.url = url.clone();
        let pool = db::new_pool(&database).unwrap();
        migrate::migrate_public(&pool)
            .await
            .expect("public migrations");
        url
    })
}

fn url_with_db(url: &str, name: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("DATABASE_URL has a database part");
    let base = base.split('?').next().unwrap_or(base);
    format!("{base}/{name}")
}

/// A config for tests: this binary's database, ports 0, fast hashing.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.database.url = database_url();
    config.database.checkout_timeout = Duration::from_secs(2);
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace = Duration::from_secs(5);
    config.auth.signing_key = Some(TEST_SIGNING_KEY.into());
    config.auth.password_iterations = TEST_ITERATIONS;
    config.tenancy.public_hosts = vec!["admin.test".into()];
    config
}

/// A running server on its own ports.
pub struct TestServer {
    pub server: Option<Server>,
    pub app: Arc<App>,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub client: reqwest::Client,
}

impl TestServer {
    /// Starts a server with the test config.
    pub async fn start() -> TestServer {
        Self::start_with(test_config()).await
    }

    /// Starts a server with `config`.
    pub async fn start_with(config: Config) -> TestServer {
        let app = App::new(PathBuf::from("test.toml"), config).expect("app");
        live_apps().push(Arc::downgrade(&app));
        let server = server::start(Arc::clone(&app)).await.expect("server");
        let http = server.http_addr;
        let admin = server.admin_addr;
        wait_listening(&app).await;
        TestServer {
            server: Some(server),
            app,
            http,
            admin,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// `http://<server>/path` with `Host: host`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// A GET to `path` on `host`.
    pub async fn get(&self, host: &str, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(self.url(path)).header("Host", host);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        into_json(request.send().await.unwrap()).await
    }

    /// A request with a JSON body.
    pub async fn send(
        &self,
        method: &str,
        host: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("Host", host)
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        into_json(request.send().await.unwrap()).await
    }

    /// Logs in and returns (access, refresh).
    pub async fn login(&self, host: &str, username: &str, password: &str) -> (String, String) {
        let body = serde_json::json!({"username": username, "password": password});
        let (status, answer) = self.send("POST", host, "/api/token/", None, &body).await;
        assert_eq!(status, 200, "login of {username} on {host}: {answer}");
        let access = answer["access"].as_str().unwrap().to_owned();
        let refresh = answer["refresh"].as_str().unwrap().to_owned();
        (access, refresh)
    }

    /// Stops the server gracefully.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// Status and JSON body (Null when the body is empty or not JSON).
pub async fn into_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Waits until the LISTEN task serves from the cache (at most 5 s).
pub async fn wait_listening(app: &App) {
    for _ in 0..100 {
        if app.metrics.listen_connected.get() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("LISTEN connection did not come up");
}

/// The servers of this test binary, for fixtures that must wait for them.
fn live_apps() -> std::sync::MutexGuard<'static, Vec<Weak<App>>> {
    static APPS: Mutex<Vec<Weak<App>>> = Mutex::new(Vec::new());
    let mut apps = APPS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    apps.retain(|app| app.strong_count() > 0);
    apps
}

/// Waits until every running server of this binary has `domain` in its
/// domain directory (at most 5 s each). A domain written by SQL reaches a
/// server through its notification, a few milliseconds later; API.md
/// allows a second. Fixtures wait so that a test's first request does not
/// race the notification.
pub async fn wait_for_domain(domain: &str) {
    let apps: Vec<Arc<App>> = live_apps().iter().filter_map(Weak::upgrade).collect();
    for app in apps {
        for _ in 0..500 {
            // `None`: not listening, so every host is looked up anyway.
            if app.resolver.directory().knows(domain) != Some(false) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A pool on this binary's database, for fixtures and checks.
pub fn pool() -> deadpool_postgres::Pool {
    let mut database = test_config().database;
    database.pool_size = 4;
    db::new_pool(&database).unwrap()
}

/// A name unique within this process, for tenants and domains.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// An active tenant (on trial) with one domain; returns (schema, domain).
pub async fn tenant(pool: &deadpool_postgres::Pool, prefix: &str) -> (String, String) {
    let schema = unique(prefix);
    let domain = format!("{}.test", schema.replace('_', "-"));
    tenant_with(pool, &schema, &domain, true, None).await;
    (schema, domain)
}

/// A tenant with the given state.
pub async fn tenant_with(
    pool: &deadpool_postgres::Pool,
    schema: &str,
    domain: &str,
    on_trial: bool,
    paid_until: Option<NaiveDate>,
) {
    let new = NewTenant {
        schema_name: schema.into(),
        name: format!("Tenant {schema}"),
        paid_until,
        on_trial,
        domains: vec![domain.into()],
    };
    store::create(pool, &new, &Rules::default())
        .await
        .expect("tenant");
    wait_for_domain(domain).await;
}

/// A user with a password; returns its id.
pub async fn user(
    pool: &deadpool_postgres::Pool,
    schema: &str,
    username: &str,
    password: &str,
    staff: bool,
) -> i64 {
    let encoded = botora::auth::password::make(password, TEST_ITERATIONS);
    let scope = Scope::begin(pool, schema).await.unwrap();
    let row = scope
        .client()
        .query_one(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
                 is_staff, is_active, date_joined)
             VALUES ($1, $2, $3::varchar, 'First', 'Last', $3::varchar || '@example.com', $4, true, now()) RETURNING id::int8",
            &[&encoded, &(schema == "public"), &username, &staff],
        )
        .await
        .unwrap();
    scope.commit().await.unwrap();
    row.get(0)
}

/// Posts `count` posts titled `"<title> <n>"` by `author`.
pub async fn posts(
    pool: &deadpool_postgres::Pool,
    schema: &str,
    author: i64,
    title: &str,
    count: i64,
) {
    let scope = Scope::begin(pool, schema).await.unwrap();
    scope
        .client()
        .execute(
            "INSERT INTO blog_post (title, body, author_id, created_at, updated_at)
             SELECT $1 || ' ' || n, 'body', $2::int8, now() - n * interval '1 second', now()
             FROM generate_series(1, $3::int8) AS n",
            &[&title, &author, &count],
        )
        .await
        .unwrap();
    scope.commit().await.unwrap();
}

/// Waits until every pooled connection is back and none of the server's
/// sessions is inside a transaction.
pub async fn assert_pool_clean(server: &TestServer) {
    let fixtures = pool();
    let conn = fixtures.get().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = server.app.pool.status();
        let stuck: i64 = conn
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                 AND application_name = 'botora' AND state LIKE 'idle in transaction%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if status.available == status.size && stuck == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pool not clean: {status:?}, {stuck} sessions idle in a transaction"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
