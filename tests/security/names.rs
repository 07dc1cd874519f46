//! Hostile schema names through every CLI command and API route that
//! takes one, and a hostile name already in the database.

use std::process::Stdio;

use deadpool_postgres::Pool;
use serde_json::json;

use crate::common::{TEST_SIGNING_KEY, TestServer, database_url, pool, test_config, unique, user};
use crate::support::{
    PASSWORD, PUBLIC, assert_public_intact, call, canary, encode_path, operator, raw, schema_exists,
};

/// The `botora` binary on this binary's database; returns (success, output).
fn botora(args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write as _;
    // A file per call: tests run at once, and a half-written file would
    // silently drop the reserved name.
    let name = format!(
        "botora-security-{}-{}.toml",
        std::process::id(),
        unique("cli")
    );
    let config = std::env::temp_dir().join(name);
    let text =
        "[auth]\npassword_iterations = 1000\n[tenancy]\nreserved_schemas = [\"reserved_x\"]\n";
    std::fs::write(&config, text).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_botora"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .env("BOTORA_DATABASE_URL", database_url())
        .env("BOTORA_SIGNING_KEY", TEST_SIGNING_KEY)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    std::fs::remove_file(&config).ok();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Rows of `tenants_client` and schemas named `schema`, and domain rows.
async fn traces(pool: &Pool, schema: &str, domain: &str) -> (i64, i64) {
    let row = pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT (SELECT count(*) FROM public.tenants_client WHERE schema_name = $1),
                    (SELECT count(*) FROM public.tenants_domain WHERE domain = $2)",
            &[&schema, &domain],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn hostile_schema_names_are_refused_by_the_cli_and_the_api() {
    let pool = pool();
    let mut config = test_config();
    config.tenancy.reserved_schemas = vec!["reserved_x".into()];
    let server = TestServer::start_with(config).await;
    let (root, _) = operator(&pool, &server).await;
    let canary = canary(&pool).await;
    let names = [
        format!("a\"; DROP SCHEMA {canary} CASCADE; --"),
        "a\"; DROP SCHEMA public; --".into(),
        format!("{canary}; DROP SCHEMA {canary} CASCADE"),
        "pg_toast".into(),
        "pg_catalog".into(),
        "pg_evil".into(),
        "public".into(),
        "information_schema".into(),
        "reserved_x".into(),
        "Acme".into(),
        "ACME".into(),
        "a".repeat(64),
        "tenant_é".into(),
        "тенант".into(),
        "acme-corp".into(),
        "1acme".into(),
        "a b".into(),
        "".into(),
        "$user".into(),
    ];
    for (index, name) in names.iter().enumerate() {
        let existed = schema_exists(&pool, name).await;

        // The command line.
        let domain = format!("hostile-cli-{index}.test");
        let schema_arg = format!("--schema={name}");
        let args = [
            "tenant",
            "create",
            &schema_arg,
            "--name",
            "Hostile",
            "--domain",
            &domain,
        ];
        let (ok, output) = botora(&args, "");
        assert!(!ok, "{name:?} was accepted: {output}");
        assert!(
            output.contains("schema_name: "),
            "{name:?}: unclear error: {output}"
        );
        assert!(!output.contains("panicked"), "{name:?}: {output}");
        assert_eq!(
            traces(&pool, name, &domain).await,
            (0, 0),
            "{name:?} via the CLI"
        );

        // The API.
        let domain = format!("hostile-api-{index}.test");
        let body =
            json!({"schema_name": name, "name": "Hostile", "on_trial": true, "domains": [domain]});
        let (status, answer) = server
            .send("POST", PUBLIC, "/api/tenants/", Some(&root), &body)
            .await;
        assert_eq!(status, 400, "{name:?}: {answer}");
        let messages = answer["schema_name"].as_array();
        assert!(
            messages.is_some_and(|m| !m.is_empty()),
            "{name:?}: {answer}"
        );
        assert_eq!(
            traces(&pool, name, &domain).await,
            (0, 0),
            "{name:?} via the API"
        );
        assert_eq!(schema_exists(&pool, name).await, existed, "{name:?}");
    }

    // A null character, which no command line can carry.
    let body = json!({"schema_name": "a\u{0}b", "name": "Hostile", "domains": ["nul.test"]});
    let (status, answer) = server
        .send("POST", PUBLIC, "/api/tenants/", Some(&root), &body)
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.get("schema_name").is_some(), "{answer}");

    assert!(
        schema_exists(&pool, &canary).await,
        "the canary schema was dropped"
    );
    assert_public_intact(&pool).await;
    server.stop().await;
}

#[tokio::test]
async fn hostile_names_in_every_other_command_and_route_touch_nothing() {
    let pool = pool();
    let server = TestServer::start().await;
    let (root, _) = operator(&pool, &server).await;
    let canary = canary(&pool).await;
    let hostile = format!("x\"; DROP SCHEMA {canary} CASCADE; --");

    // Every CLI command that takes a schema name.
    let commands: [&[&str]; 7] = [
        &["tenant", "show", &hostile],
        &["tenant", "update", &hostile, "--name", "y"],
        &["tenant", "delete", &hostile],
        &["domain", "add", &hostile, "hostile-add.test"],
        &["domain", "remove", &hostile, "hostile-add.test"],
        &["user", "create", "mallory", "--tenant", &hostile],
        &["migrate", "--tenant", &hostile],
    ];
    for args in commands {
        let (ok, output) = botora(args, "mallory-password\n");
        assert!(!ok, "{args:?} succeeded: {output}");
        assert!(!output.contains("panicked"), "{args:?}: {output}");
    }
    let (ok, output) = botora(&["tenant", "delete", "public"], "");
    assert!(!ok, "deleting public succeeded: {output}");

    // Every route that takes one, encoded and (where HTTP allows) raw.
    let encoded = encode_path(&hostile);
    let raw_name = format!("x\";DROP%20SCHEMA%20{canary}%20CASCADE;--");
    for name in [
        encoded.as_str(),
        raw_name.as_str(),
        "public",
        "..",
        "%2e%2e",
    ] {
        let routes = [
            ("GET", format!("/api/tenants/{name}/"), None),
            (
                "PATCH",
                format!("/api/tenants/{name}/"),
                Some(r#"{"name": "y"}"#),
            ),
            (
                "POST",
                format!("/api/tenants/{name}/domains/"),
                Some(r#"{"domain": "h.test"}"#),
            ),
            (
                "DELETE",
                format!("/api/tenants/{name}/domains/h.test/"),
                None,
            ),
            ("DELETE", format!("/api/tenants/{name}/"), None),
        ];
        for (method, path, body) in routes {
            let (status, answer) = call(&server, method, PUBLIC, &path, Some(&root), body).await;
            let refused = status == 404 || (name == "public" && status == 400);
            assert!(refused, "{method} {path}: {status} {answer}");
        }
    }
    let head = format!(
        "DELETE /api/tenants/{raw_name}/ HTTP/1.1\r\nHost: {PUBLIC}\r\nAuthorization: Bearer {root}\r\n"
    );
    let (status, body) = raw(server.http, &head).await;
    assert!(matches!(status, 400 | 404), "{status} {body}");

    assert!(
        schema_exists(&pool, &canary).await,
        "the canary schema was dropped"
    );
    assert_public_intact(&pool).await;
    server.stop().await;
}

#[tokio::test]
async fn an_existing_schema_with_a_hostile_name_is_migrated_and_served_quoted() {
    let pool = pool();
    let canary = canary(&pool).await;
    // django-tenants' rows may hold names Botora would not create.
    let schema = format!("H\"; DROP SCHEMA {canary} CASCADE; --");
    let domain = unique("hostile-row-").replace('_', "-") + ".test";
    let conn = pool.get().await.unwrap();
    let id: i64 = conn
        .query_one(
            "INSERT INTO public.tenants_client (schema_name, name, paid_until, on_trial, created_on)
             VALUES ($1, 'Hostile row', NULL, true, current_date) RETURNING id::int8",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    conn.execute(
        "INSERT INTO public.tenants_domain (domain, tenant_id, is_primary) VALUES ($1, $2::int8, true)",
        &[&domain, &id],
    )
    .await
    .unwrap();
    drop(conn);

    // Migrated by the CLI, quoted.
    let (ok, output) = botora(&["migrate", "--tenant", &schema], "");
    assert!(ok, "{output}");
    assert!(schema_exists(&pool, &schema).await, "{output}");
    assert!(
        schema_exists(&pool, &canary).await,
        "the canary schema was dropped"
    );

    // Served, quoted.
    user(&pool, &schema, "alice", PASSWORD, false).await;
    let server = TestServer::start().await;
    let (access, _) = server.login(&domain, "alice", PASSWORD).await;
    let post = json!({"title": "quoted", "body": "quoted"});
    let (status, answer) = server
        .send("POST", &domain, "/api/posts/", Some(&access), &post)
        .await;
    assert_eq!(status, 201, "{answer}");
    let (status, list) = server.get(&domain, "/api/posts/", Some(&access)).await;
    assert_eq!((status, list["count"].clone()), (200, json!(1)), "{list}");
    let (status, info) = server.get(&domain, "/api/tenant/", Some(&access)).await;
    assert_eq!((status, info["schema_name"].clone()), (200, json!(schema)));

    // Deleted by the CLI, quoted: the canary survives.
    let (ok, output) = botora(&["tenant", "delete", &schema], "");
    assert!(ok, "{output}");
    assert!(!schema_exists(&pool, &schema).await, "{output}");
    assert!(
        schema_exists(&pool, &canary).await,
        "the canary schema was dropped"
    );
    assert_public_intact(&pool).await;
    server.stop().await;
}
