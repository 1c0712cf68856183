//! Backup and restore on Redis (127.0.0.1:6379) and PostgreSQL with pgvector (scripts/test
//! starts it), through the shipped backup and restore machines, checked with the
//! products' own clients (`redis-cli`, pgserver's `psql`): the restored location holds as
//! many keys and vectors as production, with equal fingerprints, and nothing of the other
//! tenant; production is unchanged.

use e2e::{call_step, execute, fingerprint as fp};
use lifecycle::TenantId;
use lifecycle::migration::{HOME, Transform};
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

/// Databases of the Redis server the locations use (home 11).
const PIT_DB: u8 = 14;
const BROKEN_DB: u8 = 15;

/// A world whose key-value system is Redis (home db 11; locations restore, pit, broken in
/// dbs 13-15) and whose vectors are pgvector (a schema per location), seeded with 60
/// sessions and 40 vectors for each of T and OTHER. Returns it, its directory, the pgvector
/// schema and the Redis key prefix.
async fn world() -> (Arc<stores::Deps>, tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().expect("dir");
    let schema = testkit::unique("bkp").to_lowercase().replace('-', "_");
    let prefix = format!("{}:", testkit::unique("bkr"));
    let r = redis_server();
    let text = tenantctl::LOCAL_CATALOG
        .replacen(
            "[[systems]]\nname = \"redis\"\nkind = \"key-value\"\nholds = \"sessions, caches, rate-limit counters, distributed locks\"\nbackend = \"embedded\"",
            &format!("[[systems]]\nname = \"redis\"\nkind = \"key-value\"\nholds = \"sessions\"\nbackend = \"redis\"\nurl = \"{r}/11\"\nprefix = \"{prefix}{{tenant_id}}:\"\nlocations = {{ restore = \"{r}/{RESTORE_DB}\", pit = \"{r}/{PIT_DB}\", broken = \"{r}/{BROKEN_DB}\" }}"),
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
            .map(|i| vector(&format!("chunk-{i:04}"), i as f32))
            .collect();
        vectors.apply_many(&t, &vecs).await.expect("seed pgvector");
    }
    (deps, dir, schema, prefix)
}

fn vector(key: &str, x: f32) -> Rec {
    Rec {
        key: key.into(),
        rev: 0,
        body: Some(
            VectorBody {
                values: vec![x, 1.0, -0.5, 0.25],
                metadata: Some(json!({"doc": format!("d{}", x as u32 % 5)})),
            }
            .encode()
            .expect("vector"),
        ),
    }
}

/// Leaves the servers as found: the schemas and the keys of this world.
fn clean(schema: &str, prefix: &str) {
    for loc in ["", "__restore", "__pit", "__broken"] {
        psql(&format!("DROP SCHEMA IF EXISTS \"{schema}{loc}\" CASCADE"));
    }
    for db in [11, RESTORE_DB, PIT_DB, BROKEN_DB] {
        for k in redis_cli(db, &["--scan", "--pattern", &format!("{prefix}*")]).lines() {
            redis_cli(db, &["DEL", k]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_on_redis_and_pgvector_restores_equal_elsewhere() {
    let (deps, _dir, schema, prefix) = world().await;
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
    clean(&schema, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_in_time_a_changed_byte_and_no_readable_record_on_redis_and_pgvector() {
    let (deps, dir, schema, prefix) = world().await;
    let t = TenantId::parse(T).expect("t");
    let backup = |kind: &'static str| {
        let deps = deps.clone();
        async move {
            let b = execute(
                &deps,
                tenantctl::TENANT_BACKUP_ASL,
                "b",
                json!({"tenant_id": T, "kind": kind}),
            )
            .await;
            assert_eq!(b.status, Status::Succeeded, "{}", e2e::task_cause(&b));
            b.output.expect("out")
        }
    };
    let full = backup("full").await;
    let redis = deps.dataset("redis", HOME).expect("redis");
    let vectors = deps.dataset("pinecone", HOME).expect("pgvector");
    redis
        .write(&t, "first", Some(b"{\"n\":1}"))
        .await
        .expect("write");
    redis.write(&t, "session:0003", None).await.expect("delete");
    let v = vector("chunk-first", 7.0);
    vectors
        .write(&t, &v.key, v.body.as_deref())
        .await
        .expect("write");
    vectors.write(&t, "chunk-0003", None).await.expect("delete");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let inc1 = backup("incremental").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = lifecycle::backup::policy::stamp(time::OffsetDateTime::now_utc());
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    redis
        .write(&t, "second", Some(b"{\"n\":2}"))
        .await
        .expect("write");
    let v2 = vector("chunk-second", 8.0);
    vectors
        .write(&t, &v2.key, v2.body.as_deref())
        .await
        .expect("write");
    backup("incremental").await;
    let e = execute(
        &deps,
        tenantctl::TENANT_RESTORE_ASL,
        "pit",
        json!({"backup_id": inc1["backup_id"], "to": "pit", "to_time": between}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    let at = |s: &'static str, key: &'static str| {
        let deps = deps.clone();
        async move {
            deps.dataset(s, "pit")
                .expect("ds")
                .read(&TenantId::parse(T).expect("t"), key)
                .await
                .expect("read")
                .and_then(|r| r.body)
        }
    };
    for (s, first, second, gone) in [
        ("redis", "first", "second", "session:0003"),
        ("pinecone", "chunk-first", "chunk-second", "chunk-0003"),
    ] {
        assert!(
            at(s, first).await.is_some(),
            "{s}: the first write is there"
        );
        assert!(at(s, second).await.is_none(), "{s}: the second is not");
        assert!(at(s, gone).await.is_none(), "{s}: the delete was replayed");
    }
    assert_eq!(fp(&deps, "redis", "pit", T).await.count, 60);
    assert_eq!(fp(&deps, "pinecone", "pit", T).await.count, 40);

    // No archive file holds a session's body or a vector's metadata in the clear.
    let mut files = Vec::new();
    let mut stack = vec![dir.path().join("backups")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    assert!(
        files
            .iter()
            .any(|p| p.extension().is_some_and(|x| x == "chunk"))
    );
    for p in &files {
        let bytes = std::fs::read(p).expect("read");
        for needle in [&b"\"user\""[..], b"session:00", b"\"doc\""] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds {:?} in the clear",
                p.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
    // One changed byte in a Redis chunk: caught before anything is written anywhere.
    let chunk = files
        .iter()
        .find(|p| {
            p.to_string_lossy()
                .contains(full["backup_id"].as_str().expect("id"))
                && p.to_string_lossy().contains("/redis/")
                && p.extension().is_some_and(|x| x == "chunk")
        })
        .expect("a redis chunk of the full backup");
    let bytes = std::fs::read(chunk).expect("read");
    std::fs::write(chunk, e2e::flip_middle_byte(bytes)).expect("write");
    let e = execute(
        &deps,
        tenantctl::TENANT_RESTORE_ASL,
        "broken",
        json!({"backup_id": full["backup_id"], "to": "broken"}),
    )
    .await;
    assert_eq!(
        e.error.as_deref(),
        Some("BackupCorrupt"),
        "{}",
        e2e::task_cause(&e)
    );
    assert!(
        redis_cli(BROKEN_DB, &["--scan", "--pattern", &format!("{prefix}*")])
            .trim()
            .is_empty(),
        "nothing written to Redis"
    );
    let written = psql(&format!(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{schema}__broken'"
    ));
    if written != "0" {
        assert_eq!(
            psql(&format!(
                "SELECT COUNT(*) FROM \"{schema}__broken\".vectors"
            )),
            "0",
            "nothing written to pgvector"
        );
    }
    clean(&schema, &prefix);
}

/// Backs up a tenant of 2,500 records on `system` (more than one chunk), kills the export
/// after its first chunk, picks it up in a new process and restores it equal.
async fn killed_mid_export_resumes(system: &str, rec: impl Fn(usize) -> Rec) {
    let (deps, dir, schema, prefix) = world().await;
    const BIG: &str = "tenant_backup_big_12";
    let t = TenantId::parse(BIG).expect("t");
    let ds = deps.dataset(system, HOME).expect("dataset");
    ds.provision(&t).await.expect("provision");
    let recs: Vec<Rec> = (0..2500).map(rec).collect();
    ds.apply_many(&t, &recs).await.expect("seed");
    let begun = call_step(deps.clone(), "begin-backup", json!({"tenant_id": BIG}), 60).await;
    let id = begun["backup_id"].as_str().expect("id").to_owned();
    let input = json!({"tenant_id": BIG, "backup_id": id, "system": system});
    let first = call_step(deps.clone(), "backup-system", input.clone(), 0).await;
    assert_eq!(
        (first["done"].clone(), first["chunks"].clone()),
        (json!(false), json!(1))
    );
    // Killed: a new process, with its own connections, picks the work up.
    let catalog = (*deps.catalog).clone();
    drop((ds, deps));
    let again = Arc::new(
        stores::Deps::connect(
            catalog,
            stores::ConnectOptions {
                world: Some(dir.path().join("w.db")),
                ..Default::default()
            },
        )
        .await
        .expect("reconnect"),
    );
    let mut out = call_step(again.clone(), "backup-system", input.clone(), 0).await;
    assert_eq!(out["chunks"], 2, "resumed after the recorded chunk");
    while out["done"] == false {
        out = call_step(again.clone(), "backup-system", input.clone(), 60).await;
    }
    assert_eq!(out["records"], 2500);
    for s in begun["systems"].as_array().expect("systems") {
        if s != system {
            call_step(
                again.clone(),
                "backup-system",
                json!({"tenant_id": BIG, "backup_id": id, "system": s}),
                60,
            )
            .await;
        }
    }
    call_step(
        again.clone(),
        "finish-backup",
        json!({"tenant_id": BIG, "backup_id": id}),
        60,
    )
    .await;
    let e = execute(
        &again,
        tenantctl::TENANT_RESTORE_ASL,
        "resumed",
        json!({"backup_id": id, "to": "restore"}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    let restored = fp(&again, system, "restore", BIG).await;
    assert_eq!(restored.count, 2500);
    assert_eq!(restored, fp(&again, system, HOME, BIG).await);
    clean(&schema, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_redis_killed_mid_export_resumes_in_a_new_process() {
    killed_mid_export_resumes("redis", |i| Rec {
        key: format!("session:{i:05}"),
        rev: 0,
        body: Some(format!("{{\"n\":{i}}}").into_bytes()),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_pgvector_killed_mid_export_resumes_in_a_new_process() {
    killed_mid_export_resumes("pinecone", |i| vector(&format!("chunk-{i:05}"), i as f32)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_backup_restored_at_v2_transforms_redis_keeps_vectors_and_refuses_v7() {
    let (deps, _dir, schema, prefix) = world().await;
    let t = TenantId::parse(T).expect("t");
    let b = execute(
        &deps,
        tenantctl::TENANT_BACKUP_ASL,
        "b",
        json!({"tenant_id": T, "kind": "full"}),
    )
    .await;
    assert_eq!(b.status, Status::Succeeded, "{}", e2e::task_cause(&b));
    let id = b.output.expect("out")["backup_id"].clone();
    let e = execute(
        &deps,
        tenantctl::TENANT_RESTORE_ASL,
        "v2",
        json!({"backup_id": id, "to": "restore", "schema_version": 2}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    // Redis at v2, read back with redis-cli: each session wrapped in the v2 envelope.
    let key = format!("{prefix}{T}:session:0007");
    let home = redis_cli(11, &["GET", &key]);
    let restored = redis_cli(RESTORE_DB, &["GET", &key]);
    let want = Transform::SchemaV1ToV2
        .forward(home.trim().as_bytes())
        .expect("forward");
    assert_eq!(restored.trim().as_bytes(), want.as_slice(), "session at v2");
    assert_eq!(fp(&deps, "redis", "restore", T).await.count, 60);
    // pgvector: the embeddings as they were (a schema version governs documents).
    assert_eq!(
        fp(&deps, "pinecone", "restore", T).await,
        fp(&deps, "pinecone", HOME, T).await,
        "vectors restored as backed up"
    );
    let v = deps
        .dataset("pinecone", "restore")
        .expect("ds")
        .read(&t, "chunk-0007")
        .await
        .expect("read")
        .and_then(|r| r.body)
        .expect("vector");
    assert_eq!(
        VectorBody::decode(&v)
            .expect("decode")
            .expect("a vector")
            .values,
        vec![7.0, 1.0, -0.5, 0.25]
    );
    // No path from v1 to v7: refused before anything is written, in either product.
    e2e::assert_restore_at_v7_refused(&deps, &id, "broken").await;
    assert_eq!(
        redis_cli(BROKEN_DB, &["--scan", "--pattern", &format!("{prefix}*")]).trim(),
        ""
    );
    assert_eq!(
        psql(&format!(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = '{schema}__broken'"
        ))
        .trim(),
        "0"
    );
    clean(&schema, &prefix);
}
