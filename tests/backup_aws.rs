//! Backup and restore on the real products: S3 and DynamoDB (moto) and PostgreSQL, the
//! archive in an S3 bucket (with a replica bucket in a second region for platinum) and the
//! tenant's key in KMS: equal fingerprints after a restore, point in time, schema v1 -> v2
//! and an unknown version refused with nothing written, resume in a new process after a
//! kill, no readable record in any archive object and one changed byte caught, prune in
//! both regions under a legal hold; erasure deletes every backup version in both regions
//! and schedules the key's deletion, after which nothing restores.

use e2e::migration::seed_json;
use e2e::{
    Later, call_step, execute, fingerprint as fp, kms_key, moto_config, moto_s3, request, run,
    table, versioned_bucket,
};
use lifecycle::TenantId;
use lifecycle::migration::HOME;
use ports::Services;
use ports::backup::KeyState;
use ports::migrate::Locator;
use serde_json::json;
use sim::Status;
use std::sync::Arc;
use stores::Deps;
use stores::wiring::ConnectOptions;

const T: &str = "tenant_001_acme_corp";
const SYSTEMS: &[&str] = &["s3", "analytics", "postgresql"];
/// The locations restores write in these tests.
const LOCATIONS: &[&str] = &["restore", "pit", "now", "v2", "v7", "broken", "resumed"];

fn pg_url() -> String {
    std::env::var("TENANT_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 user=postgres dbname=test".into())
}

/// The world of these tests; T is platinum, so its backups are copied to the replica
/// bucket of the second region (returned last).
async fn world() -> (Arc<Deps>, aws_config::SdkConfig, String, String) {
    let (deps, cfg, archive, replica, _) = world_and_catalog().await;
    (deps, cfg, archive, replica)
}

async fn world_and_catalog() -> (
    Arc<Deps>,
    aws_config::SdkConfig,
    String,
    String,
    lifecycle::Catalog,
) {
    let cfg = moto_config().await;
    let s3 = moto_s3(&cfg);
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let base = steps::testkit::unique("bk").replace('_', "-");
    let (docs, archive, replica) = (
        format!("{base}-docs"),
        format!("{base}-archive"),
        format!("{base}-replica"),
    );
    for b in [&docs, &archive, &replica] {
        versioned_bucket(&s3, b).await;
    }
    let (usage, ledger, holds) = (
        format!("{base}-usage"),
        format!("{base}-ledger"),
        format!("{base}-holds"),
    );
    table(&ddb, &usage, "pk", "sk").await;
    table(&ddb, &ledger, "chain", "sk").await;
    table(&ddb, &holds, "tenant_id", "hold_id").await;
    // Every location a test restores into: a bucket and a table each (PostgreSQL makes a
    // schema per location itself).
    let mut docs_at = Vec::new();
    let mut usage_at = Vec::new();
    for loc in LOCATIONS {
        let (b, t) = (format!("{base}-docs-{loc}"), format!("{base}-usage-{loc}"));
        versioned_bucket(&s3, &b).await;
        table(&ddb, &t, "pk", "sk").await;
        docs_at.push(format!("{loc} = \"{b}\""));
        usage_at.push(format!("{loc} = \"{t}\""));
    }
    let (docs_at, usage_at) = (docs_at.join(", "), usage_at.join(", "));
    let key = kms_key(&aws_sdk_kms::Client::new(&cfg)).await;
    let schema = steps::testkit::unique("bk")
        .to_lowercase()
        .replace('-', "_");
    let catalog = format!(
        r#"
environment = "moto"
ledger = {{ backend = "dynamodb", table = "{ledger}" }}
legal_holds = {{ backend = "dynamodb", table = "{holds}" }}
signer = {{ backend = "kms", key_id = "{key}" }}
[backup]
archive = {{ backend = "s3", bucket = "{archive}", replica_bucket = "{replica}", replica_region = "eu-west-1" }}
keys = {{ backend = "kms", alias_prefix = "alias/{base}-" }}
tenant_tiers = {{ {T} = "platinum" }}
[[systems]]
name = "s3"
kind = "objects"
backend = "s3"
bucket = "{docs}"
prefix = "tenants/{{tenant_id}}/"
locations = {{ {docs_at} }}
[[systems]]
name = "analytics"
kind = "analytics"
backend = "dynamodb"
table = "{usage}"
partition_key = "pk"
sort_key = "sk"
partition_value = "TENANT#{{tenant_id}}"
locations = {{ {usage_at} }}
[[systems]]
name = "postgresql"
kind = "relational"
backend = "postgres"
url = "{pg}"
schema = "{schema}"
[[systems]]
name = "backups"
kind = "backups"
backend = "archive"
"#,
        pg = pg_url()
    );
    let catalog = lifecycle::Catalog::from_toml(&catalog).expect("catalog");
    let deps = Deps::connect(
        catalog.clone(),
        ConnectOptions {
            world: None,
            aws: Some(cfg.clone()),
            read_only: false,
        },
    )
    .await
    .expect("connect");
    (Arc::new(deps), cfg, archive, replica, catalog)
}

/// Every object version and delete marker under the tenant's prefix of a bucket.
async fn versions(s3: &aws_sdk_s3::Client, bucket: &str) -> (Vec<String>, usize) {
    let v = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(format!("tenants/{T}/"))
        .send()
        .await
        .expect("list");
    let mut keys: Vec<String> = v
        .versions()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    keys.sort();
    (keys, v.delete_markers().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_backed_up_on_s3_dynamodb_and_postgres_restores_equal_and_erasure_shreds_its_kms_key()
 {
    let (deps, cfg, archive, replica) = world().await;
    for s in SYSTEMS {
        deps.dataset(s, HOME)
            .expect("ds")
            .provision(&TenantId::parse(T).expect("t"))
            .await
            .expect("provision");
    }
    seed_json(&deps, T, SYSTEMS, 150).await;
    let b = execute(
        &deps,
        tenantctl::TENANT_BACKUP_ASL,
        "x",
        json!({"tenant_id": T}),
    )
    .await;
    assert_eq!(b.status, Status::Succeeded, "{}", e2e::task_cause(&b));
    let b = b.output.expect("out");
    assert_eq!(b["records"], 450);
    let r = execute(
        &deps,
        tenantctl::TENANT_RESTORE_ASL,
        "x",
        json!({"backup_id": b["backup_id"], "to": "restore"}),
    )
    .await;
    assert_eq!(r.status, Status::Succeeded, "{}", e2e::task_cause(&r));
    assert_eq!(r.output.expect("out")["matches_manifest"], true);
    for s in SYSTEMS {
        let home = fp(&deps, s, HOME, T).await;
        assert_eq!(home.count, 150, "{s}");
        assert_eq!(fp(&deps, s, "restore", T).await, home, "{s}");
    }
    let s3 = moto_s3(&cfg);
    let (primary, _) = versions(&s3, &archive).await;
    assert!(!primary.is_empty());
    // Platinum: the backup is copied whole to the second region's bucket.
    assert_eq!(b["regions"], json!(["us-east-1", "eu-west-1"]), "{b}");
    let (copied, _) = versions(&s3, &replica).await;
    let backup_objects = |keys: &[String]| -> Vec<String> {
        keys.iter()
            .filter(|k| k.contains("/backups/"))
            .cloned()
            .collect()
    };
    assert_eq!(backup_objects(&copied), backup_objects(&primary));
    for k in backup_objects(&primary) {
        let get = |bucket: String| {
            let (s3, k) = (s3.clone(), k.clone());
            async move {
                s3.get_object()
                    .bucket(bucket)
                    .key(k)
                    .send()
                    .await
                    .expect("get")
                    .body
                    .collect()
                    .await
                    .expect("body")
                    .into_bytes()
            }
        };
        assert_eq!(
            get(archive.clone()).await,
            get(replica.clone()).await,
            "{k}"
        );
    }
    let mut all: Vec<&str> = SYSTEMS.to_vec();
    all.push("backups");
    let e = run(&deps, request("gdpr-bk-aws", T, &all)).await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    for bucket in [&archive, &replica] {
        let (left, markers) = versions(&s3, bucket).await;
        assert!(
            left.is_empty() && markers == 0,
            "{bucket}: every version of every backup object is gone: {left:?}"
        );
    }
    let KeyState::Destroyed(w) = deps
        .keys()
        .expect("keys")
        .state(&TenantId::parse(T).expect("t"))
        .await
        .expect("state")
    else {
        panic!("the tenant's KMS key must be destroyed");
    };
    assert!(w[0].what.contains("arn:aws:kms"), "{w:?}");
    let cert = e.output.expect("out");
    let sys = cert["certificate"]["certificate"]["details"]["systems"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let bk = sys
        .iter()
        .find(|s| s["system"] == "backups")
        .expect("backups");
    assert_eq!(bk["method"], "delete-backups-and-destroy-key");
    assert!(
        bk["windows"][0]["gone_by"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{bk}"
    );
    let again = execute(
        &deps,
        tenantctl::TENANT_RESTORE_ASL,
        "x",
        json!({"backup_id": b["backup_id"], "to": "restore"}),
    )
    .await;
    assert_eq!(
        again.error.as_deref(),
        Some("TenantErased"),
        "{}",
        e2e::task_cause(&again)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_a_platinum_backup_in_both_regions_and_a_hold_keeps_it_in_both() {
    let (deps, cfg, archive, replica, catalog) = world_and_catalog().await;
    let tenant = TenantId::parse(T).expect("t");
    deps.dataset("postgresql", HOME)
        .expect("ds")
        .provision(&tenant)
        .await
        .expect("provision");
    seed_json(&deps, T, &["postgresql"], 20).await;
    let b = execute(
        &deps,
        tenantctl::TENANT_BACKUP_ASL,
        "x",
        json!({"tenant_id": T}),
    )
    .await;
    assert_eq!(b.status, Status::Succeeded, "{}", e2e::task_cause(&b));
    let s3 = moto_s3(&cfg);
    let before = versions(&s3, &replica).await.0;
    assert!(
        before.iter().any(|k| k.ends_with("/manifest.json")),
        "{before:?}"
    );
    // 400 days on: past platinum's 365.
    let later = Deps::connect(
        catalog,
        ConnectOptions {
            world: None,
            aws: Some(cfg.clone()),
            read_only: false,
        },
    )
    .await
    .expect("connect")
    .with_clock(Arc::new(Later(time::Duration::days(400))));
    deps.holds
        .place(&ports::LegalHold {
            tenant_id: T.into(),
            hold_id: "LIT-7".into(),
            reason: "case".into(),
            placed_at: "2026-01-01T00:00:00Z".into(),
            released_at: None,
        })
        .await
        .expect("hold");
    let held = steps::backup::prune(&later, &tenant).await.expect("prune");
    assert!(held.deleted.is_empty(), "{held:?}");
    assert_eq!(
        versions(&s3, &replica).await.0,
        before,
        "the hold keeps the copy too"
    );
    deps.holds
        .release(&tenant, "LIT-7", "2026-02-01T00:00:00Z")
        .await
        .expect("release");
    let p = steps::backup::prune(&later, &tenant).await.expect("prune");
    assert_eq!(p.deleted.len(), 1, "{p:?}");
    for bucket in [&archive, &replica] {
        let left = versions(&s3, bucket).await.0;
        assert!(
            !left.iter().any(|k| k.contains("/backups/")),
            "{bucket}: {left:?}"
        );
    }
}

async fn provisioned_world() -> (Arc<Deps>, lifecycle::Catalog, aws_config::SdkConfig) {
    let (deps, cfg, _, _, catalog) = world_and_catalog().await;
    let t = TenantId::parse(T).expect("t");
    for s in SYSTEMS {
        deps.dataset(s, HOME)
            .expect("ds")
            .provision(&t)
            .await
            .expect("provision");
    }
    (deps, catalog, cfg)
}

async fn backup(deps: &Arc<Deps>, kind: &str) -> serde_json::Value {
    let e = execute(
        deps,
        tenantctl::TENANT_BACKUP_ASL,
        "b",
        json!({"tenant_id": T, "kind": kind}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    e.output.expect("out")
}

async fn body(deps: &Deps, system: &str, loc: &str, key: &str) -> Option<Vec<u8>> {
    deps.dataset(system, loc)
        .expect("ds")
        .read(&TenantId::parse(T).expect("t"), key)
        .await
        .expect("read")
        .and_then(|r| r.body)
}

async fn nothing_at(deps: &Deps, loc: &str) {
    for s in SYSTEMS {
        let ds = deps.dataset(s, loc).expect("ds");
        match ds.scan(&TenantId::parse(T).expect("t"), None, 1).await {
            Ok(recs) => assert!(recs.is_empty(), "{s} at {loc}: nothing written"),
            // PostgreSQL: the location's schema was never even made.
            Err(e) if e.to_string().contains("does not exist") => {}
            Err(e) => panic!("{s} at {loc}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_in_time_restore_on_s3_dynamodb_and_postgres_holds_the_write_before_and_not_the_one_after()
 {
    let (deps, _, _) = provisioned_world().await;
    let t = TenantId::parse(T).expect("t");
    seed_json(&deps, T, SYSTEMS, 30).await;
    backup(&deps, "full").await;
    for s in SYSTEMS {
        let ds = deps.dataset(s, HOME).expect("ds");
        ds.write(&t, "first", Some(b"{\"n\":1}"))
            .await
            .expect("write");
        ds.write(&t, "rec/00003", None).await.expect("delete");
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let inc1 = backup(&deps, "incremental").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = lifecycle::backup::policy::stamp(time::OffsetDateTime::now_utc());
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for s in SYSTEMS {
        let ds = deps.dataset(s, HOME).expect("ds");
        ds.write(&t, "second", Some(b"{\"n\":2}"))
            .await
            .expect("write");
    }
    backup(&deps, "incremental").await;
    let e = execute(
        &deps,
        tenantctl::TENANT_RESTORE_ASL,
        "pit",
        json!({"backup_id": inc1["backup_id"], "to": "pit", "to_time": between}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    for s in SYSTEMS {
        assert!(body(&deps, s, "pit", "first").await.is_some(), "{s}: first");
        assert!(
            body(&deps, s, "pit", "second").await.is_none(),
            "{s}: second"
        );
        assert!(
            body(&deps, s, "pit", "rec/00003").await.is_none(),
            "{s}: the delete was replayed"
        );
        assert_eq!(fp(&deps, s, "pit", T).await.count, 30, "{s}");
    }
    let now = lifecycle::backup::policy::stamp(time::OffsetDateTime::now_utc());
    let latest = execute(
        &deps,
        tenantctl::TENANT_RESTORE_ASL,
        "now",
        json!({"backup_id": inc1["backup_id"], "to": "now", "to_time": now}),
    )
    .await;
    assert_eq!(
        latest.status,
        Status::Succeeded,
        "{}",
        e2e::task_cause(&latest)
    );
    for s in SYSTEMS {
        assert_eq!(
            fp(&deps, s, "now", T).await,
            fp(&deps, s, HOME, T).await,
            "{s}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_backup_restored_at_v2_on_the_products_is_transformed_and_an_unknown_version_writes_nothing()
 {
    let (deps, _, _) = provisioned_world().await;
    seed_json(&deps, T, SYSTEMS, 20).await;
    let b = backup(&deps, "full").await;
    let e = execute(
        &deps,
        tenantctl::TENANT_RESTORE_ASL,
        "v2",
        json!({"backup_id": b["backup_id"], "to": "v2", "schema_version": 2}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    for s in SYSTEMS {
        let home = body(&deps, s, HOME, "rec/00007").await.expect("home");
        assert_eq!(
            body(&deps, s, "v2", "rec/00007").await.expect("v2"),
            lifecycle::migration::Transform::SchemaV1ToV2
                .forward(&home)
                .expect("fwd"),
            "{s}"
        );
    }
    e2e::assert_restore_at_v7_refused(&deps, &b["backup_id"], "v7").await;
    nothing_at(&deps, "v7").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_s3_backup_object_holds_a_readable_record_and_one_changed_byte_is_caught_before_anything_is_written()
 {
    let (deps, _, _) = provisioned_world().await;
    let t = TenantId::parse(T).expect("t");
    const SECRET: &str = "jane.roe.4711@example.com";
    seed_json(&deps, T, SYSTEMS, 40).await;
    for s in SYSTEMS {
        deps.dataset(s, HOME)
            .expect("ds")
            .apply_many(
                &t,
                &[ports::migrate::Rec {
                    key: "customer/1".into(),
                    rev: 0,
                    body: Some(format!("{{\"email\":\"{SECRET}\"}}").into_bytes()),
                }],
            )
            .await
            .expect("seed");
    }
    let b = backup(&deps, "full").await;
    let archive = deps.archive().expect("archive").clone();
    let keys = archive.list(&format!("tenants/{T}/")).await.expect("list");
    assert!(keys.iter().any(|k| k.ends_with(".chunk")), "{keys:?}");
    for k in &keys {
        let bytes = archive.get(k).await.expect("get").expect("object");
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "{k} holds the seeded value in the clear"
        );
        assert!(
            !bytes.windows(7).any(|w| w == b"rec/000"),
            "{k} holds a record key in the clear"
        );
    }
    let chunk = keys
        .iter()
        .find(|k| k.contains("/analytics/") && k.ends_with(".chunk"))
        .expect("an analytics chunk");
    let bytes = archive.get(chunk).await.expect("get").expect("object");
    archive
        .put(chunk, e2e::flip_middle_byte(bytes))
        .await
        .expect("put");
    let e = execute(
        &deps,
        tenantctl::TENANT_RESTORE_ASL,
        "broken",
        json!({"backup_id": b["backup_id"], "to": "broken"}),
    )
    .await;
    assert_eq!(
        e.error.as_deref(),
        Some("BackupCorrupt"),
        "{}",
        e2e::task_cause(&e)
    );
    nothing_at(&deps, "broken").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_killed_mid_export_of_postgres_resumes_in_a_new_process_from_its_last_chunk() {
    let (deps, catalog, cfg) = provisioned_world().await;
    seed_json(&deps, T, &["postgresql"], 5000).await;
    let begun = call_step(deps.clone(), "begin-backup", json!({"tenant_id": T}), 60).await;
    let id = begun["backup_id"].as_str().expect("id").to_owned();
    let input = json!({"tenant_id": T, "backup_id": id, "system": "postgresql"});
    let first = call_step(deps.clone(), "backup-system", input.clone(), 0).await;
    assert_eq!(
        (first["done"].clone(), first["chunks"].clone()),
        (json!(false), json!(1))
    );
    // Killed: a new process, with connections of its own, picks the work up.
    drop(deps);
    let again = Arc::new(
        Deps::connect(
            catalog,
            ConnectOptions {
                world: None,
                aws: Some(cfg),
                read_only: false,
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
    assert_eq!(out["records"], 5000);
    for s in ["s3", "analytics"] {
        call_step(
            again.clone(),
            "backup-system",
            json!({"tenant_id": T, "backup_id": id, "system": s}),
            60,
        )
        .await;
    }
    let fin = call_step(
        again.clone(),
        "finish-backup",
        json!({"tenant_id": T, "backup_id": id}),
        60,
    )
    .await;
    assert_eq!(fin["records"], 5000);
    let e = execute(
        &again,
        tenantctl::TENANT_RESTORE_ASL,
        "resumed",
        json!({"backup_id": id, "to": "resumed"}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    assert_eq!(
        fp(&again, "postgresql", "resumed", T).await,
        fp(&again, "postgresql", HOME, T).await
    );
}

/// A world whose systems are an S3 Vectors index and CloudWatch Logs (both on moto), the
/// archive in S3, chunks of `chunk` records, and a vector bucket and log groups for each
/// of `locations`; T holds 60 vectors and 80 log events. Returns it, its directory (the
/// world file), its catalog, the archive bucket and the seeded vectors.
async fn vectors_and_logs_world(
    locations: &[&str],
    chunk: usize,
) -> (
    Arc<Deps>,
    tempfile::TempDir,
    lifecycle::Catalog,
    String,
    Vec<ports::migrate::Rec>,
) {
    let cfg = moto_config().await;
    let s3 = moto_s3(&cfg);
    let base = steps::testkit::unique("bkv").replace('_', "-");
    let archive = format!("{base}-archive");
    versioned_bucket(&s3, &archive).await;
    let vectors = aws_sdk_s3vectors::Client::new(&cfg);
    let mut vector_locations = Vec::new();
    let mut log_locations = Vec::new();
    let g = format!("/{base}");
    for b in std::iter::once("home").chain(locations.iter().copied()) {
        let bucket = format!("{base}-vec-{b}");
        vectors
            .create_vector_bucket()
            .vector_bucket_name(&bucket)
            .send()
            .await
            .expect("vector bucket");
        if b != "home" {
            vector_locations.push(format!("{b} = \"{bucket}\""));
            log_locations.push(format!("{b} = \"{g}/{b}/{{tenant_id}}\""));
        }
    }
    let dir = tempfile::tempdir().expect("dir");
    let text = format!(
        r#"
environment = "moto"
ledger = {{ backend = "embedded" }}
legal_holds = {{ backend = "embedded" }}
signer = {{ backend = "local" }}
[backup]
archive = {{ backend = "s3", bucket = "{archive}" }}
keys = {{ backend = "local" }}
chunk_records = {chunk}
[[systems]]
name = "vectors"
kind = "vectors"
backend = "s3vectors"
vector_bucket = "{base}-vec-home"
index = "emb-{{tenant_id}}"
dimension = {DIM}
distance = "cosine"
locations = {{ {} }}
[[systems]]
name = "cloudwatch"
kind = "logs"
backend = "cloudwatch"
groups = ["{g}/home/{{tenant_id}}"]
locations = {{ {} }}
"#,
        vector_locations.join(", "),
        log_locations.join(", ")
    );
    let catalog = lifecycle::Catalog::from_toml(&text).expect("catalog");
    let deps = Arc::new(
        Deps::connect(
            catalog.clone(),
            ConnectOptions {
                world: Some(dir.path().join("world.db")),
                aws: Some(cfg.clone()),
                read_only: false,
            },
        )
        .await
        .expect("connect"),
    );
    let t = TenantId::parse(T).expect("t");
    let v = deps.dataset("vectors", HOME).expect("ds");
    v.provision(&t).await.expect("provision");
    let recs: Vec<ports::migrate::Rec> = (0..60u32).map(embedding).collect();
    v.apply_many(&t, &recs).await.expect("seed vectors");
    let logs = deps.dataset("cloudwatch", HOME).expect("ds");
    logs.provision(&t).await.expect("provision");
    seed_json(&deps, T, &["cloudwatch"], 80).await;
    (deps, dir, catalog, archive, recs)
}

const DIM: u32 = 8;

/// Vector `doc-<i>#0`: its values and metadata depend on `i`.
fn embedding(i: u32) -> ports::migrate::Rec {
    ports::migrate::Rec {
        key: format!("doc-{i:03}#0"),
        rev: 0,
        body: Some(
            stores::pgvector::VectorBody {
                values: (0..DIM).map(|d| (i * DIM + d + 1) as f32 / 7.0).collect(),
                metadata: Some(json!({"doc": format!("d{i}"), "chunk": i % 5})),
            }
            .encode()
            .expect("encode"),
        ),
    }
}

/// The tenant's embeddings in an S3 Vectors index and its log events in CloudWatch Logs
/// (both on moto) back up into the S3 archive and restore equal into locations of their
/// own (another vector bucket, other log groups); production keeps every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_on_s3_vectors_and_cloudwatch_logs_restores_equal_in_new_locations() {
    let (deps, _dir, _, _, recs) = vectors_and_logs_world(&["restore", "v2", "v7"], 2000).await;
    let t = TenantId::parse(T).expect("t");
    let b = execute(
        &deps,
        tenantctl::TENANT_BACKUP_ASL,
        "b",
        json!({"tenant_id": T}),
    )
    .await;
    assert_eq!(b.status, Status::Succeeded, "{}", e2e::task_cause(&b));
    let b = b.output.expect("out");
    assert_eq!(b["records"], 140, "{b}");
    let r = execute(
        &deps,
        tenantctl::TENANT_RESTORE_ASL,
        "r",
        json!({"backup_id": b["backup_id"], "to": "restore"}),
    )
    .await;
    assert_eq!(r.status, Status::Succeeded, "{}", e2e::task_cause(&r));
    assert_eq!(r.output.expect("out")["matches_manifest"], true);
    for (s, n) in [("vectors", 60), ("cloudwatch", 80)] {
        let home = fp(&deps, s, HOME, T).await;
        assert_eq!(home.count, n, "{s}");
        assert_eq!(fp(&deps, s, "restore", T).await, home, "{s}");
    }
    let back = deps
        .dataset("vectors", "restore")
        .expect("ds")
        .read(&t, "doc-007#0")
        .await
        .expect("read")
        .and_then(|r| r.body)
        .expect("restored vector");
    assert_eq!(
        back,
        recs[7].body.clone().expect("body"),
        "values and metadata exact"
    );

    // At schema v2: log events take the v2 envelope, embeddings stay as they are; no path
    // to v7 is refused before anything is written.
    let e = execute(
        &deps,
        tenantctl::TENANT_RESTORE_ASL,
        "v2",
        json!({"backup_id": b["backup_id"], "to": "v2", "schema_version": 2}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    let home_event = body(&deps, "cloudwatch", HOME, "rec/00007")
        .await
        .expect("home");
    assert_eq!(
        body(&deps, "cloudwatch", "v2", "rec/00007").await,
        Some(
            lifecycle::migration::Transform::SchemaV1ToV2
                .forward(&home_event)
                .expect("forward")
        ),
        "a log event at v2"
    );
    assert_eq!(fp(&deps, "cloudwatch", "v2", T).await.count, 80);
    assert_eq!(
        fp(&deps, "vectors", "v2", T).await,
        fp(&deps, "vectors", HOME, T).await,
        "embeddings restored as backed up"
    );
    e2e::assert_restore_at_v7_refused(&deps, &b["backup_id"], "v7").await;
    for s in ["vectors", "cloudwatch"] {
        assert_eq!(fp(&deps, s, "v7", T).await.count, 0, "{s}: nothing written");
    }
}

/// On S3 Vectors and CloudWatch Logs: an export killed after its first chunk resumes in a
/// new process; no archive object holds a seeded value in the clear; a point-in-time
/// restore holds the write before the instant and not the one after; one changed byte in
/// a chunk is caught before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_vectors_and_cloudwatch_a_killed_export_resumes_point_in_time_holds_and_a_changed_byte_is_caught()
 {
    const SECRET: &str = "jane.roe.4711@example.com";
    let (deps, dir, catalog, _, _) = vectors_and_logs_world(&["pit", "broken"], 25).await;
    let t = TenantId::parse(T).expect("t");
    let owner = |key: &str, x: f32| ports::migrate::Rec {
        key: key.into(),
        rev: 0,
        body: Some(
            stores::pgvector::VectorBody {
                values: vec![x; DIM as usize],
                metadata: Some(json!({"owner": SECRET})),
            }
            .encode()
            .expect("encode"),
        ),
    };
    let secret = owner("doc-secret#0", 0.5);
    deps.dataset("vectors", HOME)
        .expect("ds")
        .write(&t, &secret.key, secret.body.as_deref())
        .await
        .expect("write");
    deps.dataset("cloudwatch", HOME)
        .expect("ds")
        .write(
            &t,
            "login/1",
            Some(format!("{{\"user\":\"{SECRET}\"}}").as_bytes()),
        )
        .await
        .expect("write");

    // A full backup whose vector export is killed after its first chunk (25 records).
    let begun = call_step(deps.clone(), "begin-backup", json!({"tenant_id": T}), 60).await;
    let id = begun["backup_id"].as_str().expect("id").to_owned();
    let input = |s: &str| json!({"tenant_id": T, "backup_id": id, "system": s});
    for s in ["vectors", "cloudwatch"] {
        let first = call_step(deps.clone(), "backup-system", input(s), 0).await;
        assert_eq!(
            (first["done"].clone(), first["chunks"].clone()),
            (json!(false), json!(1)),
            "{s}"
        );
    }
    drop(deps);
    let deps = Arc::new(
        Deps::connect(
            catalog,
            ConnectOptions {
                world: Some(dir.path().join("world.db")),
                aws: Some(moto_config().await),
                read_only: false,
            },
        )
        .await
        .expect("reconnect"),
    );
    for (s, n) in [("vectors", 61), ("cloudwatch", 81)] {
        let mut out = call_step(deps.clone(), "backup-system", input(s), 0).await;
        assert_eq!(out["chunks"], 2, "{s} resumed after the recorded chunk");
        while out["done"] == false {
            out = call_step(deps.clone(), "backup-system", input(s), 60).await;
        }
        assert_eq!(out["records"], n, "{s}");
    }
    call_step(
        deps.clone(),
        "finish-backup",
        json!({"tenant_id": T, "backup_id": id}),
        60,
    )
    .await;

    // Point in time: one write of each product before the instant, one after.
    let vectors = deps.dataset("vectors", HOME).expect("ds");
    let logs = deps.dataset("cloudwatch", HOME).expect("ds");
    let (first, second) = (embedding(100), embedding(200));
    vectors
        .write(&t, &first.key, first.body.as_deref())
        .await
        .expect("write");
    logs.write(&t, "event/first", Some(b"{\"n\":1}"))
        .await
        .expect("write");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let inc = backup(&deps, "incremental").await;
    assert_eq!(inc["records"], 2, "{inc}");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = lifecycle::backup::policy::stamp(time::OffsetDateTime::now_utc());
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    vectors
        .write(&t, &second.key, second.body.as_deref())
        .await
        .expect("write");
    logs.write(&t, "event/second", Some(b"{\"n\":2}"))
        .await
        .expect("write");
    backup(&deps, "incremental").await;
    let e = execute(
        &deps,
        tenantctl::TENANT_RESTORE_ASL,
        "pit",
        json!({"backup_id": id, "to": "pit", "to_time": between}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    assert_eq!(body(&deps, "vectors", "pit", &first.key).await, first.body);
    assert_eq!(body(&deps, "vectors", "pit", &second.key).await, None);
    assert!(
        body(&deps, "cloudwatch", "pit", "event/first")
            .await
            .is_some()
    );
    assert_eq!(body(&deps, "cloudwatch", "pit", "event/second").await, None);
    assert_eq!(fp(&deps, "vectors", "pit", T).await.count, 62);
    assert_eq!(fp(&deps, "cloudwatch", "pit", T).await.count, 82);

    // Nothing readable in the archive: no seeded value, no record key.
    let archive = deps.archive().expect("archive").clone();
    let keys = archive.list(&format!("tenants/{T}/")).await.expect("list");
    assert!(
        keys.iter().filter(|k| k.ends_with(".chunk")).count() >= 9,
        "{keys:?}"
    );
    for k in &keys {
        let bytes = archive.get(k).await.expect("get").expect("object");
        for needle in [SECRET.as_bytes(), b"doc-0", b"rec/000"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{k} holds {} in the clear",
                String::from_utf8_lossy(needle)
            );
        }
    }

    // One changed byte in a vector chunk: refused, and nothing at the location.
    let chunk = keys
        .iter()
        .find(|k| k.contains(&format!("{id}/vectors/")) && k.ends_with(".chunk"))
        .expect("a vectors chunk");
    let bytes = archive.get(chunk).await.expect("get").expect("object");
    archive
        .put(chunk, e2e::flip_middle_byte(bytes))
        .await
        .expect("put");
    let e = execute(
        &deps,
        tenantctl::TENANT_RESTORE_ASL,
        "broken",
        json!({"backup_id": id, "to": "broken"}),
    )
    .await;
    assert_eq!(
        e.error.as_deref(),
        Some("BackupCorrupt"),
        "{}",
        e2e::task_cause(&e)
    );
    for s in ["vectors", "cloudwatch"] {
        assert_eq!(
            fp(&deps, s, "broken", T).await.count,
            0,
            "{s}: nothing written"
        );
    }
}
