//! Tokens of users who were deactivated or deleted after they logged in.

use std::time::Duration;

use botora::db::Scope;
use deadpool_postgres::Pool;
use serde_json::json;

use crate::common::{TestServer, pool, tenant, test_config, user};
use crate::support::{PASSWORD, call, eventually};

async fn set_active(pool: &Pool, schema: &str, id: i64, on: bool) {
    let scope = Scope::begin(pool, schema).await.unwrap();
    let sql = "UPDATE auth_user SET is_active = $2 WHERE id = $1::int8";
    assert_eq!(scope.client().execute(sql, &[&id, &on]).await.unwrap(), 1);
    scope.commit().await.unwrap();
}

async fn delete_user(pool: &Pool, schema: &str, id: i64) {
    let scope = Scope::begin(pool, schema).await.unwrap();
    let sql = "DELETE FROM auth_user WHERE id = $1::int8";
    assert_eq!(scope.client().execute(sql, &[&id]).await.unwrap(), 1);
    scope.commit().await.unwrap();
}

/// Waits until `token` gets `code` on `/api/me/`.
async fn wait_refused(server: &TestServer, domain: &str, token: &str, code: &str) {
    eventually(code, || async move {
        let (status, body) = server.get(domain, "/api/me/", Some(token)).await;
        status == 401 && body["code"] == code
    })
    .await;
}

#[tokio::test]
async fn deactivated_and_deleted_users_cannot_refresh_log_in_or_write() {
    let pool = pool();
    let mut config = test_config();
    config.auth.user_cache_ttl = Duration::from_millis(100);
    let server = TestServer::start_with(config).await;
    let (schema, domain) = tenant(&pool, "gone").await;
    let idle = user(&pool, &schema, "idle", PASSWORD, false).await;
    let gone = user(&pool, &schema, "gone", PASSWORD, false).await;
    let (idle_access, idle_refresh) = server.login(&domain, "idle", PASSWORD).await;
    let (gone_access, gone_refresh) = server.login(&domain, "gone", PASSWORD).await;
    let post = r#"{"title": "mine", "body": "mine"}"#;
    let (status, own) = call(
        &server,
        "POST",
        &domain,
        "/api/posts/",
        Some(&idle_access),
        Some(post),
    )
    .await;
    assert_eq!(status, 201, "{own}");

    set_active(&pool, &schema, idle, false).await;
    delete_user(&pool, &schema, gone).await;
    wait_refused(&server, &domain, &idle_access, "user_inactive").await;
    wait_refused(&server, &domain, &gone_access, "user_not_found").await;

    // Refresh and login are refused for both.
    let no_account = json!({
        "detail": "No active account found for the given token.",
        "code": "no_active_account",
    });
    let credentials = json!({
        "detail": "No active account found with the given credentials",
        "code": "no_active_account",
    });
    for (name, refresh) in [("idle", &idle_refresh), ("gone", &gone_refresh)] {
        let body = json!({"refresh": refresh});
        let answer = server
            .send("POST", &domain, "/api/token/refresh/", None, &body)
            .await;
        assert_eq!(answer, (401, no_account.clone()), "{name}");
        let body = json!({"username": name, "password": PASSWORD});
        let answer = server
            .send("POST", &domain, "/api/token/", None, &body)
            .await;
        assert_eq!(answer, (401, credentials.clone()), "{name}");
    }

    // The inactive user writes nothing, and the post is unchanged.
    let inactive = json!({"detail": "User is inactive", "code": "user_inactive"});
    let created = call(
        &server,
        "POST",
        &domain,
        "/api/posts/",
        Some(&idle_access),
        Some(post),
    );
    assert_eq!(created.await, (401, inactive.clone()));
    let path = format!("/api/posts/{}/", own["id"]);
    let patch = r#"{"title": "changed"}"#;
    let changed = call(
        &server,
        "PATCH",
        &domain,
        &path,
        Some(&idle_access),
        Some(patch),
    );
    assert_eq!(changed.await, (401, inactive.clone()));
    let deleted = call(&server, "DELETE", &domain, &path, Some(&idle_access), None);
    assert_eq!(deleted.await, (401, inactive));
    let titles: Vec<String> = {
        let scope = Scope::begin(&pool, &schema).await.unwrap();
        let rows = scope
            .client()
            .query("SELECT title::text FROM blog_post", &[])
            .await
            .unwrap();
        rows.iter().map(|row| row.get(0)).collect()
    };
    assert_eq!(titles, ["mine"]);

    // The same username again is another user: the old tokens stay dead.
    let again = user(&pool, &schema, "gone", PASSWORD, false).await;
    assert_ne!(again, gone);
    let (fresh, _) = server.login(&domain, "gone", PASSWORD).await;
    assert_eq!(server.get(&domain, "/api/me/", Some(&fresh)).await.0, 200);
    let not_found = json!({"detail": "User not found", "code": "user_not_found"});
    assert_eq!(
        server.get(&domain, "/api/me/", Some(&gone_access)).await,
        (401, not_found)
    );
    let body = json!({"refresh": gone_refresh});
    let answer = server
        .send("POST", &domain, "/api/token/refresh/", None, &body)
        .await;
    assert_eq!(answer, (401, no_account));
    server.stop().await;
}
