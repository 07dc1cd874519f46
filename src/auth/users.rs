//! Users of `auth_user` (a tenant's, or the public schema's operators), and
//! a short-lived cache so a valid token does not cost a query per request.
//!
//! The cache keeps a user for `auth.user_cache_ttl` (default 1 s): a user
//! deactivated or deleted loses access within that bound.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::future::Cache;
use serde::Serialize;
use tokio_postgres::Row;

use crate::db::{DbError, Scope};

/// The columns of `auth_user` Botora reads, password aside.
macro_rules! user_columns {
    () => {
        "id::int8, username::text, email::text, first_name::text, \
         last_name::text, is_staff, is_superuser, is_active, date_joined"
    };
}

/// One user by id (`$1`), in the scope's schema.
pub const BY_ID: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM auth_user WHERE id = $1::int8"
);
const BY_USERNAME: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", password::text FROM auth_user WHERE username = $1"
);

/// One user.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// May edit others' posts.
    pub is_staff: bool,
    /// May use the operators' API (public schema users).
    pub is_superuser: bool,
    /// May log in at all.
    pub is_active: bool,
    /// When the account was made.
    pub date_joined: DateTime<Utc>,
}

impl User {
    /// Reads a row selected by [`BY_ID`].
    pub fn from_row(row: &Row) -> User {
        User {
            id: row.get(0),
            username: row.get(1),
            email: row.get(2),
            first_name: row.get(3),
            last_name: row.get(4),
            is_staff: row.get(5),
            is_superuser: row.get(6),
            is_active: row.get(7),
            date_joined: row.get(8),
        }
    }
}

/// A user with the stored password hash, for logins.
pub struct Credentials {
    /// The user.
    pub user: User,
    /// Django-format hash.
    pub password: String,
}

/// The user with this id in the scope's schema.
pub async fn by_id(scope: &Scope, id: i64) -> Result<Option<User>, DbError> {
    let statement = scope.client().prepare_cached(BY_ID).await?;
    let row = scope.client().query_opt(&statement, &[&id]).await?;
    Ok(row.as_ref().map(User::from_row))
}

/// The user with this username, with the password hash.
pub async fn by_username(scope: &Scope, username: &str) -> Result<Option<Credentials>, DbError> {
    let statement = scope.client().prepare_cached(BY_USERNAME).await?;
    let row = scope.client().query_opt(&statement, &[&username]).await?;
    Ok(row.map(|row| Credentials {
        user: User::from_row(&row),
        password: row.get(9),
    }))
}

/// Replaces a user's password hash (a login upgrading an old hash).
pub async fn set_password(scope: &Scope, id: i64, encoded: &str) -> Result<(), DbError> {
    scope
        .client()
        .execute(
            "UPDATE auth_user SET password = $2 WHERE id = $1::int8",
            &[&id, &encoded],
        )
        .await?;
    Ok(())
}

/// Users seen recently, by schema and id; `None` caches "no such user".
pub struct UserCache {
    cache: Cache<(String, i64), Option<Arc<User>>>,
}

impl UserCache {
    /// A cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> UserCache {
        UserCache {
            cache: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The user `id` of `schema`, from the cache or read through `scope`.
    pub async fn get(
        &self,
        scope: &Scope,
        schema: &str,
        id: i64,
    ) -> Result<Option<Arc<User>>, DbError> {
        if let Some(user) = self.peek(schema, id).await {
            return Ok(user);
        }
        let user = by_id(scope, id).await?;
        Ok(self.remember(schema, id, user).await)
    }

    /// What is cached of user `id` of `schema`: `None` when nothing is.
    pub async fn peek(&self, schema: &str, id: i64) -> Option<Option<Arc<User>>> {
        self.cache.get(&(schema.to_owned(), id)).await
    }

    /// Caches what was read of user `id` (`None`: no such user).
    pub async fn remember(&self, schema: &str, id: i64, user: Option<User>) -> Option<Arc<User>> {
        let user = user.map(Arc::new);
        self.cache
            .insert((schema.to_owned(), id), user.clone())
            .await;
        user
    }
}
