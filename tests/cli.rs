//! The `botora` binary as an operator runs it: `check`, `migrate` (fresh,
//! idempotent, adopting a Django-made schema, reporting a failing tenant
//! while the others finish), and tenant, domain and user commands.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;

fn botora(args: &[&str], stdin: Option<&str>) -> Output {
    let config = std::env::temp_dir().join(format!("botora-cli-{}.toml", std::process::id()));
    std::fs::write(&config, "[auth]\npassword_iterations = 1000\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_botora"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .env("BOTORA_DATABASE_URL", database_url())
        .env("BOTORA_SIGNING_KEY", TEST_SIGNING_KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn check_file(contents: &str) -> Output {
    let path = std::env::temp_dir().join(format!("botora-check-{}.toml", unique("c")));
    std::fs::write(&path, contents).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_botora"))
        .args(["--config", path.to_str().unwrap(), "check"])
        .env("BOTORA_SIGNING_KEY", TEST_SIGNING_KEY)
        .output()
        .unwrap();
    std::fs::remove_file(path).ok();
    output
}

#[test]
fn check_names_file_line_and_reason() {
    let good = check_file("[api]\npage_size = 10\n");
    assert!(good.status.success(), "{}", text(&good));

    let cases = [
        ("[api]\npage_size = \n", ":2:"),
        ("[api]\n\nunknown_key = 1\n", ":3:"),
        ("[server]\nmax_body_bytes = \"big\"\n", ":2:"),
        (
            "[tenancy]\ntimezone = \"Nowhere/City\"\n",
            ":2: tenancy.timezone",
        ),
    ];
    for (contents, expected) in cases {
        let output = check_file(contents);
        assert!(!output.status.success(), "{contents:?} was accepted");
        assert!(
            text(&output).contains(expected),
            "{contents:?}: {}",
            text(&output)
        );
    }
    let missing = Command::new(env!("CARGO_BIN_EXE_botora"))
        .args(["--config", "/nonexistent/botora.toml", "check"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("/nonexistent/botora.toml: cannot read"),
        "{}",
        text(&missing)
    );
}

#[tokio::test]
async fn migrate_is_idempotent_and_reports_a_failing_tenant() {
    let pool = pool();
    let (good, _) = tenant(&pool, "mig_ok").await;
    let conn = pool.get().await.unwrap();

    // A tenant row whose schema holds a view where blog_post should be:
    // its index cannot be created, so that tenant's migration fails.
    let broken = unique("mig_broken");
    conn.batch_execute(&format!(
        "CREATE SCHEMA {broken};
         CREATE VIEW {broken}.blog_post AS SELECT 1 AS id;
         INSERT INTO tenants_client (schema_name, name, on_trial, created_on)
         VALUES ('{broken}', 'Broken', true, current_date);"
    ))
    .await
    .unwrap();
    // A tenant row with no schema at all: migrate creates it.
    let bare = unique("mig_bare");
    conn.execute(
        "INSERT INTO tenants_client (schema_name, name, on_trial, created_on) VALUES ($1, 'Bare', true, current_date)",
        &[&bare],
    )
    .await
    .unwrap();

    let first = botora(&["migrate", "--jobs", "3"], None);
    let report = text(&first);
    assert!(!first.status.success(), "{report}");
    assert!(
        report.contains(&format!(
            "FAILED schema {broken}: migration 0002_blog_post.sql failed"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "{bare}: applied 0001_auth_user.sql, 0002_blog_post.sql"
        )),
        "{report}"
    );
    let tables: i64 = conn
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
            &[&bare],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 2);
    // The failed tenant's transaction left nothing, not even auth_user.
    let half: i64 = conn
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1",
            &[&broken],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(half, 0);

    // Once fixed, a second run migrates it and touches nothing else.
    conn.batch_execute(&format!("DROP VIEW {broken}.blog_post"))
        .await
        .unwrap();
    let second = botora(&["migrate"], None);
    let report = text(&second);
    assert!(second.status.success(), "{report}");
    assert!(report.contains("public: up to date"), "{report}");
    assert!(
        !report.contains(&good),
        "an up-to-date tenant was migrated again: {report}"
    );
    let third = botora(&["migrate", "--tenant", &good], None);
    assert!(third.status.success(), "{}", text(&third));
}

#[tokio::test]
async fn migrate_adopts_a_schema_django_created() {
    let pool = pool();
    let conn = pool.get().await.unwrap();
    let schema = unique("django_made");
    // The tables as Django 5 + django-tenants create them (AutoField ids,
    // Django's own constraint and index names), with a user and a post.
    conn.batch_execute(&format!(
        r#"CREATE SCHEMA {schema};
        CREATE TABLE {schema}.auth_user (
            id integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
            password varchar(128) NOT NULL, last_login timestamp with time zone NULL,
            is_superuser boolean NOT NULL, username varchar(150) NOT NULL UNIQUE,
            first_name varchar(150) NOT NULL, last_name varchar(150) NOT NULL,
            email varchar(254) NOT NULL, is_staff boolean NOT NULL, is_active boolean NOT NULL,
            date_joined timestamp with time zone NOT NULL);
        CREATE TABLE {schema}.blog_post (
            id bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
            title varchar(200) NOT NULL, body text NOT NULL,
            created_at timestamp with time zone NOT NULL, updated_at timestamp with time zone NOT NULL,
            author_id integer NOT NULL);
        ALTER TABLE {schema}.blog_post ADD CONSTRAINT blog_post_author_id_dd7a8485_fk_auth_user_id
            FOREIGN KEY (author_id) REFERENCES {schema}.auth_user (id) DEFERRABLE INITIALLY DEFERRED;
        CREATE INDEX blog_post_author_id_dd7a8485 ON {schema}.blog_post (author_id);
        INSERT INTO {schema}.auth_user (password, is_superuser, username, first_name, last_name,
            email, is_staff, is_active, date_joined)
            VALUES ('!', false, 'django_user', '', '', '', false, true, now());
        INSERT INTO {schema}.blog_post (title, body, created_at, updated_at, author_id)
            VALUES ('kept', 'body', now(), now(), 1);
        INSERT INTO tenants_client (schema_name, name, on_trial, created_on)
            VALUES ('{schema}', 'Django', true, current_date);"#
    ))
    .await
    .unwrap();

    let output = botora(&["migrate", "--tenant", &schema], None);
    assert!(output.status.success(), "{}", text(&output));
    let kept: String = conn
        .query_one(&format!("SELECT title FROM {schema}.blog_post"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, "kept");
    let recorded: i64 = conn
        .query_one(
            "SELECT count(*) FROM botora_migrations WHERE schema_name = $1",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 2);
}

#[tokio::test]
async fn tenant_domain_and_user_commands() {
    let schema = unique("cli_t");
    let domain = format!("{schema}.test").replace('_', "-");
    let created = botora(
        &[
            "tenant",
            "create",
            "--schema",
            &schema,
            "--name",
            "CLI",
            "--domain",
            &domain,
            "--on-trial",
        ],
        None,
    );
    assert!(created.status.success(), "{}", text(&created));
    assert!(text(&created).contains(&format!("\"schema_name\": \"{schema}\"")));

    // Hostile and reserved names are refused before any SQL; nothing is left.
    let pool = pool();
    let conn = pool.get().await.unwrap();
    for bad in [
        "x\"; DROP SCHEMA public CASCADE; --",
        "public",
        "pg_temp_x",
        "Upper",
        &"a".repeat(64),
    ] {
        let output = botora(
            &[
                "tenant", "create", "--schema", bad, "--name", "x", "--domain", "bad.test",
            ],
            None,
        );
        assert!(!output.status.success(), "{bad:?} accepted");
        assert!(
            text(&output).contains("schema_name"),
            "{bad:?}: {}",
            text(&output)
        );
        let left: i64 = conn
            .query_one(
                "SELECT count(*) FROM tenants_domain WHERE domain = 'bad.test'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0);
    }

    let extra = format!("extra-{domain}");
    assert!(
        botora(&["domain", "add", &schema, &extra], None)
            .status
            .success()
    );
    let shown = botora(&["tenant", "show", &schema], None);
    assert!(text(&shown).contains(&extra), "{}", text(&shown));
    assert!(
        botora(&["domain", "remove", &schema, &extra], None)
            .status
            .success()
    );
    let updated = botora(
        &[
            "tenant",
            "update",
            &schema,
            "--paid-until",
            "2030-01-31",
            "--on-trial",
            "false",
        ],
        None,
    );
    assert!(text(&updated).contains("2030-01-31"), "{}", text(&updated));

    let user = botora(
        &["user", "create", "cli_user", "--tenant", &schema, "--staff"],
        Some("s3cret-pass\n"),
    );
    assert!(user.status.success(), "{}", text(&user));
    let server = TestServer::start().await;
    let (access, _) = server.login(&domain, "cli_user", "s3cret-pass").await;
    let (status, me) = server.get(&domain, "/api/me/", Some(&access)).await;
    assert_eq!((status, me["is_staff"].as_bool()), (200, Some(true)));
    server.stop().await;

    let listed = botora(&["tenant", "list"], None);
    assert!(text(&listed).contains(&schema));
    assert!(
        botora(&["tenant", "delete", &schema], None)
            .status
            .success()
    );
    let gone: i64 = conn
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(gone, 0);
}
