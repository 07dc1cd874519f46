//! Tenants: who a request is for, found from its host.
//!
//! [`host`] turns a Host header or SNI name into a lookup key, [`resolve`]
//! maps keys to tenants through the [`directory`] of every domain and a
//! cache, both kept fresh by [`notify`], with [`lookup`] filling the cache
//! in batches;
//! [`schema`] guards schema names and [`store`] creates and changes
//! tenants for the CLI and the admin API.

pub mod directory;
pub mod host;
pub mod lookup;
pub mod notify;
pub mod resolve;
pub mod schema;
pub mod store;

use chrono::NaiveDate;
use serde::Serialize;

/// One row of `tenants_client`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// Primary key.
    pub id: i64,
    /// The tenant's PostgreSQL schema.
    pub schema_name: String,
    /// Display name.
    pub name: String,
    /// Paid up to and including this day; `None` when never paid.
    pub paid_until: Option<NaiveDate>,
    /// On a trial, which keeps the tenant active whatever `paid_until` says.
    pub on_trial: bool,
    /// The day the tenant was created.
    pub created_on: NaiveDate,
}

impl Tenant {
    /// Active when on trial or paid up to `today` (in the configured zone).
    pub fn is_active(&self, today: NaiveDate) -> bool {
        self.on_trial || self.paid_until.is_some_and(|paid| paid >= today)
    }

    /// True for the row of the public schema, whose hosts are public hosts.
    pub fn is_public(&self) -> bool {
        self.schema_name == "public"
    }

    /// Reads a row selected as `TENANT_COLUMNS`.
    pub(crate) fn from_row(row: &tokio_postgres::Row) -> Tenant {
        Tenant {
            id: row.get(0),
            schema_name: row.get(1),
            name: row.get(2),
            paid_until: row.get(3),
            on_trial: row.get(4),
            created_on: row.get(5),
        }
    }
}

/// The columns [`Tenant::from_row`] reads, for a `tenants_client` aliased `c`.
pub(crate) const TENANT_COLUMNS: &str =
    "c.id::int8, c.schema_name::text, c.name::text, c.paid_until, c.on_trial, c.created_on";

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(paid_until: Option<NaiveDate>, on_trial: bool) -> Tenant {
        Tenant {
            id: 1,
            schema_name: "acme".into(),
            name: "Acme".into(),
            paid_until,
            on_trial,
            created_on: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        }
    }

    #[test]
    fn activity_follows_trial_and_payment() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let yesterday = today.pred_opt().unwrap();
        assert!(tenant(None, true).is_active(today));
        assert!(tenant(Some(today), false).is_active(today));
        assert!(!tenant(Some(yesterday), false).is_active(today));
        assert!(!tenant(None, false).is_active(today));
        assert!(tenant(Some(yesterday), true).is_active(today));
    }
}
