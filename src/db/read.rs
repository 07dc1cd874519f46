//! Reads in one round trip: when every statement a read needs is already
//! prepared on the connection, `BEGIN`, the scoping statement, the queries
//! and `COMMIT` are sent together and answered together.
//!
//! The guarantee is the one of [`Scope`]: the queries run after the
//! transaction-local `search_path` and before `COMMIT`, in the order sent.
//! A connection whose statements are not prepared yet takes the ordinary
//! path (prepare inside the scope) once; later reads on it are pipelined.
//! Request sessions search `pg_catalog` alone outside a scope, so even a
//! statement that somehow ran outside the transaction would find no table.

use deadpool_postgres::{Object, Pool};
use futures_util::FutureExt;
use futures_util::future::try_join_all;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use super::scope::SET_PATH;
use super::{DbError, Scope};
use crate::tenant::schema::search_path;

/// A statement's SQL and its parameters.
pub type Query<'a> = (&'a str, &'a [&'a (dyn ToSql + Sync)]);

/// Runs read-only `queries` in one transaction scoped to `schema` and
/// returns each one's rows, in order.
pub async fn read(
    pool: &Pool,
    schema: &str,
    queries: &[Query<'_>],
) -> Result<Vec<Vec<Row>>, DbError> {
    let conn = pool.get().await?;
    match warm_statements(&conn, queries) {
        Some((set_path, statements)) => {
            one_flight(conn, schema, &set_path, &statements, queries).await
        }
        None => scoped(conn, schema, queries).await,
    }
}

/// The prepared statements of `queries` (and the scoping statement) when
/// every one is already in the connection's cache; `None` otherwise.
fn warm_statements(conn: &Object, queries: &[Query<'_>]) -> Option<(Statement, Vec<Statement>)> {
    // A cached statement is returned without waiting; anything that would
    // wait is a miss. A miss may already have sent a Parse outside any
    // scope: it finds no table (the session path is `pg_catalog`), fails,
    // and is discarded, so nothing is cached from it.
    let cached = |sql: &str| conn.prepare_cached(sql).now_or_never()?.ok();
    let set_path = cached(SET_PATH)?;
    let statements = queries
        .iter()
        .map(|(sql, _)| cached(sql))
        .collect::<Option<Vec<_>>>()?;
    Some((set_path, statements))
}

async fn one_flight(
    conn: Object,
    schema: &str,
    set_path: &Statement,
    statements: &[Statement],
    queries: &[Query<'_>],
) -> Result<Vec<Vec<Row>>, DbError> {
    let path = search_path(schema);
    let path_params: [&(dyn ToSql + Sync); 2] = [&path, &schema];
    // Until the whole flight is answered, dropping the guard rolls back.
    let guard = Scope::guard(conn);
    let client = guard.client();
    let runs = statements
        .iter()
        .zip(queries)
        .map(|(statement, (_, params))| client.query(statement, params));
    // `biased` polls in the order written, and each future sends its
    // message on its first poll: BEGIN, path, queries, COMMIT.
    let (_, scoped, rows, _) = tokio::try_join!(
        biased;
        client.batch_execute("BEGIN"),
        client.query_one(set_path, &path_params),
        try_join_all(runs),
        client.batch_execute("COMMIT"),
    )?;
    guard.release();
    match scoped.get::<_, bool>(1) {
        true => Ok(rows),
        false => Err(DbError::SchemaMissing(schema.to_owned())),
    }
}

async fn scoped(
    conn: Object,
    schema: &str,
    queries: &[Query<'_>],
) -> Result<Vec<Vec<Row>>, DbError> {
    let scope = Scope::begin_on(conn, schema).await?;
    let mut statements = Vec::with_capacity(queries.len());
    for (sql, _) in queries {
        statements.push(scope.client().prepare_cached(sql).await?);
    }
    let client = scope.client();
    let runs = statements
        .iter()
        .zip(queries)
        .map(|(statement, (_, params))| client.query(statement, params));
    let rows = try_join_all(runs).await?;
    scope.commit().await?;
    Ok(rows)
}
