//! Creating, reading, changing and deleting tenants and their domains: the
//! one implementation behind both `botora tenant …` and the admin API.
//!
//! Values are checked before uniqueness (a body both invalid and taken is
//! invalid), and every change is one transaction: a tenant is created with
//! its schema, tables, row and domains, or not at all.

use chrono::NaiveDate;
use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use tokio_postgres::error::SqlState;

use super::schema::{self, quote_ident};
use super::{TENANT_COLUMNS, Tenant, host};
use crate::db::migrate::{self, MigrateError};
use crate::db::{DbError, Scope};

/// A tenant with its domains, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TenantInfo {
    /// The row.
    #[serde(flatten)]
    pub tenant: Tenant,
    /// Its domains, primary first.
    pub domains: Vec<Domain>,
}

/// One row of `tenants_domain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Domain {
    /// The host name.
    pub domain: String,
    /// Whether it is the tenant's main domain.
    pub is_primary: bool,
}

/// What a new tenant needs.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// Its schema; checked by [`schema::validate_new`].
    pub schema_name: String,
    /// Display name, 1 to 100 characters.
    pub name: String,
    /// Paid up to this day.
    pub paid_until: Option<NaiveDate>,
    /// On trial.
    pub on_trial: bool,
    /// Its domains; the first is primary.
    pub domains: Vec<String>,
}

/// A change to a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    /// New display name.
    pub name: Option<String>,
    /// New paid-until day (`Some(None)` clears it).
    pub paid_until: Option<Option<NaiveDate>>,
    /// New trial flag.
    pub on_trial: Option<bool>,
}

/// The rules a store call checks values against.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Schema names refused beside the built-in ones.
    pub reserved_schemas: Vec<String>,
    /// Public hosts, normalised; no tenant may take one as a domain.
    pub public_hosts: Vec<String>,
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A value is not acceptable (`400 {"<field>": [message]}`).
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// A schema or domain is already used (`409 {"<field>": [message]}`).
    #[error("{field}: {message}")]
    Taken {
        /// The field at fault.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// No such tenant or domain.
    #[error("not found")]
    NotFound,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A tenant migration failed while creating the schema.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        StoreError::Db(error.into())
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        StoreError::Db(error.into())
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        message: message.into(),
    }
}

fn taken(field: &'static str, message: impl Into<String>) -> StoreError {
    StoreError::Taken {
        field,
        message: message.into(),
    }
}

/// Checks a domain a tenant is about to get.
pub fn validate_domain(domain: &str, rules: &Rules) -> Result<(), StoreError> {
    let normalised =
        host::normalize(domain).map_err(|e| invalid("domains", format!("{domain:?}: {e}")))?;
    if domain.len() >= 4 && domain[..4].eq_ignore_ascii_case("www.") {
        return Err(invalid(
            "domains",
            format!("{domain:?}: must not start with www."),
        ));
    }
    if normalised != domain {
        let message = format!("{domain:?}: must be lower-case, with no port or trailing dot");
        return Err(invalid("domains", message));
    }
    if rules.public_hosts.iter().any(|public| public == domain) {
        return Err(invalid("domains", format!("{domain:?} is a public host")));
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<(), StoreError> {
    match name.trim().chars().count() {
        0 => Err(invalid("name", "This field may not be blank.")),
        1..=100 => Ok(()),
        _ => Err(invalid(
            "name",
            "Ensure this field has no more than 100 characters.",
        )),
    }
}

fn validate_new(new: &NewTenant, rules: &Rules) -> Result<(), StoreError> {
    schema::validate_new(&new.schema_name, &rules.reserved_schemas)
        .map_err(|e| invalid("schema_name", e.to_string()))?;
    validate_name(&new.name)?;
    if new.domains.is_empty() {
        return Err(invalid("domains", "At least one domain is required."));
    }
    for (index, domain) in new.domains.iter().enumerate() {
        validate_domain(domain, rules)?;
        if new.domains[..index].contains(domain) {
            return Err(invalid("domains", format!("{domain:?} is listed twice")));
        }
    }
    Ok(())
}

/// Creates a tenant: row, schema with every tenant migration, and domains,
/// in one transaction.
pub async fn create(pool: &Pool, new: &NewTenant, rules: &Rules) -> Result<TenantInfo, StoreError> {
    validate_new(new, rules)?;
    // A client that leaves mid-way drops `scope`: the statement running is
    // cancelled and everything rolls back before the connection is reused.
    let scope = Scope::begin_unscoped(pool).await?;
    let tx = scope.client();

    // Refuse names in use, with the field at fault.
    let schema_used: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM public.tenants_client WHERE schema_name = $1)
                 OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&new.schema_name],
        )
        .await?
        .get(0);
    if schema_used {
        return Err(taken(
            "schema_name",
            "A tenant with this schema name already exists.",
        ));
    }
    check_domains_free(tx, &new.domains).await?;

    // The row, the schema and its tables, then the domains.
    let today = chrono::Utc::now().date_naive();
    let row = tx
        .query_one(
            "INSERT INTO public.tenants_client (schema_name, name, paid_until, on_trial, created_on)
             VALUES ($1, $2, $3, $4, $5) RETURNING id::int8",
            &[&new.schema_name, &new.name.trim(), &new.paid_until, &new.on_trial, &today],
        )
        .await
        .map_err(unique_to_taken)?;
    let id: i64 = row.get(0);
    migrate::apply(tx, &new.schema_name, migrate::TENANT).await?;
    for (index, domain) in new.domains.iter().enumerate() {
        insert_domain(tx, id, domain, index == 0).await?;
    }
    scope.commit().await?;
    get(pool, &new.schema_name).await
}

async fn check_domains_free(
    client: &impl GenericClient,
    domains: &[String],
) -> Result<(), StoreError> {
    let used = client
        .query_opt(
            "SELECT domain::text FROM public.tenants_domain WHERE domain = ANY($1) LIMIT 1",
            &[&domains],
        )
        .await?;
    match used {
        Some(row) => {
            let domain: String = row.get(0);
            Err(taken(
                "domains",
                format!("{domain:?} is already used by a tenant."),
            ))
        }
        None => Ok(()),
    }
}

async fn insert_domain(
    client: &impl GenericClient,
    tenant_id: i64,
    domain: &str,
    is_primary: bool,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO public.tenants_domain (domain, tenant_id, is_primary) VALUES ($1, $2, $3)",
            &[&domain, &tenant_id, &is_primary],
        )
        .await
        .map_err(unique_to_taken)?;
    Ok(())
}

/// A unique violation that slipped past the checks (a concurrent insert)
/// is still a `409`.
fn unique_to_taken(error: tokio_postgres::Error) -> StoreError {
    if error.code() != Some(&SqlState::UNIQUE_VIOLATION) {
        return error.into();
    }
    let on_domain = error
        .as_db_error()
        .and_then(|db| db.table())
        .is_some_and(|table| table == "tenants_domain");
    match on_domain {
        true => taken("domains", "This domain is already used by a tenant."),
        false => taken(
            "schema_name",
            "A tenant with this schema name already exists.",
        ),
    }
}

/// One tenant by schema name, with its domains.
pub async fn get(pool: &Pool, schema_name: &str) -> Result<TenantInfo, StoreError> {
    let conn = pool.get().await?;
    let sql =
        format!("SELECT {TENANT_COLUMNS} FROM public.tenants_client c WHERE c.schema_name = $1");
    let row = conn
        .query_opt(&sql, &[&schema_name])
        .await?
        .ok_or(StoreError::NotFound)?;
    let tenant = Tenant::from_row(&row);
    let domains = domains_of(&conn, tenant.id).await?;
    Ok(TenantInfo { tenant, domains })
}

/// The domains of tenant `id`, primary first.
pub async fn domains_of(client: &impl GenericClient, id: i64) -> Result<Vec<Domain>, StoreError> {
    let rows = client
        .query(
            "SELECT domain::text, is_primary FROM public.tenants_domain
             WHERE tenant_id = $1::int8 ORDER BY is_primary DESC, domain",
            &[&id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Domain {
            domain: row.get(0),
            is_primary: row.get(1),
        })
        .collect())
}

/// A page of tenants ordered by schema name, and the total count.
pub async fn list(
    pool: &Pool,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<TenantInfo>), StoreError> {
    let conn = pool.get().await?;
    let count: i64 = conn
        .query_one("SELECT count(*) FROM public.tenants_client", &[])
        .await?
        .get(0);
    let sql = format!(
        "SELECT {TENANT_COLUMNS} FROM public.tenants_client c
         ORDER BY c.schema_name OFFSET $1 LIMIT $2"
    );
    let rows = conn.query(&sql, &[&offset, &limit]).await?;
    let mut page = Vec::with_capacity(rows.len());
    for row in &rows {
        let tenant = Tenant::from_row(row);
        let domains = domains_of(&conn, tenant.id).await?;
        page.push(TenantInfo { tenant, domains });
    }
    Ok((count, page))
}

/// Changes a tenant's name, payment or trial.
pub async fn update(
    pool: &Pool,
    schema_name: &str,
    patch: &TenantPatch,
) -> Result<TenantInfo, StoreError> {
    if let Some(name) = &patch.name {
        validate_name(name)?;
    }
    let conn = pool.get().await?;
    let changed = conn
        .execute(
            "UPDATE public.tenants_client SET
                 name = COALESCE($2, name),
                 paid_until = CASE WHEN $3 THEN $4 ELSE paid_until END,
                 on_trial = COALESCE($5, on_trial)
             WHERE schema_name = $1",
            &[
                &schema_name,
                &patch.name.as_deref().map(str::trim),
                &patch.paid_until.is_some(),
                &patch.paid_until.flatten(),
                &patch.on_trial,
            ],
        )
        .await?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    drop(conn);
    get(pool, schema_name).await
}

/// Deletes a tenant's domains and row, and drops its schema unless
/// `keep_schema`. The public schema's row cannot be deleted.
pub async fn delete(pool: &Pool, schema_name: &str, keep_schema: bool) -> Result<(), StoreError> {
    if schema_name == "public" {
        return Err(invalid(
            "schema_name",
            "The public schema cannot be deleted.",
        ));
    }
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT id::int8 FROM public.tenants_client WHERE schema_name = $1 FOR UPDATE",
            &[&schema_name],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    let id: i64 = row.get(0);
    tx.execute(
        "DELETE FROM public.tenants_domain WHERE tenant_id = $1::int8",
        &[&id],
    )
    .await?;
    tx.execute(
        "DELETE FROM public.tenants_client WHERE id = $1::int8",
        &[&id],
    )
    .await?;
    if !keep_schema {
        tx.execute(
            "DELETE FROM public.botora_migrations WHERE schema_name = $1",
            &[&schema_name],
        )
        .await?;
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(schema_name));
        tx.batch_execute(&drop).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Adds a domain to a tenant; it is primary when the tenant had none.
pub async fn add_domain(
    pool: &Pool,
    schema_name: &str,
    domain: &str,
    rules: &Rules,
) -> Result<Domain, StoreError> {
    validate_domain(domain, rules).map_err(|e| match e {
        StoreError::Invalid { message, .. } => invalid("domain", message),
        other => other,
    })?;
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT c.id::int8, NOT EXISTS (SELECT 1 FROM public.tenants_domain d WHERE d.tenant_id = c.id)
             FROM public.tenants_client c WHERE c.schema_name = $1 FOR UPDATE",
            &[&schema_name],
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    let domains = [domain.to_owned()];
    check_domains_free(&tx, &domains)
        .await
        .map_err(rename_to_domain)?;
    insert_domain(&tx, row.get(0), domain, row.get(1))
        .await
        .map_err(rename_to_domain)?;
    tx.commit().await?;
    Ok(Domain {
        domain: domain.to_owned(),
        is_primary: row.get(1),
    })
}

fn rename_to_domain(error: StoreError) -> StoreError {
    match error {
        StoreError::Taken { message, .. } => taken("domain", message),
        other => other,
    }
}

/// Removes one domain of a tenant.
pub async fn remove_domain(pool: &Pool, schema_name: &str, domain: &str) -> Result<(), StoreError> {
    let conn = pool.get().await?;
    let removed = conn
        .execute(
            "DELETE FROM public.tenants_domain d USING public.tenants_client c
             WHERE d.tenant_id = c.id AND c.schema_name = $1 AND d.domain = $2",
            &[&schema_name, &domain],
        )
        .await?;
    match removed {
        0 => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            reserved_schemas: vec!["admin".into()],
            public_hosts: vec!["localhost".into()],
        }
    }

    fn new(schema: &str, domains: &[&str]) -> NewTenant {
        NewTenant {
            schema_name: schema.into(),
            name: "Acme".into(),
            paid_until: None,
            on_trial: true,
            domains: domains.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn field_of(result: Result<(), StoreError>) -> &'static str {
        match result {
            Err(StoreError::Invalid { field, .. }) => field,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn refuses_bad_values_with_their_field() {
        let r = rules();
        assert!(validate_new(&new("acme", &["acme.test"]), &r).is_ok());
        assert_eq!(
            field_of(validate_new(&new("Acme", &["acme.test"]), &r)),
            "schema_name"
        );
        assert_eq!(
            field_of(validate_new(&new("admin", &["acme.test"]), &r)),
            "schema_name"
        );
        assert_eq!(field_of(validate_new(&new("acme", &[]), &r)), "domains");
        assert_eq!(
            field_of(validate_new(&new("acme", &["www.acme.test"]), &r)),
            "domains"
        );
        assert_eq!(
            field_of(validate_new(&new("acme", &["a.test", "a.test"]), &r)),
            "domains"
        );
        assert_eq!(
            field_of(validate_new(&new("acme", &["localhost"]), &r)),
            "domains"
        );
        assert_eq!(
            field_of(validate_new(&new("acme", &["Acme.test"]), &r)),
            "domains"
        );
        assert_eq!(
            field_of(validate_new(&new("acme", &["acme.test:80"]), &r)),
            "domains"
        );
        let mut long_name = new("acme", &["acme.test"]);
        long_name.name = "x".repeat(101);
        assert_eq!(field_of(validate_new(&long_name, &r)), "name");
    }
}
