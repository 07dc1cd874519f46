//! `/api/posts/`: a tenant's blog posts, newest first, paginated; only the
//! author or a staff user may change or delete a post.

use chrono::{DateTime, SecondsFormat, Utc};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use serde::ser::Serializer;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::fields::{Errors, Text};
use super::pages::{Page, PageRequest};
use super::{authenticated, read_as_user, read_body, refuse_after_user};
use crate::auth::token::Claims;
use crate::auth::users::User;
use crate::db::{Query, Scope};
use crate::http::{ApiError, Response, empty_response, json_response};
use crate::route::Context;

macro_rules! post_columns {
    () => {
        "p.id::int8, p.title::text, p.body, u.id::int8, u.username::text, p.created_at, p.updated_at"
    };
}
const COLUMNS: &str = post_columns!();
const COUNT: &str = "SELECT count(*) FROM blog_post";
const PAGE: &str = concat!(
    "SELECT ",
    post_columns!(),
    " FROM blog_post p JOIN auth_user u ON u.id = p.author_id",
    " ORDER BY p.created_at DESC, p.id DESC OFFSET $1 LIMIT $2"
);
const ONE: &str = concat!(
    "SELECT ",
    post_columns!(),
    " FROM blog_post p JOIN auth_user u ON u.id = p.author_id WHERE p.id = $1::int8"
);
const AUTHOR_FOR_UPDATE: &str =
    "SELECT author_id::int8 FROM blog_post WHERE id = $1::int8 FOR UPDATE";

const TITLE: Text = Text {
    name: "title",
    required: true,
    max_chars: 200,
    allow_blank: false,
};
const BODY: Text = Text {
    name: "body",
    required: true,
    max_chars: usize::MAX,
    allow_blank: false,
};

/// A post as the API shows it, its text borrowed from the row it was read
/// from.
#[derive(Debug, Serialize)]
pub(super) struct Post<'row> {
    id: i64,
    title: &'row str,
    body: &'row str,
    author: Author<'row>,
    #[serde(serialize_with = "rfc3339")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
struct Author<'row> {
    id: i64,
    username: &'row str,
}

impl<'row> Post<'row> {
    fn from_row(row: &'row Row) -> Post<'row> {
        Post {
            id: row.get(0),
            title: row.get(1),
            body: row.get(2),
            author: Author {
                id: row.get(3),
                username: row.get(4),
            },
            created_at: row.get(5),
            updated_at: row.get(6),
        }
    }
}

/// Timestamps as DRF writes them: RFC 3339, microseconds, `Z`.
pub(super) fn rfc3339<S: Serializer>(
    time: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// `GET /api/posts/?page=N`: the count, the page and (when not cached)
/// the caller, read in one round trip.
pub(super) async fn list(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    let claims = crate::auth::bearer(context, request.headers())?;
    let page_size = context.settings.config.api.page_size;
    let page = PageRequest::from_query(request.uri().query(), page_size)
        .and_then(|page| Ok((page.offset()?, page)));
    let (offset, page) = match page {
        Ok(page) => page,
        Err(error) => return Err(refuse_after_user(context, &claims, error).await),
    };
    let page_params: [&(dyn ToSql + Sync); 2] = [&offset, &page.size];
    let queries: [Query<'_>; 2] = [(COUNT, &[]), (PAGE, &page_params)];
    let (_, mut rows) = read_as_user(context, &claims, &queries).await?;

    let page_rows = rows.pop().unwrap_or_default();
    let posts = page_rows.iter().map(Post::from_row).collect();
    let count: i64 = rows
        .pop()
        .and_then(|r| r.first().map(|row| row.get(0)))
        .unwrap_or(0);
    page.check(count)?;
    let base = format!("{}{}", context.origin, request.uri().path());
    Ok(json_response(
        StatusCode::OK,
        &Page::new(page, count, &base, posts),
    ))
}

/// `POST /api/posts/`
pub(super) async fn create(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    // The user first, as DRF does; no connection is held while the body
    // arrives.
    let claims = crate::auth::bearer(context, request.headers())?;
    let (user, _) = read_as_user(context, &claims, &[]).await?;
    let body = read_body(context, request).await?;
    let mut errors = Errors::default();
    let title = TITLE.read(&body, &mut errors);
    let text = BODY.read(&body, &mut errors);
    errors.finish()?;
    let (Some(title), Some(text)) = (title, text) else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };

    let scope = super::scope(context).await?;
    let sql = format!(
        "WITH p AS (INSERT INTO blog_post (title, body, author_id, created_at, updated_at)
                    VALUES ($1, $2, $3::int8, now(), now()) RETURNING *)
         SELECT {COLUMNS} FROM p JOIN auth_user u ON u.id = p.author_id"
    );
    let row = scope
        .client()
        .query_one(&sql, &[&title, &text, &user.id])
        .await?;
    scope.commit().await?;
    Ok(json_response(StatusCode::CREATED, &Post::from_row(&row)))
}

/// `GET /api/posts/{id}/`
pub(super) async fn retrieve(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    let claims = crate::auth::bearer(context, request.headers())?;
    let id = post_id(context, &claims).await?;
    let params: [&(dyn ToSql + Sync); 1] = [&id];
    let (_, mut rows) = read_as_user(context, &claims, &[(ONE, &params)]).await?;
    let found = rows.pop().unwrap_or_default();
    let post = found
        .first()
        .map(Post::from_row)
        .ok_or(ApiError::NotFound)?;
    Ok(json_response(StatusCode::OK, &post))
}

/// `PUT` (every field) or `PATCH` (`partial`) `/api/posts/{id}/`
pub(super) async fn update(
    context: &Context<'_>,
    request: Request<Incoming>,
    partial: bool,
) -> Result<Response, ApiError> {
    let claims = crate::auth::bearer(context, request.headers())?;
    let id = post_id(context, &claims).await?;
    let body = read_body(context, request).await?;

    // The post, and the caller's right to change it, before the values.
    let scope = super::scope(context).await?;
    let user = crate::auth::user(context, &scope, &claims).await?;
    lock_for_change(&scope, &user, id).await?;
    let mut errors = Errors::default();
    let required = |rule: Text| Text {
        required: !partial,
        ..rule
    };
    let title = required(TITLE).read(&body, &mut errors);
    let text = required(BODY).read(&body, &mut errors);
    errors.finish()?;

    let sql = format!(
        "WITH p AS (UPDATE blog_post SET title = COALESCE($2, title), body = COALESCE($3, body),
                    updated_at = now() WHERE id = $1::int8 RETURNING *)
         SELECT {COLUMNS} FROM p JOIN auth_user u ON u.id = p.author_id"
    );
    let row = scope
        .client()
        .query_one(&sql, &[&id, &title, &text])
        .await?;
    scope.commit().await?;
    Ok(json_response(StatusCode::OK, &Post::from_row(&row)))
}

/// `DELETE /api/posts/{id}/`
pub(super) async fn delete(
    context: &Context<'_>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    let (scope, user) = authenticated(context, request.headers()).await?;
    let id = parse_id(context).ok_or(ApiError::NotFound)?;
    lock_for_change(&scope, &user, id).await?;
    scope
        .client()
        .execute("DELETE FROM blog_post WHERE id = $1::int8", &[&id])
        .await?;
    scope.commit().await?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// The `{id}` of the path for the user of `claims`. One that is not a
/// 64-bit number names no post, but only once the user is known to be
/// active: DRF checks the user first.
async fn post_id(context: &Context<'_>, claims: &Claims) -> Result<i64, ApiError> {
    match parse_id(context) {
        Some(id) => Ok(id),
        None => Err(refuse_after_user(context, claims, ApiError::NotFound).await),
    }
}

fn parse_id(context: &Context<'_>) -> Option<i64> {
    context.params.get("id").unwrap_or_default().parse().ok()
}

/// Locks post `id` until the scope ends and checks that `user` may
/// change it: its author or a staff user. No such post is a `404`.
async fn lock_for_change(scope: &Scope, user: &User, id: i64) -> Result<(), ApiError> {
    let statement = scope.client().prepare_cached(AUTHOR_FOR_UPDATE).await?;
    let row = scope.client().query_opt(&statement, &[&id]).await?;
    let author: i64 = row.ok_or(ApiError::NotFound)?.get(0);
    match user.is_staff || author == user.id {
        true => Ok(()),
        false => Err(ApiError::PermissionDenied),
    }
}
