//! `GET /api/me/` and `GET /api/tenant/`: exact fields.

use botora::db::Scope;
use serde_json::json;

use crate::common::*;
use crate::support::*;

#[tokio::test]
async fn me_shows_exactly_the_callers_fields() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "me").await;
    let plain = user(&pool, &schema, "alice", "pw-alice", false).await;
    let staff = user(&pool, &schema, "boss", "pw-boss", true).await;

    for (id, username, is_staff) in [(plain, "alice", false), (staff, "boss", true)] {
        let (access, _) = server
            .login(&domain, username, &format!("pw-{username}"))
            .await;
        let (status, mut me) = server.get(&domain, "/api/me/", Some(&access)).await;
        assert_eq!(status, 200, "{me}");
        let joined = me.as_object_mut().unwrap().remove("date_joined").unwrap();
        assert_utc_timestamp(&joined);
        assert_eq!(
            me,
            json!({
                "id": id,
                "username": username,
                "email": format!("{username}@example.com"),
                "first_name": "First",
                "last_name": "Last",
                "is_staff": is_staff,
            })
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn tenant_shows_the_tenant_and_its_domains() {
    let pool = pool();
    let server = TestServer::start().await;
    let (schema, domain) = tenant(&pool, "info").await;
    user(&pool, &schema, "alice", "pw-alice", false).await;
    let (access, _) = server.login(&domain, "alice", "pw-alice").await;

    // A second, non-primary domain, and the creation date as stored.
    let extra = format!("{}.example", unique("alias"));
    let scope = Scope::begin(&pool, "public").await.unwrap();
    let row = scope
        .client()
        .query_one(
            "WITH d AS (INSERT INTO tenants_domain (domain, tenant_id, is_primary)
                 SELECT $1, id, false FROM tenants_client WHERE schema_name = $2
                 RETURNING tenant_id)
             SELECT c.created_on FROM tenants_client c JOIN d ON d.tenant_id = c.id",
            &[&extra, &schema],
        )
        .await
        .unwrap();
    scope.commit().await.unwrap();
    let created_on: chrono::NaiveDate = row.get(0);

    let (status, info) = server.get(&domain, "/api/tenant/", Some(&access)).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(
        info,
        json!({
            "schema_name": schema,
            "name": format!("Tenant {schema}"),
            "paid_until": null,
            "on_trial": true,
            "created_on": created_on.format("%Y-%m-%d").to_string(),
            "domains": [
                {"domain": domain, "is_primary": true},
                {"domain": extra, "is_primary": false},
            ],
        })
    );
    server.stop().await;
}

#[tokio::test]
async fn a_paid_tenant_shows_its_date() {
    let pool = pool();
    let server = TestServer::start().await;
    let schema = unique("paidinfo");
    let domain = format!("{schema}.test");
    let paid = chrono::NaiveDate::from_ymd_opt(2999, 12, 31);
    tenant_with(&pool, &schema, &domain, false, paid).await;
    user(&pool, &schema, "alice", "pw-alice", false).await;
    let (access, _) = server.login(&domain, "alice", "pw-alice").await;

    let (status, info) = server.get(&domain, "/api/tenant/", Some(&access)).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["paid_until"], "2999-12-31");
    assert_eq!(info["on_trial"], false);
    server.stop().await;
}
