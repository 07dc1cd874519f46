//! SQL in values (posts, logins, pages, ids, claims, tenant names,
//! domains, hosts) and path tricks that try to reach another route.

use botora::db::Scope;
use serde_json::json;

use crate::common::{TestServer, pool, posts, tenant, unique};
use crate::support::{
    PUBLIC, assert_public_intact, bad_access, call, claims, encode_path, operator, raw, raw_get,
    scalar, schema_exists, sign, tenant_with_alice,
};

const SQL_PAYLOADS: [&str; 10] = [
    "'; DROP TABLE blog_post; --",
    "\"; DROP TABLE auth_user; --",
    "' OR '1'='1",
    "1; DELETE FROM auth_user",
    "$1 $2 $$; DROP SCHEMA public CASCADE; $$",
    "') ; TRUNCATE public.tenants_client CASCADE; --",
    "E'\\x27'; SELECT pg_sleep(10); --",
    "%' OR title LIKE '%",
    "\\'; DROP TABLE blog_post; --",
    "Robert'); DROP TABLE Students;--",
];

#[tokio::test]
async fn sql_in_tenant_values_is_stored_verbatim_or_refused() {
    let pool = pool();
    let server = TestServer::start().await;
    let a = tenant_with_alice(&pool, &server, "sqli").await;
    let mut created = Vec::new();

    // Titles and bodies: stored and shown verbatim.
    for payload in SQL_PAYLOADS {
        let body = json!({"title": payload, "body": payload});
        let (status, post) = server
            .send("POST", &a.domain, "/api/posts/", Some(&a.access), &body)
            .await;
        assert_eq!(status, 201, "{payload}: {post}");
        assert_eq!(
            (post["title"].as_str(), post["body"].as_str()),
            (Some(payload), Some(payload))
        );
        let path = format!("/api/posts/{}/", post["id"]);
        let patch = json!({"body": format!("{payload} (patched)")});
        let (status, changed) = server
            .send("PATCH", &a.domain, &path, Some(&a.access), &patch)
            .await;
        assert_eq!(status, 200, "{payload}: {changed}");
        created.push((post["id"].as_i64().unwrap(), payload));
    }
    let scope = Scope::begin(&pool, &a.schema).await.unwrap();
    for (id, payload) in &created {
        let sql = "SELECT title::text, body FROM blog_post WHERE id = $1::int8";
        let row = scope.client().query_one(sql, &[id]).await.unwrap();
        let (title, body): (String, String) = (row.get(0), row.get(1));
        assert_eq!(
            (title.as_str(), body),
            (*payload, format!("{payload} (patched)"))
        );
    }
    scope.commit().await.unwrap();

    // Logins: refused, never a way in.
    let refused = json!({
        "detail": "No active account found with the given credentials",
        "code": "no_active_account",
    });
    for payload in SQL_PAYLOADS
        .iter()
        .chain(&["alice' --", "alice'/*", "alice\" OR \"\"=\""])
    {
        for body in [
            json!({"username": payload, "password": payload}),
            json!({"username": "alice", "password": payload}),
        ] {
            let answer = server
                .send("POST", &a.domain, "/api/token/", None, &body)
                .await;
            assert_eq!(answer, (401, refused.clone()), "{body}");
        }
    }

    // Page numbers and ids: not pages, not posts.
    let pages = [
        "1%20OR%201=1",
        "1;DROP%20TABLE%20blog_post",
        "1'",
        "(SELECT%201)",
        "1e3",
        "0x1",
    ];
    for page in pages {
        let answer = server
            .get(
                &a.domain,
                &format!("/api/posts/?page={page}"),
                Some(&a.access),
            )
            .await;
        assert_eq!(answer, (404, json!({"detail": "Invalid page."})), "{page}");
    }
    let ids = [
        "1%20OR%201=1",
        "1;DROP%20TABLE%20blog_post",
        "1'",
        "-0x1",
        "1.0",
        "%31%20OR%201=1",
        "%FF",
    ];
    for id in ids {
        let answer = server
            .get(&a.domain, &format!("/api/posts/{id}/"), Some(&a.access))
            .await;
        assert_eq!(answer, (404, json!({"detail": "Not found."})), "{id}");
    }
    // The path is percent-decoded first, as Django decodes it: `%31` is 1.
    let plain = server
        .get(&a.domain, "/api/posts/1/", Some(&a.access))
        .await;
    let escaped = server
        .get(&a.domain, "/api/posts/%31/", Some(&a.access))
        .await;
    assert_eq!(plain.0, 200, "{}", plain.1);
    assert_eq!(escaped, plain);

    // Claims: signed with the real key, still only values.
    let mut sneaky = claims("access", a.id, &a.schema, 300);
    sneaky["user_id"] = json!("1 OR 1=1");
    let answer = server
        .get(&a.domain, "/api/me/", Some(&sign(&sneaky)))
        .await;
    assert_eq!(answer.0, 401, "{}", answer.1);
    let mut sneaky = claims("access", a.id, &a.schema, 300);
    sneaky["tenant"] = json!(format!("{}' OR '1'='1", a.schema));
    let answer = server
        .get(&a.domain, "/api/me/", Some(&sign(&sneaky)))
        .await;
    assert_eq!(answer, (401, bad_access("Token is invalid")));

    // Everything is still there.
    let (status, list) = server.get(&a.domain, "/api/posts/", Some(&a.access)).await;
    assert_eq!(
        (status, list["count"].clone()),
        (200, json!(SQL_PAYLOADS.len()))
    );
    assert_eq!(
        server.get(&a.domain, "/api/me/", Some(&a.access)).await.0,
        200
    );
    assert_public_intact(&pool).await;
    server.stop().await;
}

#[tokio::test]
async fn sql_in_operator_values_is_stored_verbatim_or_refused() {
    let pool = pool();
    let server = TestServer::start().await;
    let (root, _) = operator(&pool, &server).await;
    let (schema, domain) = tenant(&pool, "sqlop").await;

    // Tenant names: stored verbatim.
    for payload in SQL_PAYLOADS {
        let fresh = unique("sqlname");
        let new_domain = format!("{}.test", fresh.replace('_', "-"));
        let body = json!({"schema_name": fresh, "name": payload, "on_trial": true, "domains": [new_domain]});
        let (status, made) = server
            .send("POST", PUBLIC, "/api/tenants/", Some(&root), &body)
            .await;
        assert_eq!(
            (status, made["name"].as_str()),
            (201, Some(payload)),
            "{made}"
        );
        let patch = json!({"name": format!("{payload}!")});
        let path = format!("/api/tenants/{fresh}/");
        let (status, changed) = server
            .send("PATCH", PUBLIC, &path, Some(&root), &patch)
            .await;
        assert_eq!(
            (status, changed["name"].clone()),
            (200, json!(format!("{payload}!")))
        );
        let sql = "SELECT name::text FROM public.tenants_client WHERE schema_name = $1";
        let stored: String = scalar(&pool, sql, &[&fresh]).await;
        assert_eq!(stored, format!("{payload}!"));
    }

    // Domains: refused as values, in every place they enter.
    for payload in SQL_PAYLOADS
        .iter()
        .chain(&["a.test'--", "a.test;b.test", "a.test%00"])
    {
        let path = format!("/api/tenants/{schema}/domains/");
        let body = json!({"domain": payload});
        let (status, answer) = server.send("POST", PUBLIC, &path, Some(&root), &body).await;
        assert_eq!(status, 400, "{payload}: {answer}");
        assert!(answer.get("domain").is_some(), "{answer}");
        let fresh = unique("sqldom");
        let body =
            json!({"schema_name": fresh, "name": "n", "on_trial": true, "domains": [payload]});
        let (status, answer) = server
            .send("POST", PUBLIC, "/api/tenants/", Some(&root), &body)
            .await;
        assert_eq!(status, 400, "{payload}: {answer}");
        assert!(answer.get("domains").is_some(), "{answer}");
        assert!(!schema_exists(&pool, &fresh).await);
        let path = format!("/api/tenants/{schema}/domains/{}/", encode_path(payload));
        let (status, answer) = call(&server, "DELETE", PUBLIC, &path, Some(&root), None).await;
        assert_eq!(status, 404, "{payload}: {answer}");
    }

    // Hosts: refused before any lookup.
    for host in [
        "a.test';DROP TABLE tenants_domain;--",
        "a.test\"--",
        "a.test OR 1=1",
    ] {
        let (status, body) = raw(
            server.http,
            &format!("GET /api/me/ HTTP/1.1\r\nHost: {host}\r\n"),
        )
        .await;
        assert_eq!(status, 400, "{host}: {body}");
    }

    // The tenant and its domain are untouched.
    let path = format!("/api/tenants/{schema}/");
    let (status, info) = server.get(PUBLIC, &path, Some(&root)).await;
    assert_eq!(
        (status, info["domains"][0]["domain"].clone()),
        (200, json!(domain))
    );
    assert_public_intact(&pool).await;
    server.stop().await;
}

/// The title marker of a tenant's posts.
fn marker(schema: &str) -> String {
    format!("secret-of-{schema}")
}

#[tokio::test]
async fn path_tricks_reach_no_other_route_tenant_or_the_operators_api() {
    let pool = pool();
    let server = TestServer::start().await;
    let a = tenant_with_alice(&pool, &server, "path_a").await;
    let b = tenant_with_alice(&pool, &server, "path_b").await;
    posts(&pool, &a.schema, a.id, &marker(&a.schema), 2).await;
    posts(&pool, &b.schema, b.id, &marker(&b.schema), 2).await;
    let (root, _) = operator(&pool, &server).await;
    let leaks = |body: &str| body.contains(&marker(&b.schema)) || body.contains("schema_name");

    // Controls: the real route, and the documented missing slash.
    for path in ["/api/posts/", "/api/posts"] {
        let (status, body) = raw_get(&server, &a.domain, path, &a.access).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.contains(&marker(&a.schema)) && !leaks(&body), "{body}");
    }

    // On a tenant host.
    let tricks = [
        "/api/posts/../tenants/",
        "/api/posts/%2e%2e/tenants/",
        "/api/posts/%2E%2E/%2E%2E/api/tenants/",
        "/api/%2e%2e/api/tenants/",
        "/api/tenants/",
        "/api/tenants/../posts/",
        "//api//posts",
        "//api/posts/",
        "/api//posts/",
        "/api/posts%2F",
        "/api%2Fposts/",
        "/api/posts/1%2F..%2F..%2Fme/",
        "/api/./posts/",
        "/./api/posts/",
        "/api/posts/./",
        "/api/posts/..",
        "/API/posts/",
        "/api/posts/%00/",
        "/api/posts/1/../../me/",
        "/api/posts/?page=1/../../tenants/",
        "/api/posts/..%5C..%5Ctenants/",
    ];
    for path in tricks {
        let (status, body) = raw_get(&server, &a.domain, path, &a.access).await;
        assert!(matches!(status, 400 | 404), "{path}: {status} {body}");
        assert!(!leaks(&body), "{path}: {body}");
    }

    // Absolute-form targets name their own host, and the token follows it.
    let elsewhere = [
        format!("http://{}/api/posts/", b.domain),
        format!("http://{PUBLIC}/api/tenants/"),
    ];
    for target in elsewhere {
        let (status, body) = raw_get(&server, &a.domain, &target, &a.access).await;
        assert_eq!(status, 401, "{target}: {body}");
        assert!(!leaks(&body), "{target}: {body}");
    }

    // On the public host, with an operator's token.
    let operator_tricks = [
        "/api/posts/".to_owned(),
        "/api/tenants/../posts/".to_owned(),
        "/api/tenants/%2e%2e/".to_owned(),
        format!("/api/tenants/{}%2F..%2F{}/", a.schema, b.schema),
        format!("/api/tenants/{}/../{}/", a.schema, b.schema),
        format!("/api/tenants/{}/domains/..%2F{}/", a.schema, b.domain),
    ];
    for path in &operator_tricks {
        let (status, body) = raw_get(&server, PUBLIC, path, &root).await;
        assert!(matches!(status, 400 | 404 | 405), "{path}: {status} {body}");
        assert!(!body.contains("schema_name"), "{path}: {body}");
    }
    let head = format!(
        "DELETE /api/tenants/{}/domains/..%2F{}/ HTTP/1.1\r\nHost: {PUBLIC}\r\nAuthorization: Bearer {root}\r\n",
        a.schema, b.domain
    );
    assert_eq!(raw(server.http, &head).await.0, 404);
    let (status, _) = raw_get(&server, &b.domain, "/api/posts/", &b.access).await;
    assert_eq!(status, 200, "tenant B still serves at its domain");
    server.stop().await;
}
