//! Migrations: the numbered `.sql` files of `migrations/public` and
//! `migrations/tenant`, built into the binary, and the bookkeeping that
//! records which ran where.
//!
//! Botora records applied migrations in `public.botora_migrations`, one row
//! per schema and file, a table Django never touches. Each schema migrates
//! in its own transaction under an advisory lock, so two `botora migrate`
//! runs (or a run and a tenant creation) never apply the same file twice.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::{GenericClient, Pool};
use futures_util::{StreamExt, stream};

use crate::tenant::schema::quote_ident;

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// File name, for example `0001_tenants.sql`.
    pub name: &'static str,
    /// Its SQL, run as one batch.
    pub sql: &'static str,
}

macro_rules! migrations {
    ($dir:literal: $($file:literal),* $(,)?) => {
        &[$(Migration {
            name: $file,
            sql: include_str!(concat!("../../migrations/", $dir, "/", $file)),
        }),*]
    };
}

/// Migrations of the public schema, in order.
pub const PUBLIC: &[Migration] =
    migrations!("public": "0001_tenants.sql", "0002_tenant_notify.sql");

/// Migrations of every tenant schema, in order.
#[cfg(not(feature = "bench-migration"))]
pub const TENANT: &[Migration] = migrations!("tenant": "0001_auth_user.sql", "0002_blog_post.sql");

/// With the `bench-migration` feature (built by benches/scale.sh only),
/// one migration more: the scale benchmark's new column and index.
#[cfg(feature = "bench-migration")]
pub const TENANT: &[Migration] = &[
    migrations!("tenant": "0001_auth_user.sql")[0],
    migrations!("tenant": "0002_blog_post.sql")[0],
    Migration {
        name: "0003_bench_post_slug.sql",
        sql: include_str!("../../benches/migrations/0003_bench_post_slug.sql"),
    },
];

const BOOKKEEPING: &str = "
    CREATE TABLE IF NOT EXISTS public.botora_migrations (
        schema_name varchar(63) NOT NULL,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (schema_name, name)
    )";

/// Why a migration run failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A migration file failed; its transaction was rolled back.
    #[error("schema {schema}: migration {migration} failed: {source}")]
    Migration {
        /// The schema being migrated.
        schema: String,
        /// The file that failed.
        migration: &'static str,
        /// The database's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// Bookkeeping or connection trouble outside any one file.
    #[error("schema {schema}: {source}")]
    Database {
        /// The schema being migrated.
        schema: String,
        /// The database's error.
        #[source]
        source: crate::db::DbError,
    },
}

impl MigrateError {
    fn database(schema: &str, source: impl Into<crate::db::DbError>) -> Self {
        MigrateError::Database {
            schema: schema.to_owned(),
            source: source.into(),
        }
    }
}

/// What happened to one schema in a run.
#[derive(Debug)]
pub struct Outcome {
    /// The schema.
    pub schema: String,
    /// The files applied now (empty when it was up to date), or the failure.
    pub result: Result<Vec<&'static str>, MigrateError>,
}

/// Applies what is pending of `list` to `schema` inside the transaction
/// open on `tx`, creating the schema when it does not exist. Returns the
/// files applied.
pub async fn apply(
    tx: &impl GenericClient,
    schema: &str,
    list: &'static [Migration],
) -> Result<Vec<&'static str>, MigrateError> {
    let db_err = |e: tokio_postgres::Error| MigrateError::database(schema, e);

    // Serialise with any other migrator of this schema, then scope to it.
    let lock_key = format!("botora_migrate:{schema}");
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock_key])
        .await
        .map_err(db_err)?;
    let create = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema));
    tx.batch_execute(&create).await.map_err(db_err)?;
    tx.execute(
        "SELECT set_config('search_path', $1, true)",
        &[&quote_ident(schema)],
    )
    .await
    .map_err(db_err)?;

    // What ran before, read under the lock.
    let rows = tx
        .query(
            "SELECT name FROM public.botora_migrations WHERE schema_name = $1",
            &[&schema],
        )
        .await
        .map_err(db_err)?;
    let done: HashSet<String> = rows.iter().map(|row| row.get(0)).collect();

    // Each pending file, then its bookkeeping row.
    let mut applied = Vec::new();
    for migration in list.iter().filter(|m| !done.contains(m.name)) {
        tx.batch_execute(migration.sql)
            .await
            .map_err(|source| MigrateError::Migration {
                schema: schema.to_owned(),
                migration: migration.name,
                source,
            })?;
        tx.execute(
            "INSERT INTO public.botora_migrations (schema_name, name) VALUES ($1, $2)",
            &[&schema, &migration.name],
        )
        .await
        .map_err(db_err)?;
        applied.push(migration.name);
    }
    Ok(applied)
}

/// Migrates the public schema, creating the bookkeeping table first.
pub async fn migrate_public(pool: &Pool) -> Result<Vec<&'static str>, MigrateError> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| MigrateError::database("public", e))?;
    let tx = conn
        .transaction()
        .await
        .map_err(|e| MigrateError::database("public", e))?;
    let db_err = |e| MigrateError::database("public", e);

    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('botora_bookkeeping'))",
        &[],
    )
    .await
    .map_err(db_err)?;
    tx.batch_execute(BOOKKEEPING).await.map_err(db_err)?;
    let applied = apply(&tx, "public", PUBLIC).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(applied)
}

/// Tenant schemas with something pending: every tenant (or only `only`),
/// minus those whose bookkeeping already lists every file. One query for
/// all tenants, so an up-to-date run costs almost nothing.
pub async fn pending_tenants(pool: &Pool, only: Option<&str>) -> Result<Vec<String>, MigrateError> {
    let conn = pool
        .get()
        .await
        .map_err(|e| MigrateError::database("public", e))?;
    let rows = conn
        .query(
            "SELECT c.schema_name, count(m.name) FILTER (WHERE m.name = ANY($2))
             FROM public.tenants_client c
             LEFT JOIN public.botora_migrations m ON m.schema_name = c.schema_name
             WHERE c.schema_name <> 'public' AND ($1::text IS NULL OR c.schema_name = $1)
             GROUP BY c.schema_name ORDER BY c.schema_name",
            &[&only, &TENANT.iter().map(|m| m.name).collect::<Vec<_>>()],
        )
        .await
        .map_err(|e| MigrateError::database("public", e))?;
    let wanted = TENANT.len() as i64;
    Ok(rows
        .iter()
        .filter(|row| row.get::<_, i64>(1) < wanted)
        .map(|row| row.get(0))
        .collect())
}

/// Migrates each of `schemas`, `jobs` at a time, each in its own
/// transaction. A failure stops only its own schema; `on_done` hears of
/// every schema as it finishes.
pub async fn migrate_tenants(
    pool: &Pool,
    schemas: Vec<String>,
    jobs: usize,
    mut on_done: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    let mut runs = stream::iter(schemas)
        .map(|schema| async move {
            let result = migrate_one(pool, &schema).await;
            Outcome { schema, result }
        })
        .buffer_unordered(jobs.max(1));
    let mut outcomes = Vec::new();
    while let Some(outcome) = runs.next().await {
        on_done(&outcome);
        outcomes.push(outcome);
    }
    outcomes
}

async fn migrate_one(pool: &Pool, schema: &str) -> Result<Vec<&'static str>, MigrateError> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| MigrateError::database(schema, e))?;
    let tx = conn
        .transaction()
        .await
        .map_err(|e| MigrateError::database(schema, e))?;
    let applied = apply(&tx, schema, TENANT).await?;
    tx.commit()
        .await
        .map_err(|e| MigrateError::database(schema, e))?;
    Ok(applied)
}

/// Counts of applied migrations per schema, for `tenant show`.
pub async fn applied_counts(pool: &Pool) -> Result<HashMap<String, i64>, MigrateError> {
    let conn = pool
        .get()
        .await
        .map_err(|e| MigrateError::database("public", e))?;
    let rows = conn
        .query(
            "SELECT schema_name, count(*) FROM public.botora_migrations GROUP BY 1",
            &[],
        )
        .await
        .map_err(|e| MigrateError::database("public", e))?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(dir: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dir);
        let mut names: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        names.sort();
        names
    }

    #[test]
    #[cfg(not(feature = "bench-migration"))]
    fn every_file_is_built_in_and_in_order() {
        for (dir, list) in [("public", PUBLIC), ("tenant", TENANT)] {
            let built_in: Vec<String> = list.iter().map(|m| m.name.to_owned()).collect();
            assert_eq!(
                built_in,
                files_in(dir),
                "migrations/{dir} and the built-in list differ"
            );
        }
    }
}
