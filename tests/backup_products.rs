//! Backup and restore on Redis (127.0.0.1:6379) and PostgreSQL with pgvector (scripts/test
//! starts it), through the shipped backup and restore machines, checked with the
//! products' own clients (`redis-cli`, pgserver's `psql`): the restored location holds as
//! many keys and vectors as production, with equal fingerprints, and nothing of the other
//! tenant; production is unchanged.

use e2e::{execute, fingerprint as fp};
use lifecycle::TenantId;
use lifecycle::migration::HOME;
use ports::migrate::{Locator, Rec};
use serde_json::json;
use sim::Status;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use steps::testkit;
use stores::pgvector::VectorBody;

const T: &str = "tenant_backup_probe_12";
const OTHER: &str = "tenant_backup_other_12";
const RESTORE_DB: u8 = 13;

fn redis_server() -> String {
    std::env::var("TENANT_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn pgvector_url() -> String {
    match std::env::var("TENANT_PGVECTOR_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => panic!(
            "TENANT_PGVECTOR_URL is not set: start it with `eval \"$(scripts/pgvector start)\"` (scripts/test does)"
        ),
    }
}

fn redis_cli(db: u8, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-u", &format!("{}/{db}", redis_server())])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn psql(sql: &str) -> String {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../.venv/lib/python3.11/site-packages/pgserver/pginstall/bin/psql");
    let out = Command::new(&bin)
        .args([&pgvector_url(), "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap_or_else(|e| panic!("{} (scripts/bootstrap installs it): {e}", bin.display()));
    assert!(out.status.success(), "psql {sql}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_on_redis_and_pgvector_restores_equal_elsewhere() {
    let dir = tempfile::tempdir().expect("dir");
    let schema = testkit::unique("bkp").to_lowercase().replace('-', "_");
    let prefix = format!("{}:", testkit::unique("bkr"));
    let text = tenantctl::LOCAL_CATALOG
        .replacen(
            "[[systems]]\nname = \"redis\"\nkind = \"key-value\"\nholds = \"sessions, caches, rate-limit counters, distributed locks\"\nbackend = \"embedded\"",
            &format!("[[systems]]\nname = \"redis\"\nkind = \"key-value\"\nholds = \"sessions\"\nbackend = \"redis\"\nurl = \"{}/11\"\nprefix = \"{prefix}{{tenant_id}}:\"\nlocations = {{ restore = \"{}/{RESTORE_DB}\" }}", redis_server(), redis_server()),
            1,
        )
        .replacen(
            "[[systems]]\nname = \"pinecone\"\nkind = \"vectors\"\nholds = \"embeddings, one namespace per tenant\"\nbackend = \"embedded\"",
            &format!("[[systems]]\nname = \"pinecone\"\nkind = \"vectors\"\nholds = \"embeddings\"\nbackend = \"pgvector\"\nurl = \"{}\"\nschema = \"{schema}\"\ndimension = 4\ndistance = \"cosine\"\nbatch_size = 50", pgvector_url()),
            1,
        );
    assert!(text.contains("backend = \"redis\"") && text.contains("backend = \"pgvector\""));
    let deps = Arc::new(
        stores::Deps::connect(
            lifecycle::Catalog::from_toml(&text).expect("catalog"),
            stores::ConnectOptions {
                world: Some(dir.path().join("w.db")),
                ..Default::default()
            },
        )
        .await
        .expect("deps (Redis and pgvector on loopback)"),
    );
    for tenant in [T, OTHER] {
        let t = TenantId::parse(tenant).expect("t");
        let redis = deps.dataset("redis", HOME).expect("redis");
        let sessions: Vec<Rec> = (0..60)
            .map(|i| Rec {
                key: format!("session:{i:04}"),
                rev: 0,
                body: Some(
                    json!({"user": format!("u{i}"), "ttl": 600})
                        .to_string()
                        .into_bytes(),
                ),
            })
            .collect();
        redis.apply_many(&t, &sessions).await.expect("seed redis");
        let vectors = deps.dataset("pinecone", HOME).expect("pgvector");
        vectors.provision(&t).await.expect("provision");
        let vecs: Vec<Rec> = (0..40u32)
            .map(|i| Rec {
                key: format!("chunk-{i:04}"),
                rev: 0,
                body: Some(
                    VectorBody {
                        values: vec![i as f32, 1.0, -0.5, 0.25],
                        metadata: Some(json!({"doc": format!("d{}", i % 5)})),
                    }
                    .encode()
                    .expect("vector"),
                ),
            })
            .collect();
        vectors.apply_many(&t, &vecs).await.expect("seed pgvector");
    }
    let before = (
        fp(&deps, "redis", HOME, T).await,
        fp(&deps, "pinecone", HOME, T).await,
    );
    assert_eq!((before.0.count, before.1.count), (60, 40));

    let b = execute(
        &deps,
        tenantctl::TENANT_BACKUP_ASL,
        "b",
        json!({"tenant_id": T}),
    )
    .await;
    assert_eq!(b.status, Status::Succeeded, "{}", e2e::task_cause(&b));
    let b = b.output.expect("out");
    assert_eq!(b["records"], 100, "{b}");
    let r = execute(
        &deps,
        tenantctl::TENANT_RESTORE_ASL,
        "r",
        json!({"backup_id": b["backup_id"], "to": "restore"}),
    )
    .await;
    assert_eq!(r.status, Status::Succeeded, "{}", e2e::task_cause(&r));
    assert_eq!(r.output.expect("out")["matches_manifest"], true);
    assert_eq!(fp(&deps, "redis", "restore", T).await, before.0);
    assert_eq!(fp(&deps, "pinecone", "restore", T).await, before.1);

    // Read back with the products' own clients.
    let keys: Vec<String> = redis_cli(RESTORE_DB, &["--scan", "--pattern", &format!("{prefix}*")])
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(
        keys.len(),
        60,
        "only the tenant's 60 sessions at the restore database"
    );
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("{prefix}{T}:session:")))
    );
    let restored: u64 = psql(&format!(
        "SELECT COUNT(*) FROM \"{schema}__restore\".vectors WHERE tenant = '{T}'"
    ))
    .parse()
    .expect("count");
    let strangers: u64 = psql(&format!(
        "SELECT COUNT(*) FROM \"{schema}__restore\".vectors WHERE tenant <> '{T}'"
    ))
    .parse()
    .expect("count");
    assert_eq!((restored, strangers), (40, 0));
    assert_eq!(
        before,
        (
            fp(&deps, "redis", HOME, T).await,
            fp(&deps, "pinecone", HOME, T).await
        ),
        "production unchanged"
    );
    // Leave the servers as found.
    psql(&format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE; DROP SCHEMA IF EXISTS \"{schema}__restore\" CASCADE"
    ));
    for db in [11, RESTORE_DB] {
        for k in redis_cli(db, &["--scan", "--pattern", &format!("{prefix}*")]).lines() {
            redis_cli(db, &["DEL", k]);
        }
    }
}
