//! Routing: which handler a path reaches, on a tenant host or a public one.
//!
//! Paths are matched with matchit against two fixed tables. As with DRF's
//! `DefaultRouter`, routes end in `/`; a path without the final slash is
//! answered as if it had it (no redirect, so a POST body is never lost).

use std::sync::{Arc, LazyLock};

use percent_encoding::percent_decode_str;

use crate::app::{App, Settings};
use crate::tenant::Tenant;

/// Who a request is for.
#[derive(Debug, Clone)]
pub enum Target {
    /// A public host: the operators' API, on the public schema.
    Public,
    /// A tenant host.
    Tenant(Arc<Tenant>),
}

impl Target {
    /// The schema the request's statements run in.
    pub fn schema(&self) -> &str {
        match self {
            Target::Public => "public",
            Target::Tenant(tenant) => &tenant.schema_name,
        }
    }
}

/// Every route Botora serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/api/token/`
    Token,
    /// `/api/token/refresh/`
    TokenRefresh,
    /// `/api/token/verify/`
    TokenVerify,
    /// `/api/me/`
    Me,
    /// `/api/tenant/`
    TenantInfo,
    /// `/api/posts/`
    Posts,
    /// `/api/posts/{id}/`
    Post,
    /// `/api/schema/`
    Schema,
    /// `/api/tenants/`
    Tenants,
    /// `/api/tenants/{schema}/`
    TenantItem,
    /// `/api/tenants/{schema}/domains/`
    TenantDomains,
    /// `/api/tenants/{schema}/domains/{domain}/`
    TenantDomain,
}

impl Route {
    /// The route's label in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Route::Token => "token",
            Route::TokenRefresh => "token_refresh",
            Route::TokenVerify => "token_verify",
            Route::Me => "me",
            Route::TenantInfo => "tenant",
            Route::Posts => "posts",
            Route::Post => "post",
            Route::Schema => "schema",
            Route::Tenants => "tenants",
            Route::TenantItem => "tenant_item",
            Route::TenantDomains => "tenant_domains",
            Route::TenantDomain => "tenant_domain",
        }
    }
}

const SHARED: [(&str, Route); 4] = [
    ("/api/token/", Route::Token),
    ("/api/token/refresh/", Route::TokenRefresh),
    ("/api/token/verify/", Route::TokenVerify),
    ("/api/schema/", Route::Schema),
];

/// Routes of tenant hosts (beside the shared ones).
pub const TENANT_ROUTES: [(&str, Route); 4] = [
    ("/api/me/", Route::Me),
    ("/api/tenant/", Route::TenantInfo),
    ("/api/posts/", Route::Posts),
    ("/api/posts/{id}/", Route::Post),
];

/// Routes of public hosts (beside the shared ones).
pub const PUBLIC_ROUTES: [(&str, Route); 4] = [
    ("/api/tenants/", Route::Tenants),
    ("/api/tenants/{schema}/", Route::TenantItem),
    ("/api/tenants/{schema}/domains/", Route::TenantDomains),
    (
        "/api/tenants/{schema}/domains/{domain}/",
        Route::TenantDomain,
    ),
];

fn table(own: &[(&'static str, Route)]) -> matchit::Router<Route> {
    let mut router = matchit::Router::new();
    for (path, route) in SHARED.iter().chain(own) {
        if let Err(error) = router.insert(*path, *route) {
            unreachable!("route table is fixed and valid: {error}");
        }
    }
    router
}

static TENANT: LazyLock<matchit::Router<Route>> = LazyLock::new(|| table(&TENANT_ROUTES));
static PUBLIC: LazyLock<matchit::Router<Route>> = LazyLock::new(|| table(&PUBLIC_ROUTES));

/// Values captured from the path, such as `id`.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The value captured as `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The route of `path` for `target`, if any, with its captured values
/// percent-decoded, as Django decodes the path before resolving it. A
/// value that does not decode to UTF-8 matches nothing.
pub fn find(target: &Target, path: &str) -> Option<(Route, Params)> {
    let router = match target {
        Target::Public => &*PUBLIC,
        Target::Tenant(_) => &*TENANT,
    };
    match router.at(path) {
        Ok(matched) => captured(matched),
        Err(_) if !path.ends_with('/') => captured(router.at(&format!("{path}/")).ok()?),
        Err(_) => None,
    }
}

fn captured(matched: matchit::Match<'_, '_, &Route>) -> Option<(Route, Params)> {
    let params = matched
        .params
        .iter()
        .map(|(key, value)| {
            let value = percent_decode_str(value).decode_utf8().ok()?;
            Some((key.to_owned(), value.into_owned()))
        })
        .collect::<Option<_>>()?;
    Some((*matched.value, Params(params)))
}

/// What a handler gets besides the request.
pub struct Context<'a> {
    /// Shared state.
    pub app: &'a App,
    /// The config in force when the request arrived.
    pub settings: &'a Arc<Settings>,
    /// Who the request is for.
    pub target: Target,
    /// Values captured from the path.
    pub params: Params,
    /// `scheme://host[:port]` as the client addressed us, for absolute links.
    pub origin: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Target {
        Target::Tenant(Arc::new(Tenant {
            id: 1,
            schema_name: "acme".into(),
            name: "Acme".into(),
            paid_until: None,
            on_trial: true,
            created_on: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        }))
    }

    #[test]
    fn routes_depend_on_the_target() {
        assert_eq!(find(&tenant(), "/api/posts/").unwrap().0, Route::Posts);
        assert!(find(&Target::Public, "/api/posts/").is_none());
        assert_eq!(
            find(&Target::Public, "/api/tenants/").unwrap().0,
            Route::Tenants
        );
        assert!(find(&tenant(), "/api/tenants/").is_none());
        assert_eq!(find(&tenant(), "/api/token/").unwrap().0, Route::Token);
        assert_eq!(
            find(&Target::Public, "/api/token/").unwrap().0,
            Route::Token
        );
    }

    #[test]
    fn params_and_missing_slash() {
        let (route, params) = find(&tenant(), "/api/posts/42").unwrap();
        assert_eq!(route, Route::Post);
        assert_eq!(params.get("id"), Some("42"));
        let (_, params) = find(&Target::Public, "/api/tenants/acme/domains/a.test/").unwrap();
        assert_eq!(params.get("domain"), Some("a.test"));
    }

    #[test]
    fn captured_values_are_percent_decoded() {
        let (_, params) = find(&Target::Public, "/api/tenants/t%5F1/domains/a%2Etest").unwrap();
        assert_eq!(params.get("schema"), Some("t_1"));
        assert_eq!(params.get("domain"), Some("a.test"));
        // A decoded slash stays inside the value; it cannot reach another route.
        let (route, params) = find(&tenant(), "/api/posts/1%2F2/").unwrap();
        assert_eq!(route, Route::Post);
        assert_eq!(params.get("id"), Some("1/2"));
        // Bytes that are not UTF-8 match nothing.
        assert!(find(&tenant(), "/api/posts/%FF/").is_none());
    }

    #[test]
    fn traversal_and_unknown_paths_do_not_match() {
        assert!(find(&tenant(), "/api/posts/../me/").is_none());
        assert!(find(&tenant(), "/api/posts/1/2/").is_none());
        assert!(find(&tenant(), "/").is_none());
        assert!(find(&tenant(), "/api//posts/").is_none());
    }
}
