//! What each signal test serves: a database of its own prepared with the
//! CLI, a directory with certificates, and the `config.toml` it rewrites.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use rustls::pki_types::CertificateDer;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::common::ENV_OVERRIDES;
use crate::{DOMAIN, PASSWORD, SCHEMA, USERNAME};

/// The log filter of the child: reload outcomes, warnings and errors, but
/// not the access log, which would flood the captured stderr.
const LOG_LEVEL: &str = "warn,botora::reload=info";
fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database name replaced by `name` (query string kept).
fn url_with_database(url: &str, name: &str) -> String {
    let (location, query) = match url.split_once('?') {
        Some((location, query)) => (location, format!("?{query}")),
        None => (url, String::new()),
    };
    let (server, _) = location
        .rsplit_once('/')
        .expect("DATABASE_URL names a database");
    format!("{server}/{name}{query}")
}

async fn connect_server() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&server_url(), tokio_postgres::NoTls)
        .await
        .expect("cannot reach PostgreSQL: set DATABASE_URL or run scripts/test.sh");
    tokio::spawn(connection);
    client
}

/// A database of this test's own, dropped with the guard.
struct Database {
    name: String,
    url: String,
}

impl Database {
    async fn create(label: &str) -> Database {
        let name = format!("botora_t_signals_{}_{label}", std::process::id());
        let client = connect_server().await;
        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        for sql in [drop, format!("CREATE DATABASE {name}")] {
            client.batch_execute(&sql).await.expect(&sql);
        }
        let url = url_with_database(&server_url(), &name);
        Database { name, url }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, so a thread runs its own.
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async { connect_server().await.batch_execute(&statement).await })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop database {}: {dropped:?}", self.name);
        }
    }
}

/// A port that was free a moment ago.
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address")
}

/// A certificate and its key on disk, and the certificate as DER.
#[derive(Clone)]
pub(crate) struct Cert {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) der: CertificateDer<'static>,
}

/// A fresh self-signed certificate for `DOMAIN`, written into `dir`.
pub(crate) fn make_cert(dir: &Path, label: &str) -> Cert {
    let made = rcgen::generate_simple_self_signed(vec![DOMAIN.to_owned()]).expect("rcgen");
    let cert = dir.join(format!("{label}.pem"));
    let key = dir.join(format!("{label}.key"));
    std::fs::write(&cert, made.cert.pem()).expect("write certificate");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key");
    Cert {
        cert,
        key,
        der: made.cert.der().clone(),
    }
}

pub(crate) fn quote(text: impl AsRef<str>) -> String {
    toml::Value::String(text.as_ref().to_owned()).to_string()
}

/// What the tests vary in `config.toml`; the rest is fixed.
pub(crate) struct ConfigFile {
    pub(crate) path: PathBuf,
    pub(crate) http: SocketAddr,
    pub(crate) https: SocketAddr,
    pub(crate) admin: SocketAddr,
    database_url: String,
    pub(crate) cert: Cert,
    /// JWT key ids, the first signing; each key's secret follows from its id.
    pub(crate) kids: Vec<usize>,
    shutdown_grace: &'static str,
}

impl ConfigFile {
    pub(crate) fn text(&self) -> String {
        let keys: String = self.kids.iter().map(|&kid| key_table(kid)).collect();
        format!(
            "# Written by tests/signals/site.rs.\n\
             [server]\n\
             listen = \"{http}\"\n\
             shutdown_grace = \"{grace}\"\n\
             \n\
             [tls]\n\
             listen = \"{https}\"\n\
             default_cert = {cert}\n\
             default_key = {key}\n\
             handshake_timeout = \"5s\"\n\
             \n\
             [database]\n\
             url = {url}\n\
             pool_size = 4\n\
             \n\
             [admin]\n\
             listen = \"{admin}\"\n\
             tenant_label_cap = 4\n\
             \n\
             [tenancy]\n\
             public_hosts = [\"admin.test\"]\n\
             \n\
             [api]\n\
             page_size = 20\n\
             \n\
             [log]\n\
             level = {level}\n\
             \n\
             [auth]\n\
             password_iterations = 1000\n\
             {keys}",
            http = self.http,
            https = self.https,
            admin = self.admin,
            grace = self.shutdown_grace,
            cert = quote(self.cert.cert.to_string_lossy()),
            key = quote(self.cert.key.to_string_lossy()),
            url = quote(&self.database_url),
            level = quote(LOG_LEVEL),
        )
    }

    /// Replaces the file in one rename, so the server never reads half.
    pub(crate) fn write_text(&self, text: &str) {
        let fresh = self.path.with_extension("toml.new");
        std::fs::write(&fresh, text).expect("write config");
        std::fs::rename(&fresh, &self.path).expect("rename config");
    }

    pub(crate) fn write(&self) {
        self.write_text(&self.text());
    }
}

/// One `[[auth.keys]]` entry.
fn key_table(kid: usize) -> String {
    format!(
        "\n[[auth.keys]]\nkid = \"k{kid}\"\nalgorithm = \"HS256\"\n\
         secret = \"signals-test-secret-number-{kid}-of-the-rotation\"\n"
    )
}

/// 1-based number of the first line of `text` starting with `prefix`.
pub(crate) fn line_of(text: &str, prefix: &str) -> usize {
    let index = text.lines().position(|line| line.starts_with(prefix));
    index.unwrap_or_else(|| panic!("no line starts with {prefix:?}")) + 1
}

/// A database prepared with the CLI, a directory and a written config.
pub(crate) struct Site {
    pub(crate) file: ConfigFile,
    pub(crate) dir: PathBuf,
    _database: Database,
}

impl Site {
    pub(crate) async fn prepare(label: &str, shutdown_grace: &'static str) -> Site {
        let database = Database::create(label).await;
        let dir =
            std::env::temp_dir().join(format!("botora-signals-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = ConfigFile {
            path: dir.join("config.toml"),
            http: free_port(),
            https: free_port(),
            admin: free_port(),
            database_url: database.url.clone(),
            cert: make_cert(&dir, "cert-0"),
            kids: vec![0],
            shutdown_grace,
        };
        file.write();
        let site = Site {
            file,
            dir,
            _database: database,
        };

        // The schema, a tenant on trial and its user, as an operator would.
        site.cli(&["migrate"], None).await;
        let tenant = ["tenant", "create", "--schema", SCHEMA, "--name", "Blog"];
        let on_trial = ["--domain", DOMAIN, "--on-trial"];
        site.cli(&[&tenant[..], &on_trial[..]].concat(), None).await;
        let user = ["user", "create", USERNAME, "--tenant", SCHEMA];
        site.cli(&user, Some(PASSWORD)).await;
        site
    }

    /// Runs `botora --config <file> ARGS`, with `input` on its stdin.
    pub(crate) async fn cli(&self, args: &[&str], input: Option<&str>) {
        let mut child = botora(&self.file.path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn botora");
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(text) = input {
            stdin
                .write_all(format!("{text}\n").as_bytes())
                .await
                .expect("stdin");
        }
        drop(stdin);
        let output = child.wait_with_output().await.expect("botora ran");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "botora {args:?} failed: {stderr}");
    }

    /// A new certificate in force from the next reload.
    pub(crate) fn new_cert(&mut self, label: &str) -> Cert {
        self.file.cert = make_cert(&self.dir, label);
        self.file.cert.clone()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `botora --config PATH` with nothing from the environment overriding it.
pub(crate) fn botora(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_botora"));
    command.arg("--config").arg(config).env("NO_COLOR", "1");
    for name in ENV_OVERRIDES {
        command.env_remove(name);
    }
    command
}
