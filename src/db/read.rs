//! Reads in one round trip, on statements planned for their tenant.
//!
//! When every statement a read needs is already prepared on the connection,
//! `BEGIN`, the scoping statement, the queries and `COMMIT` are sent
//! together and answered together. The guarantee is the one of [`Scope`]:
//! the queries run after the transaction-local `search_path` and before
//! `COMMIT`, in the order sent. A connection whose statements are not
//! prepared yet takes the ordinary path (prepare inside the scope) once;
//! later reads on it are pipelined. Request sessions search `pg_catalog`
//! alone outside a scope, so even a statement that somehow ran outside the
//! transaction would find no table.
//!
//! PostgreSQL remembers the `search_path` a statement was prepared under
//! and analyses and plans it again whenever it runs under another one. A
//! connection that served tenant after tenant with one statement would
//! plan every read afresh, so a connection prepares its reads once per
//! tenant: the SQL goes out behind a comment naming the schema, which makes
//! it a statement of its own in the connection's cache. The comment is only
//! a cache key; the scope, not the text, decides which schema is read.
//! A connection keeps at most [`STATEMENTS_PER_CONNECTION`] statements.
//! When it is full, a tenant it has none for reads with the statements all
//! tenants share, planned again each time, rather than evicting anything;
//! every [`REFRESH_EVERY`] checkouts a full connection forgets its
//! statements, so that the tenants it keeps follow the traffic.

use std::borrow::Cow;

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

/// Most statements one pooled connection prepares for tenants of their
/// own (beside them it keeps the few that all tenants share). Each costs the
/// server about 22 KB with its plan (the post page and count, measured with
/// `pg_backend_memory_contexts` on PostgreSQL 15), so a full pool of 16
/// holds at most about 180 MB; 512 keeps the reads of 170 tenants.
pub const STATEMENTS_PER_CONNECTION: usize = 512;

/// Checkouts of a connection between two chances for a full one to start
/// again with the tenants that come next.
const REFRESH_EVERY: usize = 4096;

/// Runs read-only `queries` in one transaction scoped to `schema` and
/// returns each one's rows, in order.
pub async fn read(
    pool: &Pool,
    schema: &str,
    queries: &[Query<'_>],
) -> Result<Vec<Vec<Row>>, DbError> {
    let conn = pool.get().await?;
    let own: Vec<Cow<'_, str>> = queries
        .iter()
        .map(|(sql, _)| for_tenant(schema, sql))
        .collect();
    if let Some((set_path, statements)) = warm_statements(&conn, &own) {
        return one_flight(conn, schema, &set_path, &statements, queries).await;
    }
    // The scoping statement and the tenant's own must fit.
    let held = conn.statement_cache.size();
    if held + own.len() < STATEMENTS_PER_CONNECTION {
        return scoped(conn, schema, &own, queries).await;
    }
    if Object::metrics(&conn)
        .recycle_count
        .is_multiple_of(REFRESH_EVERY)
    {
        conn.statement_cache.clear();
        return scoped(conn, schema, &own, queries).await;
    }
    let shared: Vec<Cow<'_, str>> = queries.iter().map(|(sql, _)| Cow::Borrowed(*sql)).collect();
    match warm_statements(&conn, &shared) {
        Some((set_path, statements)) => {
            one_flight(conn, schema, &set_path, &statements, queries).await
        }
        None => scoped(conn, schema, &shared, queries).await,
    }
}

/// `sql` as this tenant's own statement: behind a comment that names the
/// schema, when the name can sit in a comment as it is. Any other name
/// shares the plain statement, and its reads are planned every time.
fn for_tenant<'a>(schema: &str, sql: &'a str) -> Cow<'a, str> {
    let plain = schema
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
    match plain {
        true => Cow::Owned(format!("/* {schema} */ {sql}")),
        false => Cow::Borrowed(sql),
    }
}

/// The prepared statements of `sql` (and the scoping statement) when every
/// one is already in the connection's cache; `None` otherwise.
fn warm_statements(conn: &Object, sql: &[Cow<'_, str>]) -> Option<(Statement, Vec<Statement>)> {
    // A cached statement is returned without waiting; anything that would
    // wait is a miss. A miss may already have sent a Parse outside any
    // scope: it finds no table (the session path is `pg_catalog`), fails,
    // and is discarded, so nothing is cached from it.
    let cached = |sql: &str| conn.prepare_cached(sql).now_or_never()?.ok();
    let set_path = cached(SET_PATH)?;
    let statements = sql
        .iter()
        .map(|sql| cached(sql))
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

/// Prepares the statements of `sql` inside the scope, so that they are
/// planned under the tenant's path, then runs them.
async fn scoped(
    conn: Object,
    schema: &str,
    sql: &[Cow<'_, str>],
    queries: &[Query<'_>],
) -> Result<Vec<Vec<Row>>, DbError> {
    let scope = Scope::begin_on(conn, schema).await?;
    let client = scope.client();
    let statements = try_join_all(sql.iter().map(|sql| client.prepare_cached(sql))).await?;
    let runs = statements
        .iter()
        .zip(queries)
        .map(|(statement, (_, params))| client.query(statement, params));
    let rows = try_join_all(runs).await?;
    scope.commit().await?;
    Ok(rows)
}
