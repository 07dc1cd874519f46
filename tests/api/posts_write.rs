//! Writing posts: create, validation, update, delete and who may do them.

use serde_json::{Value, json};

use crate::common::*;
use crate::support::*;

const FORBIDDEN: &str = "You do not have permission to perform this action.";

/// Creates a post through the API; returns its body as answered.
async fn create(server: &TestServer, host: &str, access: &str, title: &str, body: &str) -> Value {
    let post = json!({"title": title, "body": body});
    let (status, answer) = server
        .send("POST", host, "/api/posts/", Some(access), &post)
        .await;
    assert_eq!(status, 201, "{answer}");
    answer
}

fn post_path(post: &Value) -> String {
    format!("/api/posts/{}/", post["id"])
}

#[tokio::test]
async fn create_answers_the_post_as_stored() {
    let pool = pool();
    let server = TestServer::start().await;
    let (_, domain, id, access) = tenant_with_alice(&pool, &server, "create").await;

    let started = chrono::Utc::now();
    let answered = create(&server, &domain, &access, "Hello", "First post").await;
    let mut post = answered.clone();
    let fields = post.as_object_mut().unwrap();
    let (created, updated) = (
        fields.remove("created_at").unwrap(),
        fields.remove("updated_at").unwrap(),
    );
    let post_id = fields["id"].as_i64().unwrap();
    assert!(post_id > 0);
    assert_eq!(
        post,
        json!({
            "id": post_id,
            "title": "Hello",
            "body": "First post",
            "author": {"id": id, "username": "alice"},
        })
    );
    for stamp in [&created, &updated] {
        assert_utc_timestamp(stamp);
        let at = chrono::DateTime::parse_from_rfc3339(stamp.as_str().unwrap()).unwrap();
        let skew = (at.with_timezone(&chrono::Utc) - started)
            .num_seconds()
            .abs();
        assert!(skew < 60, "{stamp} is now");
    }

    // It is listed and retrievable with the same fields.
    let (status, list) = server.get(&domain, "/api/posts/", Some(&access)).await;
    assert_eq!(status, 200);
    assert_eq!(list["results"], json!([answered]));
    let path = post_path(&answered);
    let retrieved = server.get(&domain, &path, Some(&access)).await;
    assert_eq!(retrieved, (200, answered));

    // Without the final slash, as with it.
    let body = json!({"title": "No slash", "body": "b"});
    let (status, answer) = server
        .send("POST", &domain, "/api/posts", Some(&access), &body)
        .await;
    assert_eq!((status, &answer["title"]), (201, &json!("No slash")));
    server.stop().await;
}

#[tokio::test]
async fn titles_and_bodies_are_validated_as_drf_does() {
    let pool = pool();
    let server = TestServer::start().await;
    let (_, domain, _, access) = tenant_with_alice(&pool, &server, "validate").await;

    let required = json!(["This field is required."]);
    let blank = json!(["This field may not be blank."]);
    let too_long = json!(["Ensure this field has no more than 200 characters."]);
    let cases = [
        (json!({}), json!({"title": required, "body": required})),
        (json!({"title": "t"}), json!({"body": required})),
        (json!({"body": "b"}), json!({"title": required})),
        (
            json!({"title": "", "body": " \n\t"}),
            json!({"title": blank, "body": blank}),
        ),
        (
            json!({"title": "x".repeat(201), "body": "b"}),
            json!({"title": too_long}),
        ),
        (
            json!({"title": "é".repeat(201), "body": "b"}),
            json!({"title": too_long}),
        ),
        (
            json!({"title": ["t"], "body": "b"}),
            json!({"title": ["Not a valid string."]}),
        ),
        (
            json!({"title": {"t": 1}, "body": false}),
            json!({"title": ["Not a valid string."], "body": ["Not a valid string."]}),
        ),
        (
            json!({"title": null, "body": "b"}),
            json!({"title": ["This field may not be null."]}),
        ),
        (
            json!({"title": "a\u{0}b", "body": "b"}),
            json!({"title": ["Null characters are not allowed."]}),
        ),
        (
            json!({"title": "t", "body": "\u{0}"}),
            json!({"body": ["Null characters are not allowed."]}),
        ),
    ];
    for (body, expected) in cases {
        let answer = server
            .send("POST", &domain, "/api/posts/", Some(&access), &body)
            .await;
        assert_eq!(answer, (400, expected), "{body}");
    }

    // Nothing was stored by the refused requests.
    let (_, list) = server.get(&domain, "/api/posts/", Some(&access)).await;
    assert_eq!(list["count"], 0);

    // The limits themselves are fine; strings are trimmed, numbers become text.
    let post = create(&server, &domain, &access, &"é".repeat(200), "b").await;
    assert_eq!(post["title"].as_str().unwrap().chars().count(), 200);
    let post = create(&server, &domain, &access, "  padded\n", " body ").await;
    assert_eq!(
        (&post["title"], &post["body"]),
        (&json!("padded"), &json!("body"))
    );
    let body = json!({"title": 42, "body": 1.5});
    let (status, post) = server
        .send("POST", &domain, "/api/posts/", Some(&access), &body)
        .await;
    assert_eq!(
        (status, &post["title"], &post["body"]),
        (201, &json!("42"), &json!("1.5"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_title_that_looks_like_sql_is_stored_verbatim() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain, _, access) = tenant_with_alice(&pool, &server, "inject").await;

    let title = "'); DROP TABLE blog_post; --";
    let body = "\" OR 1=1; SELECT pg_sleep(10); -- $1 \\ %s";
    let post = create(&server, &domain, &access, title, body).await;
    assert_eq!(
        (post["title"].as_str(), post["body"].as_str()),
        (Some(title), Some(body))
    );
    let (status, again) = server.get(&domain, &post_path(&post), Some(&access)).await;
    assert_eq!((status, &again["title"]), (200, &json!(title)));

    // The table is still there, holding that row.
    let stored = execute(
        &pool,
        &schema,
        "SELECT 1 FROM blog_post WHERE title = $1",
        &[&title],
    )
    .await;
    assert_eq!(stored, 1);
    let (status, list) = server.get(&domain, "/api/posts/", Some(&access)).await;
    assert_eq!((status, &list["count"]), (200, &json!(1)));
    server.stop().await;
}

#[tokio::test]
async fn put_replaces_and_patch_changes_some_fields() {
    let pool = pool();
    let server = TestServer::start().await;
    let (_, domain, id, access) = tenant_with_alice(&pool, &server, "update").await;
    let post = create(&server, &domain, &access, "Old", "Old body").await;
    let path = post_path(&post);

    // PUT needs every field.
    let required = json!(["This field is required."]);
    let partial = json!({"title": "New"});
    let answer = server
        .send("PUT", &domain, &path, Some(&access), &partial)
        .await;
    assert_eq!(answer, (400, json!({"body": required})));
    let answer = server
        .send("PUT", &domain, &path, Some(&access), &json!({}))
        .await;
    assert_eq!(answer, (400, json!({"title": required, "body": required})));

    let full = json!({"title": "New", "body": "New body"});
    let (status, put) = server
        .send("PUT", &domain, &path, Some(&access), &full)
        .await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["id"], post["id"]);
    assert_eq!(
        (&put["title"], &put["body"]),
        (&json!("New"), &json!("New body"))
    );
    assert_eq!(put["author"], json!({"id": id, "username": "alice"}));
    assert_eq!(put["created_at"], post["created_at"]);
    assert_utc_timestamp(&put["updated_at"]);
    assert!(put["updated_at"].as_str() >= post["updated_at"].as_str());

    // PATCH changes what it names, and checks what it names.
    let (status, patched) = server
        .send(
            "PATCH",
            &domain,
            &path,
            Some(&access),
            &json!({"body": "Patched"}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (&patched["title"], &patched["body"]),
        (&json!("New"), &json!("Patched"))
    );
    let (status, same) = server
        .send("PATCH", &domain, &path, Some(&access), &json!({}))
        .await;
    assert_eq!(
        (status, &same["title"], &same["body"]),
        (200, &json!("New"), &json!("Patched"))
    );
    let answer = server
        .send(
            "PATCH",
            &domain,
            &path,
            Some(&access),
            &json!({"title": ""}),
        )
        .await;
    assert_eq!(
        answer,
        (400, json!({"title": ["This field may not be blank."]}))
    );
    let answer = server
        .send(
            "PATCH",
            &domain,
            &path,
            Some(&access),
            &json!({"title": "x".repeat(201)}),
        )
        .await;
    assert_eq!(
        answer,
        (
            400,
            json!({"title": ["Ensure this field has no more than 200 characters."]})
        )
    );

    // Retrieval shows the last good state; unknown ids are 404.
    let (_, now) = server.get(&domain, &path, Some(&access)).await;
    assert_eq!(
        (&now["title"], &now["body"]),
        (&json!("New"), &json!("Patched"))
    );
    for method in ["PUT", "PATCH"] {
        let answer = server
            .send(method, &domain, "/api/posts/999999/", Some(&access), &full)
            .await;
        assert_eq!(answer, (404, json!({"detail": "Not found."})), "{method}");
    }
    server.stop().await;
}

#[tokio::test]
async fn only_the_author_or_staff_may_change_a_post() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain, alice, access) = tenant_with_alice(&pool, &server, "perm").await;
    user(&pool, &schema, "mallory", "pw-mallory", false).await;
    user(&pool, &schema, "boss", "pw-boss", true).await;
    let (mallory, _) = server.login(&domain, "mallory", "pw-mallory").await;
    let (boss, _) = server.login(&domain, "boss", "pw-boss").await;
    let post = create(&server, &domain, &access, "Mine", "Alice's").await;
    let path = post_path(&post);

    // Another user may read but not change, whatever the body.
    assert_eq!(
        server.get(&domain, &path, Some(&mallory)).await,
        (200, post.clone())
    );
    let forbidden = (403, json!({"detail": FORBIDDEN}));
    let full = json!({"title": "Hijacked", "body": "b"});
    for (method, body) in [
        ("PUT", &full),
        ("PATCH", &full),
        ("PUT", &json!({})),
        ("DELETE", &json!({})),
    ] {
        let answer = server
            .send(method, &domain, &path, Some(&mallory), body)
            .await;
        assert_eq!(answer, forbidden, "{method} {body}");
    }
    assert_eq!(
        server.get(&domain, &path, Some(&access)).await,
        (200, post.clone())
    );

    // A staff user may; the author stays the author.
    let (status, put) = server.send("PUT", &domain, &path, Some(&boss), &full).await;
    assert_eq!((status, &put["title"]), (200, &json!("Hijacked")));
    assert_eq!(put["author"], json!({"id": alice, "username": "alice"}));
    let (status, patched) = server
        .send(
            "PATCH",
            &domain,
            &path,
            Some(&boss),
            &json!({"title": "Moderated"}),
        )
        .await;
    assert_eq!(
        (status, &patched["title"], &patched["body"]),
        (200, &json!("Moderated"), &json!("b"))
    );
    let deleted = server
        .send("DELETE", &domain, &path, Some(&boss), &json!({}))
        .await;
    assert_eq!(deleted, (204, Value::Null));
    server.stop().await;
}

#[tokio::test]
async fn delete_is_204_then_404() {
    let pool = pool();
    let server = TestServer::start().await;
    let (_, domain, _, access) = tenant_with_alice(&pool, &server, "delete").await;
    let kept = create(&server, &domain, &access, "Kept", "b").await;
    let post = create(&server, &domain, &access, "Doomed", "b").await;
    let path = post_path(&post);

    let response = server
        .client
        .delete(server.url(&path))
        .header("Host", &domain)
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());

    let not_found = (404, json!({"detail": "Not found."}));
    assert_eq!(server.get(&domain, &path, Some(&access)).await, not_found);
    let again = server
        .send("DELETE", &domain, &path, Some(&access), &json!({}))
        .await;
    assert_eq!(again, not_found);
    let patch = server
        .send(
            "PATCH",
            &domain,
            &path,
            Some(&access),
            &json!({"title": "x"}),
        )
        .await;
    assert_eq!(patch, not_found);

    let (_, list) = server.get(&domain, "/api/posts/", Some(&access)).await;
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["id"], kept["id"]);
    server.stop().await;
}

/// DRF authenticates the user before the view reads the body, so a deleted
/// or inactive user hears 401 whatever they sent.
#[tokio::test]
async fn create_checks_the_user_before_the_body() {
    let pool = pool();
    let mut config = test_config();
    config.auth.user_cache_ttl = std::time::Duration::from_millis(1);
    let server = TestServer::start_with(config).await;
    let (schema, domain, alice, access) = tenant_with_alice(&pool, &server, "createidle").await;
    set_active(&pool, &schema, alice, false).await;

    let inactive = json!({"detail": "User is inactive", "code": "user_inactive"});
    for body in [json!({}), json!({"title": "x".repeat(201), "body": "b"})] {
        let answer = server
            .send("POST", &domain, "/api/posts/", Some(&access), &body)
            .await;
        assert_eq!(answer, (401, inactive.clone()), "{body}");
    }
    server.stop().await;
}
