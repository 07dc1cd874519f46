//! PostgreSQL: the connection pool, tenant-scoped transactions and
//! migrations.

pub mod migrate;
mod pool;
mod read;
mod scope;

pub use pool::{SetupError, new_pool, new_request_pool, pg_config};
pub use read::{Query, STATEMENTS_PER_CONNECTION, read};
pub use scope::Scope;

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

/// A database failure, sorted by what the client should be told.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No pooled connection could be had in time (pool exhausted, or the
    /// database refused or did not answer).
    #[error("no database connection: {0}")]
    Unavailable(#[from] PoolError),
    /// A statement failed.
    #[error("query failed: {}", describe(.0))]
    Query(#[from] tokio_postgres::Error),
    /// The tenant's schema does not exist.
    #[error("schema {0:?} does not exist")]
    SchemaMissing(String),
    /// A failure shared by every request that waited on one lookup.
    #[error("{0}")]
    Shared(std::sync::Arc<DbError>),
    /// A background task the lookup depended on has stopped (the runtime
    /// is shutting down).
    #[error("the database lookup task has stopped")]
    Stopped,
    /// The database did not answer within the time allowed.
    #[error("database did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// A failed statement with PostgreSQL's own code and message: the plain
/// display of `tokio_postgres::Error` says only "db error".
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({}): {}", error, db.code().code(), db.message()),
        None => match std::error::Error::source(error) {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        },
    }
}

impl DbError {
    /// True when the failure is the database being away, slow or the
    /// tenant's schema missing: worth a `503`, not a `500`.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unavailable(_)
            | DbError::Timeout(_)
            | DbError::SchemaMissing(_)
            | DbError::Stopped => true,
            DbError::Shared(inner) => inner.is_unavailable(),
            DbError::Query(e) => {
                e.is_closed()
                    || e.code().is_none()
                    || matches!(
                        e.code(),
                        Some(c) if *c == SqlState::QUERY_CANCELED
                            || *c == SqlState::UNDEFINED_TABLE
                            || *c == SqlState::INVALID_SCHEMA_NAME
                            || *c == SqlState::ADMIN_SHUTDOWN
                            || *c == SqlState::CANNOT_CONNECT_NOW
                            || *c == SqlState::TOO_MANY_CONNECTIONS
                    )
            }
        }
    }

    /// The SQLSTATE of a failed statement, when there is one.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            DbError::Query(e) => e.code(),
            DbError::Shared(inner) => inner.code(),
            _ => None,
        }
    }
}
