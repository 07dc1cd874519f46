//! Tenant-scoped transactions: the guarantee that a request's statements
//! run with its own tenant's `search_path` and no other.
//!
//! Every [`Scope`] is one transaction whose first statement is
//! `set_config('search_path', …, true)`, the parameterised form of
//! `SET LOCAL`. The setting dies with the transaction, so nothing a request
//! does can leak into the next user of the connection. The same statement
//! checks that the schema exists, so a tenant whose schema is gone never
//! falls through to `public`'s tables (a `503`, not another schema's data).
//! `BEGIN` and the
//! `set_config` are pipelined: scoping costs one round trip, not two. If the
//! `set_config` fails, the transaction is aborted and no later statement of
//! the request can run.
//!
//! The price of the guarantee: `BEGIN`, the `set_config` and `COMMIT` are
//! three more statements around every read. Pipelined, they hold the post
//! list's SQL at about 0.8 of the baseline's two schema-qualified
//! statements (README, Performance). Over HTTP they cost little: a read
//! without the transaction measured no faster, so the post list's gap to
//! the baseline is Botora's own CPU, not these statements.
//!
//! A scope that is dropped before [`Scope::commit`] (an error, a cancelled
//! request, a client that went away) hands its connection to a task that
//! rolls back before the connection returns to the pool; if the rollback
//! fails the connection is closed instead of being reused.

use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use futures_util::future::try_join;
use tokio_postgres::NoTls;

use super::DbError;
use crate::tenant::schema::search_path;

/// Sets the path and, in the same statement, checks that the schema exists:
/// with a missing schema, `public` alone would answer for the tenant.
pub(super) const SET_PATH: &str = "SELECT set_config('search_path', $1, true), \
     EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $2)";

/// Longest wait for the rollback of an abandoned scope before its
/// connection is discarded.
const ROLLBACK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an abandoned scope's rollback may wait behind a running
/// statement before that statement is cancelled.
const CANCEL_AFTER: Duration = Duration::from_millis(50);

/// A pooled connection inside a transaction scoped to one tenant schema.
pub struct Scope {
    conn: Option<Object>,
}

impl Scope {
    /// Checks a connection out of `pool` and opens a transaction whose
    /// `search_path` is `schema`, then `public`.
    pub async fn begin(pool: &Pool, schema: &str) -> Result<Scope, DbError> {
        Scope::begin_on(pool.get().await?, schema).await
    }

    /// Checks a connection out of `pool` and opens a transaction that keeps
    /// the session's path (`pg_catalog` alone on the request pool), for
    /// statements that name their schemas, such as creating a tenant.
    /// Dropped before commit, it rolls back like any scope, cancelling a
    /// statement still running.
    pub async fn begin_unscoped(pool: &Pool) -> Result<Scope, DbError> {
        let scope = Scope {
            conn: Some(pool.get().await?),
        };
        scope.client().batch_execute("BEGIN").await?;
        Ok(scope)
    }

    /// Opens the scoped transaction on a connection already checked out.
    pub(super) async fn begin_on(conn: Object, schema: &str) -> Result<Scope, DbError> {
        let set_path = conn.prepare_cached(SET_PATH).await?;
        let path = search_path(schema);

        // From here on, dropping `scope` rolls back.
        let scope = Scope { conn: Some(conn) };
        let client = scope.client();
        // `try_join` polls in order, so BEGIN is sent before set_config.
        let (_, row) = try_join(
            client.batch_execute("BEGIN"),
            client.query_one(&set_path, &[&path, &schema]),
        )
        .await?;
        if !row.get::<_, bool>(1) {
            return Err(DbError::SchemaMissing(schema.to_owned()));
        }
        Ok(scope)
    }

    /// Guards `conn`, whose transaction the caller opens itself: until
    /// [`Scope::release`], dropping the guard rolls back.
    pub(super) fn guard(conn: Object) -> Scope {
        Scope { conn: Some(conn) }
    }

    /// Returns the connection to the pool as it is, the caller having
    /// ended the transaction.
    pub(super) fn release(mut self) {
        self.conn = None;
    }

    /// The connection, for statements inside the scope.
    pub fn client(&self) -> &Object {
        // The option is only emptied by `commit` and `drop`, which consume.
        self.conn.as_ref().expect("scope used after commit")
    }

    /// Commits the transaction and returns the connection to the pool.
    pub async fn commit(mut self) -> Result<(), DbError> {
        let conn = self.conn.take().expect("scope committed twice");
        match conn.batch_execute("COMMIT").await {
            Ok(()) => Ok(()),
            Err(error) => {
                // The transaction's fate is unknown: never reuse this one.
                drop(Object::take(conn));
                Err(error.into())
            }
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(roll_back(conn));
            }
            Err(_) => drop(Object::take(conn)),
        }
    }
}

/// Rolls back an abandoned scope, then lets the connection return to the
/// pool; closes it instead when the rollback fails or hangs. A rollback
/// still queued after [`CANCEL_AFTER`] is stuck behind a statement the
/// request no longer wants, so that statement is cancelled first.
async fn roll_back(conn: Object) {
    let outcome = {
        let rollback = conn.batch_execute("ROLLBACK");
        tokio::pin!(rollback);
        match tokio::time::timeout(CANCEL_AFTER, &mut rollback).await {
            Ok(done) => Ok(done),
            Err(_) => {
                let cancelled = conn.cancel_token().cancel_query(NoTls).await;
                tracing::debug!(ok = cancelled.is_ok(), "cancelled the abandoned statement");
                tokio::time::timeout(ROLLBACK_TIMEOUT, rollback).await
            }
        }
    };
    match outcome {
        Ok(Ok(())) => tracing::debug!("abandoned scope rolled back"),
        Ok(Err(error)) => {
            tracing::debug!(%error, "rollback failed; closing the connection");
            drop(Object::take(conn));
        }
        Err(_) => {
            tracing::warn!(timeout = ?ROLLBACK_TIMEOUT, "rollback hung; closing the connection");
            drop(Object::take(conn));
        }
    }
}
