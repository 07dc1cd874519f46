//! `botora-baseline`: the floor that Botora's `GET /api/posts/` is measured
//! against, and (with `--fixed`) the ceiling of plain HTTP on the machine.
//!
//! The floor does the same database work as Botora's post list (a count and
//! the 20 newest posts with their authors, two prepared statements sent in
//! one round trip) and writes the same JSON, but nothing else: no tenant
//! state check, no authentication, no transaction or `search_path` (the
//! schema is named in the SQL), no metrics and no logging.
//!
//! Hosts are mapped to schemas once each, into a plain `HashMap`. Botora
//! caches that mapping too, so a query per request would make the floor
//! slower than the thing it bounds; the map is the cheapest cache there is.
//! Unknown hosts are not remembered (`404` after a query each time): the
//! not-found flood is compared with `--fixed`, never with this mode.
//!
//! With `--tls-cert` and `--tls-key` it speaks HTTPS only, through the same
//! rustls configuration as Botora's HTTPS listener (provider, versions,
//! ALPN), so the `tls` scenario compares like with like.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Parser;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::future::try_join;
use http::header::{CONTENT_TYPE, HOST, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use serde::{Serialize, Serializer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_postgres::NoTls;
use tokio_rustls::TlsAcceptor;

/// Posts per page, as Botora's default `api.page_size`.
const PAGE_SIZE: i64 = 20;
/// Connections in the pool, as Botora's default `database.pool_size`.
const POOL_SIZE: usize = 16;
/// What `--fixed` answers to every request.
const FIXED_BODY: &[u8] = br#"{"detail":"fixed"}"#;

const SCHEMA_OF_HOST: &str = "SELECT c.schema_name::text FROM public.tenants_domain d \
     JOIN public.tenants_client c ON c.id = d.tenant_id WHERE d.domain = $1";

type Body = Full<Bytes>;

/// The baseline servers.
#[derive(Debug, Parser)]
#[command(name = "botora-baseline")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8001")]
    listen: SocketAddr,
    /// PostgreSQL URL of a database Botora migrated.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/botora")]
    database_url: String,
    /// Answer a fixed small JSON body without touching the database.
    #[arg(long)]
    fixed: bool,
    /// PEM certificate: serve HTTPS (needs `--tls-key`).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// The two statements of one schema, its name quoted into the SQL.
struct Queries {
    count: String,
    page: String,
}

impl Queries {
    fn for_schema(schema: &str) -> Queries {
        let schema = postgres_protocol::escape::escape_identifier(schema);
        let count = format!("SELECT count(*) FROM {schema}.blog_post");
        let page = format!(
            "SELECT p.id::int8, p.title::text, p.body, u.id::int8, u.username::text, \
             p.created_at, p.updated_at FROM {schema}.blog_post p \
             JOIN {schema}.auth_user u ON u.id = p.author_id \
             ORDER BY p.created_at DESC, p.id DESC OFFSET $1 LIMIT $2"
        );
        Queries { count, page }
    }
}

/// What every request of the floor shares.
struct Floor {
    pool: Pool,
    hosts: RwLock<HashMap<String, Arc<Queries>>>,
}

/// Why a request of the floor failed; each becomes a bare status.
#[derive(Debug, thiserror::Error)]
enum FloorError {
    #[error("no usable Host header")]
    BadHost,
    #[error("no tenant has host {0:?}")]
    UnknownHost(String),
    #[error("no pooled connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("cannot encode the page: {0}")]
    Json(#[from] serde_json::Error),
}

impl FloorError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadHost => StatusCode::BAD_REQUEST,
            Self::UnknownHost(_) => StatusCode::NOT_FOUND,
            Self::Pool(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Query(_) | Self::Json(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[derive(Serialize)]
struct Page<'a> {
    count: i64,
    next: Option<String>,
    previous: Option<String>,
    results: Vec<Post<'a>>,
}

#[derive(Serialize)]
struct Post<'a> {
    id: i64,
    title: &'a str,
    body: &'a str,
    author: Author<'a>,
    #[serde(serialize_with = "rfc3339")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    updated_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct Author<'a> {
    id: i64,
    username: &'a str,
}

impl<'a> Post<'a> {
    fn from_row(row: &'a tokio_postgres::Row) -> Post<'a> {
        Post {
            id: row.get(0),
            title: row.get(1),
            body: row.get(2),
            author: Author {
                id: row.get(3),
                username: row.get(4),
            },
            created_at: row.get(5),
            updated_at: row.get(6),
        }
    }
}

fn rfc3339<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Micros, true))
}

impl Floor {
    fn new(database_url: &str) -> anyhow::Result<Floor> {
        let config: tokio_postgres::Config = database_url.parse()?;
        let recycling = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = Manager::from_config(config, NoTls, recycling);
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .build()?;
        Ok(Floor {
            pool,
            hosts: RwLock::new(HashMap::new()),
        })
    }

    /// The statements for `host`, from the map or, the first time, the
    /// domain table.
    async fn queries(&self, host: &str) -> Result<Arc<Queries>, FloorError> {
        if let Some(found) = self.read_hosts().get(host) {
            return Ok(Arc::clone(found));
        }
        let conn = self.pool.get().await?;
        let statement = conn.prepare_cached(SCHEMA_OF_HOST).await?;
        let row = conn.query_opt(&statement, &[&host]).await?;
        let row = row.ok_or_else(|| FloorError::UnknownHost(host.to_owned()))?;
        let queries = Arc::new(Queries::for_schema(row.get(0)));
        let mut hosts = self.hosts.write().unwrap_or_else(|e| e.into_inner());
        hosts.insert(host.to_owned(), Arc::clone(&queries));
        Ok(queries)
    }

    fn read_hosts(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Queries>>> {
        self.hosts.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Page 1 of `host`'s posts as Botora writes it.
    async fn posts(&self, host: &str, authority: &str, path: &str) -> Result<Bytes, FloorError> {
        let queries = self.queries(host).await?;

        // The count and the page in one round trip, as Botora sends them.
        let conn = self.pool.get().await?;
        let count = conn.prepare_cached(&queries.count).await?;
        let page = conn.prepare_cached(&queries.page).await?;
        let (count, rows) = try_join(
            conn.query_one(&count, &[]),
            conn.query(&page, &[&0i64, &PAGE_SIZE]),
        )
        .await?;
        drop(conn);

        let count: i64 = count.get(0);
        let next = (PAGE_SIZE < count).then(|| format!("http://{authority}{path}?page=2"));
        let page = Page {
            count,
            next,
            previous: None,
            results: rows.iter().map(Post::from_row).collect(),
        };
        Ok(Bytes::from(serde_json::to_vec(&page)?))
    }
}

/// The Host header as given, and its lower-case name without the port.
fn host_of(request: &Request<Incoming>) -> Result<(&str, String), FloorError> {
    let raw = request.headers().get(HOST).ok_or(FloorError::BadHost)?;
    let raw = raw.to_str().map_err(|_| FloorError::BadHost)?;
    let name = raw.rsplit_once(':').map_or(raw, |(name, _)| name);
    Ok((raw, name.to_ascii_lowercase()))
}

fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let value = HeaderValue::from_static("application/json");
    response.headers_mut().insert(CONTENT_TYPE, value);
    response
}

async fn serve_posts(
    floor: Arc<Floor>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let answer = match host_of(&request) {
        Ok((authority, host)) => floor.posts(&host, authority, request.uri().path()).await,
        Err(error) => Err(error),
    };
    Ok(match answer {
        Ok(body) => json(StatusCode::OK, body),
        Err(error) => {
            let body = serde_json::json!({ "detail": error.to_string() }).to_string();
            json(error.status(), Bytes::from(body))
        }
    })
}

async fn serve_fixed(_: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    Ok(json(StatusCode::OK, Bytes::from_static(FIXED_BODY)))
}

/// Botora's own HTTPS configuration around one certificate.
fn tls_acceptor(cert: PathBuf, key: PathBuf) -> anyhow::Result<TlsAcceptor> {
    let config = botora::config::TlsConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        default_cert: cert,
        default_key: key,
        certs: Vec::new(),
        cert_dir: None,
        handshake_timeout: std::time::Duration::from_secs(10),
    };
    let store = botora::listen::tls::CertStore::load(&config)?;
    let resolver = Arc::new(botora::listen::tls::Resolver::new(store));
    Ok(TlsAcceptor::from(botora::listen::tls::server_config(
        resolver,
    )?))
}

/// Accepts connections forever, each served by hyper's auto builder.
async fn run(args: Args) -> anyhow::Result<()> {
    let floor = match args.fixed {
        true => None,
        false => Some(Arc::new(Floor::new(&args.database_url)?)),
    };
    let acceptor = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
        _ => None,
    };
    let listener = TcpListener::bind(args.listen).await?;
    let builder = Builder::new(TokioExecutor::new());
    loop {
        // A failed accept (a reset, a full descriptor table) is skipped.
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (builder, floor, acceptor) = (builder.clone(), floor.clone(), acceptor.clone());
        tokio::spawn(async move {
            // A failed handshake or a client that goes away is not worth a word.
            match acceptor {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve(builder, floor, stream).await;
                    }
                }
                None => serve(builder, floor, stream).await,
            }
        });
    }
}

/// Serves one connection: the floor's posts, or the fixed body.
async fn serve<IO>(builder: Builder<TokioExecutor>, floor: Option<Arc<Floor>>, io: IO)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let _ = match floor {
        Some(floor) => {
            let service = service_fn(move |r| serve_posts(Arc::clone(&floor), r));
            builder.serve_connection(io, service).await
        }
        None => builder.serve_connection(io, service_fn(serve_fixed)).await,
    };
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}
