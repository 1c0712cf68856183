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
    recs.extend((0..5).map(|i| {
        Rec {
            key: format!("tenant_registry/{i:04}"),
            rev: 0,
            body: Some(
                json!({"tenant": T, "plan": "enterprise", "seats": 40 + i})
                    .to_string()
                    .into_bytes(),
            ),
        }
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
    assert_eq!(rows.lines().count(), 125, "same count");
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
    // The same key twice gives the same rows (the clone's own id aside); another key
    // gives other fakes.
    let rows_of = |target: &str| {
        psql(&format!(
            "SELECT key || ' ' || convert_from(body, 'UTF8') FROM \"{schema}__staging\".records WHERE tenant = '{target}' AND body IS NOT NULL ORDER BY key"
        ))
        .replace(target, "X")
    };
    for (as_, key) in [("cl_same", "default"), ("cl_other", "k2")] {
        let e = execute(
            &deps,
            tenantctl::TENANT_CLONE_ASL,
            as_,
            json!({"tenant_id": T, "as": as_, "key": key, "systems": ["postgresql"]}),
        )
        .await;
        assert_eq!(
            e.status,
            Status::Succeeded,
            "{as_}: {:?} {:?}",
            e.error,
            e.cause
        );
    }
    let first = rows_of(&target);
    assert_eq!(first, rows_of("cl_same"), "the same key, the same clone");
    let other = rows_of("cl_other");
    let differ = first
        .lines()
        .zip(other.lines())
        .filter(|(a, b)| a.starts_with("customers/") && a != b)
        .count();
    assert_eq!(differ, 40, "another key, other fakes for every customer");
    // A config-only clone copies the configs and nothing else.
    let e = execute(
        &deps,
        tenantctl::TENANT_CLONE_ASL,
        "cl_cfg",
        json!({"tenant_id": T, "as": "cl_cfg", "to": "staging", "sync": ["configs"]}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    let cfg = rows_of("cl_cfg");
    assert_eq!(cfg.lines().count(), 5, "{cfg}");
    assert!(
        cfg.lines().all(|l| l.starts_with("tenant_registry/")),
        "{cfg}"
    );
    assert!(
        redis_cli(
            STAGING_DB,
            &["--scan", "--pattern", &format!("{prefix}cl_cfg:session:*")]
        )
        .trim()
        .is_empty(),
        "nothing in redis"
    );
    // A deliberately broken rule (orders' e-mails kept, strict mode off) is caught by the
    // scan reading the products back, and the clone removed from both.
    let leaking = text.replace("strict = true", "strict = false").replace(
        "prefix = \"orders/\"\nfield = \"/customer_email\"\naction = \"fake\"\nkind = \"email\"",
        "prefix = \"orders/\"\nfield = \"/customer_email\"\naction = \"keep\"",
    );
    assert_ne!(leaking, text);
    let leaky_dir = tempfile::tempdir().expect("dir");
    let leaky = Arc::new(
        stores::Deps::connect(
            Catalog::from_toml(&leaking).expect("catalog"),
            stores::ConnectOptions {
                // A world of its own: the tenant's key and the clone keys it wraps live
                // in each world.
                world: Some(leaky_dir.path().join("w.db")),
                ..Default::default()
            },
        )
        .await
        .expect("deps"),
    );
    let e = execute(
        &leaky,
        tenantctl::TENANT_CLONE_ASL,
        "cl_leak",
        json!({"tenant_id": T, "as": "cl_leak", "systems": ["postgresql", "redis"]}),
    )
    .await;
    assert_eq!(e.error.as_deref(), Some("CloneRemoved"), "{:?}", e.cause);
    assert_eq!(rows_of("cl_leak"), "", "no live row of the removed clone");
    assert!(
        redis_cli(
            STAGING_DB,
            &["--scan", "--pattern", &format!("{prefix}cl_leak:session:*")]
        )
        .trim()
        .is_empty(),
        "no key of the removed clone"
    );
    // Strict mode refuses a planted column no rule names, and writes nothing.
    pg.apply_many(
        &t,
        &[Rec {
            key: "customers/9999".into(),
            rev: 0,
            body: Some(json!({"email": "a@b.example", "name": "A B", "phone": "1", "born": "2000-01-01", "tier": "x", "backup_contact_mail": "x@y.example"}).to_string().into_bytes()),
        }],
    )
    .await
    .expect("plant");
    let e = execute(
        &deps,
        tenantctl::TENANT_CLONE_ASL,
        "cl_strict",
        json!({"tenant_id": T, "as": "cl_strict", "systems": ["postgresql"]}),
    )
    .await;
    assert_eq!(
        e.error.as_deref(),
        Some("UnruledPersonalData"),
        "{:?}",
        e.cause
    );
    let cause = e.cause.unwrap_or_default();
    assert!(
        cause.contains("/backup_contact_mail") && !cause.contains("x@y.example"),
        "{cause}"
    );
    assert_eq!(rows_of("cl_strict"), "", "nothing written");
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
