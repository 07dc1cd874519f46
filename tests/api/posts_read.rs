//! Reading posts: the paginated list, one post, and tenant isolation.

use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

fn titles(page: &Value) -> Vec<&str> {
    let results = page["results"].as_array().unwrap();
    results
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect()
}

fn numbered(range: std::ops::RangeInclusive<i64>) -> Vec<String> {
    range.map(|n| format!("post {n}")).collect()
}

#[tokio::test]
async fn an_empty_list() {
    let pool = pool();
    let server = TestServer::start().await;
    let (_, domain, _, access) = tenant_with_alice(&pool, &server, "empty").await;
    let empty = json!({"count": 0, "next": null, "previous": null, "results": []});
    for path in ["/api/posts/", "/api/posts/?page=1", "/api/posts"] {
        assert_eq!(
            server.get(&domain, path, Some(&access)).await,
            (200, empty.clone()),
            "{path}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn pages_of_twenty_newest_first_with_drf_links() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain, id, access) = tenant_with_alice(&pool, &server, "pages").await;
    // "post 1" is the newest, "post 45" the oldest.
    posts(&pool, &schema, id, "post", 45).await;
    let base = format!("http://{domain}/api/posts/");

    let (status, first) = server.get(&domain, "/api/posts/", Some(&access)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["count"], 45);
    assert_eq!(first["next"], json!(format!("{base}?page=2")));
    assert_eq!(first["previous"], Value::Null);
    assert_eq!(titles(&first), numbered(1..=20));
    let keys = key_set(&first);
    assert_eq!(keys, ["count", "next", "previous", "results"]);

    let (status, second) = server
        .get(&domain, "/api/posts/?page=2", Some(&access))
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["next"], json!(format!("{base}?page=3")));
    assert_eq!(second["previous"], json!(base));
    assert_eq!(titles(&second), numbered(21..=40));

    let (status, third) = server
        .get(&domain, "/api/posts/?page=3", Some(&access))
        .await;
    assert_eq!(status, 200, "{third}");
    assert_eq!(third["count"], 45);
    assert_eq!(third["next"], Value::Null);
    assert_eq!(third["previous"], json!(format!("{base}?page=2")));
    assert_eq!(titles(&third), numbered(41..=45));

    let invalid = (404, json!({"detail": "Invalid page."}));
    for page in [
        "0",
        "-1",
        "abc",
        "4",
        "1.5",
        "99999999999999999999",
        "9223372036854775807",
    ] {
        let path = format!("/api/posts/?page={page}");
        assert_eq!(
            server.get(&domain, &path, Some(&access)).await,
            invalid,
            "{page}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn links_keep_the_host_and_port_the_client_used() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain, id, access) = tenant_with_alice(&pool, &server, "linkhost").await;
    posts(&pool, &schema, id, "post", 21).await;

    let host = format!("{domain}:8000");
    let (status, first) = server.get(&host, "/api/posts/", Some(&access)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["next"],
        json!(format!("http://{host}/api/posts/?page=2"))
    );
    server.stop().await;
}

#[tokio::test]
async fn the_page_size_comes_from_config() {
    let pool = pool();
    let mut config = test_config();
    config.api.page_size = 2;
    let server = TestServer::start_with(config).await;
    let (schema, domain, id, access) = tenant_with_alice(&pool, &server, "pagesize").await;
    posts(&pool, &schema, id, "post", 5).await;

    let (status, page) = server
        .get(&domain, "/api/posts/?page=3", Some(&access))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(titles(&page), ["post 5"]);
    assert_eq!(page["next"], Value::Null);
    server.stop().await;
}

#[tokio::test]
async fn one_post_and_unknown_ids() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain, id, access) = tenant_with_alice(&pool, &server, "retrieve").await;
    posts(&pool, &schema, id, "post", 1).await;
    let (_, list) = server.get(&domain, "/api/posts/", Some(&access)).await;
    let listed = list["results"][0].clone();
    let post_id = listed["id"].as_i64().unwrap();

    // The same post as in the list, with or without the final slash.
    for path in [
        format!("/api/posts/{post_id}/"),
        format!("/api/posts/{post_id}"),
    ] {
        assert_eq!(
            server.get(&domain, &path, Some(&access)).await,
            (200, listed.clone())
        );
    }
    assert_eq!(listed["title"], "post 1");
    assert_eq!(listed["body"], "body");
    assert_eq!(listed["author"], json!({"id": id, "username": "alice"}));

    let not_found = (404, json!({"detail": "Not found."}));
    let unknown = [
        format!("{}", post_id + 1),
        "0".into(),
        "-1".into(),
        "abc".into(),
        "99999999999999999999".into(),
        "1e3".into(),
    ];
    for raw in unknown {
        let path = format!("/api/posts/{raw}/");
        assert_eq!(
            server.get(&domain, &path, Some(&access)).await,
            not_found,
            "{raw}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn posts_of_one_tenant_are_never_seen_from_another() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema_a, domain_a, id_a, access_a) = tenant_with_alice(&pool, &server, "isoa").await;
    let (schema_b, domain_b, id_b, access_b) = tenant_with_alice(&pool, &server, "isob").await;
    posts(&pool, &schema_a, id_a, "secret of A", 3).await;

    // B sees none of A's posts, whose ids it has not used yet.
    let (_, list_a) = server.get(&domain_a, "/api/posts/", Some(&access_a)).await;
    let ids_a: Vec<i64> = list_a["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    let (_, list_b) = server.get(&domain_b, "/api/posts/", Some(&access_b)).await;
    assert_eq!(list_b["count"], 0);
    for id in &ids_a {
        let path = format!("/api/posts/{id}/");
        let answer = server.get(&domain_b, &path, Some(&access_b)).await;
        assert_eq!(answer, (404, json!({"detail": "Not found."})));
    }

    // Once B has posts of its own, the same ids name different posts.
    posts(&pool, &schema_b, id_b, "note of B", 3).await;
    for id in &ids_a {
        let path = format!("/api/posts/{id}/");
        let (_, from_a) = server.get(&domain_a, &path, Some(&access_a)).await;
        let (_, from_b) = server.get(&domain_b, &path, Some(&access_b)).await;
        assert_eq!(from_a["id"], from_b["id"]);
        assert!(from_a["title"].as_str().unwrap().starts_with("secret of A"));
        assert!(from_b["title"].as_str().unwrap().starts_with("note of B"));
    }
    let (_, list_b) = server.get(&domain_b, "/api/posts/", Some(&access_b)).await;
    assert_eq!(
        titles(&list_b),
        ["note of B 1", "note of B 2", "note of B 3"]
    );

    // Deleting through B leaves A's post of the same id alone.
    let path = format!("/api/posts/{}/", ids_a[0]);
    let deleted = server
        .send("DELETE", &domain_b, &path, Some(&access_b), &json!({}))
        .await;
    assert_eq!(deleted.0, 204);
    assert_eq!(server.get(&domain_a, &path, Some(&access_a)).await.0, 200);
    server.stop().await;
}

/// DRF authenticates and checks permissions before it looks at the query
/// or the path's id, so a caller without credentials learns nothing else.
#[tokio::test]
async fn credentials_are_checked_before_the_page_and_the_id() {
    let pool = pool();
    let server = TestServer::start().await;
    let (_, domain) = tenant(&pool, "authfirst").await;
    let not_provided = (
        401,
        json!({"detail": "Authentication credentials were not provided."}),
    );
    for path in [
        "/api/posts/?page=abc",
        "/api/posts/?page=0",
        "/api/posts/abc/",
    ] {
        assert_eq!(
            server.get(&domain, path, None).await,
            not_provided,
            "{path}"
        );
    }
    for method in ["PUT", "PATCH", "DELETE"] {
        let answer = server
            .send(method, &domain, "/api/posts/abc/", None, &json!({}))
            .await;
        assert_eq!(answer, not_provided, "{method}");
    }
    server.stop().await;
}
