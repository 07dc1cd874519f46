//! Building the deadpool-postgres pool and one-off connections.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::DatabaseConfig;

/// Why a pool or connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `database.url` does not parse.
    #[error("database.url is not a PostgreSQL URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// The pool builder refused the settings.
    #[error("cannot build the connection pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    /// The database could not be reached.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] tokio_postgres::Error),
}

/// The libpq config of `database`, with the connect and statement timeouts
/// applied.
pub fn pg_config(database: &DatabaseConfig) -> Result<tokio_postgres::Config, SetupError> {
    let mut pg: tokio_postgres::Config = database.url.parse().map_err(SetupError::Url)?;
    pg.connect_timeout(database.connect_timeout);
    let ms = database.statement_timeout.as_millis();
    pg.options(format!("-c statement_timeout={ms}"));
    pg.application_name("botora");
    Ok(pg)
}

/// A pool for tools and fixtures. Connections open lazily.
pub fn new_pool(database: &DatabaseConfig) -> Result<Pool, SetupError> {
    build_pool(database, pg_config(database)?)
}

/// The request pool. Its sessions' own `search_path` is `pg_catalog`
/// alone, so a statement that ran outside a [`super::Scope`] by mistake
/// finds no tenant's tables and no `public` table: it fails instead of
/// reading the wrong schema. Connections open lazily, so a database that
/// is down at start-up does not stop the server: requests get `503` until
/// it is back.
pub fn new_request_pool(database: &DatabaseConfig) -> Result<Pool, SetupError> {
    let mut pg = pg_config(database)?;
    let ms = database.statement_timeout.as_millis();
    pg.options(format!(
        "-c statement_timeout={ms} -c search_path=pg_catalog"
    ));
    build_pool(database, pg)
}

fn build_pool(database: &DatabaseConfig, pg: tokio_postgres::Config) -> Result<Pool, SetupError> {
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(database.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(database.checkout_timeout))
        .create_timeout(Some(database.connect_timeout))
        .recycle_timeout(Some(database.connect_timeout))
        .build()?;
    Ok(pool)
}
