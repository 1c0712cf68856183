//! An anonymised clone on the real products (PostgreSQL at 127.0.0.1:5432, Redis at
//! 127.0.0.1:6379), checked with the products' own clients (`psql`, `redis-cli`): the
//! same counts, no original value in the staging schema or database, the join between a
//! PostgreSQL order and a Redis session kept, and production unchanged.

use e2e::{execute, fingerprint as fp};
use lifecycle::migration::HOME;
use lifecycle::{Catalog, TenantId};
use ports::migrate::{Locator, Rec};
use serde_json::{Value, json};
use sim::Status;
use std::process::Command;
use std::sync::Arc;
use steps::testkit;

// A tenant id of its own, so no other test's discovery meets these keys.
const T: &str = "tenant_clone_probe_13";
const STAGING_DB: u8 = 12;

fn pg_url() -> String {
    std::env::var("TENANT_PG_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 user=postgres dbname=test".into())
}

fn redis_server() -> String {
    std::env::var("TENANT_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn psql(sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-At",
            "-c",
            sql,
        ])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn redis_cli(db: u8, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-u", &format!("{}/{db}", redis_server()), "--no-raw"])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn email(i: usize) -> String {
    format!("Person.{i:03}@probe-corp.example")
}

#[tokio::test]
async fn a_clone_on_postgresql_and_redis_holds_no_original_and_keeps_the_join() {
    let dir = tempfile::tempdir().expect("dir");
    let schema = testkit::unique("cl").to_lowercase().replace('-', "_");
    let prefix = format!("{}:", testkit::unique("clp"));
    let text = tenantctl::LOCAL_CATALOG
        .replacen(
            "[[systems]]\nname = \"postgresql\"\nkind = \"relational\"\nholds = \"tenant registry rows, documents metadata, chat history\"\nbackend = \"embedded\"",
            &format!("[[systems]]\nname = \"postgresql\"\nkind = \"relational\"\nholds = \"rows\"\nbackend = \"postgres\"\nurl = \"{}\"\nschema = \"{schema}\"", pg_url()),
            1,
        )
        .replacen(
            "[[systems]]\nname = \"redis\"\nkind = \"key-value\"\nholds = \"sessions, caches, rate-limit counters, distributed locks\"\nbackend = \"embedded\"",
            &format!("[[systems]]\nname = \"redis\"\nkind = \"key-value\"\nholds = \"sessions\"\nbackend = \"redis\"\nurl = \"{}/11\"\nprefix = \"{prefix}{{tenant_id}}:\"\nlocations = {{ staging = \"{}/{STAGING_DB}\" }}", redis_server(), redis_server()),
            1,
        );
    assert!(text.contains("backend = \"postgres\"") && text.contains("backend = \"redis\""));
    let deps = Arc::new(
        stores::Deps::connect(
            Catalog::from_toml(&text).expect("catalog"),
            stores::ConnectOptions {
                world: Some(dir.path().join("w.db")),
                ..Default::default()
            },
        )
        .await
        .expect("deps (PostgreSQL and Redis on loopback)"),
    );
    let t = TenantId::parse(T).expect("t");
    let pg = deps.dataset("postgresql", HOME).expect("pg");
    pg.provision(&t).await.expect("provision");
    let mut recs: Vec<Rec> = (0..40)
        .map(|i| Rec {
            key: format!("customers/{i:04}"),
            rev: 0,
            body: Some(json!({"email": email(i), "name": format!("Probe Q{i:03} Person"), "phone": "+1 415 555 0199", "born": "1985-02-03", "tier": "gold"}).to_string().into_bytes()),
        })
        .collect();
    recs.extend((0..80).map(|i| Rec {
        key: format!("orders/{i:05}"),
        rev: 0,
        body: Some(json!({"customer_email": email(i % 40), "note": format!("invoice to {}", email(i % 40)), "total": i}).to_string().into_bytes()),
    }));
    pg.apply_many(&t, &recs).await.expect("seed pg");
    let redis = deps.dataset("redis", HOME).expect("redis");
    let sessions: Vec<Rec> = (0..40)
        .map(|i| Rec {
            key: format!("session:{i:04}"),
            rev: 0,
            body: Some(
                json!({"user": format!("probe-user-{i:03}"), "user_email": email(i), "ttl": 60})
                    .to_string()
                    .into_bytes(),
            ),
        })
        .collect();
    redis.apply_many(&t, &sessions).await.expect("seed redis");
    let before = (
        fp(&deps, "postgresql", HOME, T).await,
        fp(&deps, "redis", HOME, T).await,
    );

    let e = execute(
        &deps,
        tenantctl::TENANT_CLONE_ASL,
        "c",
        json!({"tenant_id": T, "systems": ["postgresql", "redis"]}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    let target = format!("{T}__staging");

    // PostgreSQL, read with psql from the staging schema.
    let rows = psql(&format!(
        "SELECT key || ' ' || convert_from(body, 'UTF8') FROM \"{schema}__staging\".records WHERE tenant = '{target}' AND body IS NOT NULL ORDER BY key"
    ));
    assert_eq!(rows.lines().count(), 120, "same count");
    // Redis, read with redis-cli from the staging database.
    let keys = redis_cli(
        STAGING_DB,
        &[
            "--scan",
            "--pattern",
            &format!("{prefix}{target}:session:*"),
        ],
    );
    let keys: Vec<&str> = keys
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.trim_matches('"'))
        .collect();
    assert_eq!(keys.len(), 40, "same count in redis");
    let mut values = String::new();
    for k in &keys {
        values.push_str(&redis_cli(STAGING_DB, &["GET", k]));
    }
    let all = format!("{rows}\n{values}").to_lowercase();
    for i in 0..40 {
        assert!(
            !all.contains(&email(i).to_lowercase()),
            "{} arrived",
            email(i)
        );
        assert!(!all.contains(&format!("q{i:03} person")), "a name arrived");
    }
    assert!(
        !all.contains("probe-corp.example")
            && !all.contains("415 555 0199")
            && !all.contains("1985-02-03")
    );
    // The join across systems: order 5's customer e-mail is session 5's user e-mail.
    let order: Value = serde_json::from_str(
        rows.lines()
            .find(|l| l.starts_with("orders/00005 "))
            .expect("order 5")
            .split_once(' ')
            .expect("row")
            .1,
    )
    .expect("json");
    let s5 = redis_cli(
        STAGING_DB,
        &["--raw", "GET", &format!("{prefix}{target}:session:0005")],
    );
    let session: Value = serde_json::from_str(s5.trim()).expect("session json");
    assert_eq!(order["customer_email"], session["user_email"]);
    assert!(
        order["customer_email"]
            .as_str()
            .expect("e")
            .ends_with("@anon.invalid")
    );

    assert_eq!(
        before,
        (
            fp(&deps, "postgresql", HOME, T).await,
            fp(&deps, "redis", HOME, T).await
        ),
        "production unchanged"
    );
    // Leave the servers as found.
    psql(&format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE; DROP SCHEMA IF EXISTS \"{schema}__staging\" CASCADE"
    ));
    for db in [11, STAGING_DB] {
        for k in redis_cli(db, &["--scan", "--pattern", &format!("{prefix}*")]).lines() {
            redis_cli(db, &["DEL", k.trim_matches('"')]);
        }
    }
}
