//! The schema-scoping guarantee: whatever happened to the previous user of
//! a pooled connection (a cancelled query, a failed statement, thousands of
//! interleaved requests), no statement runs with another tenant's
//! `search_path`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use botora::db::{self, Scope};
use common::*;
use serde_json::Value;

/// A pool of exactly one connection, so every scope reuses the same one.
fn single_connection_pool() -> deadpool_postgres::Pool {
    let mut database = test_config().database;
    database.pool_size = 1;
    db::new_request_pool(&database).unwrap()
}

async fn current_path(scope: &Scope) -> (String, String) {
    let row = scope
        .client()
        .query_one(
            "SELECT current_setting('search_path'), current_schema()::text",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_query_cancelled_mid_flight_leaves_nothing_behind() {
    let fixtures = pool();
    let (first, _) = tenant(&fixtures, "cancel_a").await;
    let (second, _) = tenant(&fixtures, "cancel_b").await;
    let pool = single_connection_pool();

    // Tenant A's request is dropped while its statement runs.
    let doomed = async {
        let scope = Scope::begin(&pool, &first).await.unwrap();
        scope
            .client()
            .execute("SELECT pg_sleep(5)", &[])
            .await
            .unwrap();
        scope.commit().await.unwrap();
    };
    assert!(
        tokio::time::timeout(Duration::from_millis(200), doomed)
            .await
            .is_err()
    );

    // The one connection, next used for tenant B, is B's and in a fresh
    // transaction (not A's, not aborted).
    let scope = tokio::time::timeout(Duration::from_secs(10), Scope::begin(&pool, &second))
        .await
        .expect("connection came back")
        .unwrap();
    let (path, schema) = current_path(&scope).await;
    assert_eq!(path, format!("\"{second}\", public"));
    assert_eq!(schema, second);
    scope.commit().await.unwrap();

    // Outside any scope the session's own path was never touched.
    let conn = pool.get().await.unwrap();
    let row = conn
        .query_one("SELECT current_setting('search_path')", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "pg_catalog");
    // And there, unqualified tables are not found at all: no fallback.
    assert!(
        conn.query_one("SELECT count(*) FROM auth_user", &[])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_failed_statement_does_not_leak_its_path() {
    let fixtures = pool();
    let (first, _) = tenant(&fixtures, "fail_a").await;
    let (second, _) = tenant(&fixtures, "fail_b").await;
    let pool = single_connection_pool();

    {
        let scope = Scope::begin(&pool, &first).await.unwrap();
        let error = scope
            .client()
            .execute("SELECT * FROM no_such_table", &[])
            .await;
        assert!(error.is_err());
        // Dropped without commit: rolled back before reuse.
    }
    let scope = Scope::begin(&pool, &second).await.unwrap();
    assert_eq!(current_path(&scope).await.1, second);
    scope.commit().await.unwrap();
}

#[tokio::test]
async fn a_missing_schema_is_refused_before_any_statement() {
    let pool = single_connection_pool();
    let refused = Scope::begin(&pool, "no_such_schema_here").await;
    assert!(matches!(
        refused,
        Err(botora::db::DbError::SchemaMissing(_))
    ));
    // Names that need quoting are passed as values, never pasted.
    let hostile = Scope::begin(&pool, "x\"; DROP TABLE tenants_client; --").await;
    assert!(matches!(
        hostile,
        Err(botora::db::DbError::SchemaMissing(_))
    ));
    let conn = pool.get().await.unwrap();
    conn.query_one("SELECT count(*) FROM public.tenants_client", &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn thousands_of_interleaved_requests_each_see_only_their_tenant() {
    let fixtures = pool();
    let mut tenants = Vec::new();
    for index in 0..8 {
        let (schema, domain) = tenant(&fixtures, "mix").await;
        let author = user(&fixtures, &schema, "writer", "secret-pw", false).await;
        posts(&fixtures, &schema, author, &format!("owned-by-{schema}"), 3).await;
        tenants.push((schema, domain, index));
    }
    let mut config = test_config();
    config.database.pool_size = 4;
    let server = Arc::new(TestServer::start_with(config).await);
    let mut tokens = Vec::new();
    for (_, domain, _) in &tenants {
        tokens.push(server.login(domain, "writer", "secret-pw").await.0);
    }

    // 2,000 requests over 8 tenants, 64 at a time, some cancelled midway.
    let tokens = Arc::new(tokens);
    let tenants = Arc::new(tenants);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..2000usize {
        let (server, tenants, tokens) = (
            Arc::clone(&server),
            Arc::clone(&tenants),
            Arc::clone(&tokens),
        );
        tasks.spawn(async move {
            let (schema, domain, index) = &tenants[n % tenants.len()];
            let request = server.get(domain, "/api/posts/", Some(&tokens[*index]));
            if n % 10 == 0 {
                // The client gives up: the server's scope is dropped mid-way.
                let _ = tokio::time::timeout(Duration::from_micros(300), request).await;
                return;
            }
            let (status, body) = request.await;
            assert_eq!(status, 200, "{body}");
            for post in body["results"].as_array().unwrap() {
                let title = post["title"].as_str().unwrap();
                assert!(
                    title.starts_with(&format!("owned-by-{schema} ")),
                    "{schema} saw {title}"
                );
            }
            assert_eq!(body["count"], Value::from(3));
        });
        if tasks.len() >= 64 {
            tasks.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }

    // Every pooled connection is back, idle and outside any transaction.
    assert_pool_clean(&server).await;
}

/// Reads prepare their statements once per tenant on each connection, so
/// that PostgreSQL keeps their plans when the tenant changes. Each still
/// answers from its own schema, also for a name that cannot sit in the
/// statement's comment, and a connection that has served more tenants than
/// it can keep statements for stays within its bound: the tenants past it
/// read with the shared statements.
#[tokio::test]
async fn per_tenant_statements_read_their_own_schema_and_stay_bounded() {
    let fixtures = pool();
    let prefix = unique("stmt");
    let mut schemas: Vec<String> = (0..300).map(|n| format!("{prefix}_{n}")).collect();
    schemas.push(format!("{prefix} we*/ird"));
    let mut setup = String::new();
    for (n, schema) in schemas.iter().enumerate() {
        let quoted = format!("\"{schema}\"");
        setup += &format!(
            "CREATE SCHEMA {quoted}; CREATE TABLE {quoted}.marker (n int4);
             INSERT INTO {quoted}.marker VALUES ({n});"
        );
    }
    let conn = fixtures.get().await.unwrap();
    conn.batch_execute(&setup).await.unwrap();

    let pool = single_connection_pool();
    for round in 0..2 {
        for (n, schema) in schemas.iter().enumerate() {
            let queries: [db::Query<'_>; 2] = [
                ("SELECT n FROM marker", &[]),
                ("SELECT count(*)::int4 FROM marker", &[]),
            ];
            let rows = db::read(&pool, schema, &queries).await.unwrap();
            let marker: i32 = rows[0][0].get(0);
            let count: i32 = rows[1][0].get(0);
            assert_eq!((marker, count), (n as i32, 1), "{schema}, round {round}");
            let held = pool.get().await.unwrap().statement_cache.size();
            if round == 0 && n < 200 {
                // The scoping statement, then two of each tenant's own.
                assert_eq!(held, 1 + 2 * (n + 1), "{schema}");
            }
            // Beyond the bound, only the two statements all tenants share.
            assert!(
                held <= db::STATEMENTS_PER_CONNECTION + 2,
                "{held} statements on one connection"
            );
        }
    }

    let drop_all: String = schemas
        .iter()
        .map(|schema| format!("DROP SCHEMA \"{schema}\" CASCADE;"))
        .collect();
    conn.batch_execute(&drop_all).await.unwrap();
}
