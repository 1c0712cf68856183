//! Backup and restore of one tenant on the embedded world, through the shipped state
//! machines in the simulator: equal fingerprints after a restore, point in time, schema
//! migration before restore, resume after a kill, corruption caught before anything is
//! written, prune under a legal hold, and erasure reaching every backup and its key.

use e2e::migration::seed_json;
use e2e::{Later, execute, fingerprint as fp, local_world, request, run};
use lifecycle::TenantId;
use lifecycle::migration::{HOME, Transform};
use ports::Services;
use ports::backup::KeyState;
use ports::migrate::Rec;
use serde_json::{Value, json};
use sim::{Execution, Status};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use stores::Deps;
use tenant_runtime::Budget;
use tenantctl::registry::call;

const T: &str = "tenant_001_acme_corp";
const OTHER: &str = "tenant_002_globex";
const SYSTEMS: &[&str] = &[
    "postgresql",
    "redis",
    "pinecone",
    "s3",
    "cloudwatch",
    "analytics",
];

async fn backup(deps: &Arc<Deps>, tenant: &str, kind: &str) -> Value {
    let e = execute(
        deps,
        tenantctl::TENANT_BACKUP_ASL,
        "b",
        json!({"tenant_id": tenant, "kind": kind}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    e.output.expect("output")
}

async fn restore(deps: &Arc<Deps>, input: Value) -> Execution {
    execute(deps, tenantctl::TENANT_RESTORE_ASL, "r", input).await
}

/// How many backups the tenant has.
async fn backups(deps: &Deps, t: &str) -> usize {
    steps::backup::list(deps, &tid(t))
        .await
        .expect("list")
        .len()
}

fn tid(t: &str) -> TenantId {
    TenantId::parse(t).expect("tenant")
}

fn archive_dir(w: &e2e::LocalWorld) -> PathBuf {
    w.dir.path().join("backups")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restored_into_a_new_location_has_equal_fingerprints_in_every_system() {
    let w = local_world().await;
    seed_json(&w.deps, T, SYSTEMS, 120).await;
    seed_json(&w.deps, OTHER, SYSTEMS, 30).await;
    let before_other: Vec<_> = futures_fps(&w.deps, OTHER, HOME).await;
    let b = backup(&w.deps, T, "full").await;
    assert_eq!(b["records"], 120 * SYSTEMS.len() as u64);
    let id = b["backup_id"].as_str().expect("id").to_owned();
    let e = restore(&w.deps, json!({"backup_id": id, "to": "staging"})).await;
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    let out = e.output.expect("out");
    assert_eq!(out["matches_manifest"], true);
    for s in SYSTEMS {
        let home = fp(&w.deps, s, HOME, T).await;
        assert_eq!(home.count, 120);
        assert_eq!(fp(&w.deps, s, "staging", T).await, home, "{s}");
        assert_eq!(
            fp(&w.deps, s, "staging", OTHER).await.count,
            0,
            "{s}: nothing of another tenant"
        );
    }
    assert_eq!(
        futures_fps(&w.deps, OTHER, HOME).await,
        before_other,
        "other tenant untouched"
    );
    // The same restore again is refused: the target now holds the tenant.
    let again = restore(
        &w.deps,
        json!({"backup_id": id, "to": "staging", "restore_id": "rs-second"}),
    )
    .await;
    assert_eq!(again.status, Status::Failed);
    assert!(
        e2e::task_cause(&again).contains("already holds records"),
        "{}",
        e2e::task_cause(&again)
    );
}

async fn futures_fps(
    deps: &Deps,
    tenant: &str,
    loc: &str,
) -> Vec<lifecycle::migration::Fingerprint> {
    let mut v = Vec::new();
    for s in SYSTEMS {
        v.push(fp(deps, s, loc, tenant).await);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_in_time_restore_holds_the_write_before_and_not_the_one_after() {
    let w = local_world().await;
    seed_json(&w.deps, T, &["postgresql"], 50).await;
    backup(&w.deps, T, "full").await;
    let pg = ports::migrate::Locator::dataset(&*w.deps, "postgresql", HOME).expect("ds");
    let t = tid(T);
    pg.write(&t, "first", Some(b"{\"n\":1}"))
        .await
        .expect("write");
    pg.write(&t, "rec/00003", None).await.expect("delete");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let inc1 = backup(&w.deps, T, "incremental").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let between = lifecycle::backup::policy::stamp(time::OffsetDateTime::now_utc());
    tokio::time::sleep(Duration::from_millis(5)).await;
    pg.write(&t, "second", Some(b"{\"n\":2}"))
        .await
        .expect("write");
    backup(&w.deps, T, "incremental").await;
    let e = restore(
        &w.deps,
        json!({"backup_id": inc1["backup_id"], "to": "pit", "to_time": between}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    let pit = ports::migrate::Locator::dataset(&*w.deps, "postgresql", "pit").expect("ds");
    assert!(
        pit.read(&t, "first")
            .await
            .expect("r")
            .and_then(|r| r.body)
            .is_some(),
        "the first write is there"
    );
    assert!(
        pit.read(&t, "second")
            .await
            .expect("r")
            .and_then(|r| r.body)
            .is_none(),
        "the second is not"
    );
    assert!(
        pit.read(&t, "rec/00003")
            .await
            .expect("r")
            .and_then(|r| r.body)
            .is_none(),
        "the delete was replayed"
    );
    assert_eq!(fp(&w.deps, "postgresql", "pit", T).await.count, 50);
    let latest = restore(&w.deps, json!({"backup_id": inc1["backup_id"], "to": "now", "to_time": lifecycle::backup::policy::stamp(time::OffsetDateTime::now_utc())})).await;
    assert_eq!(
        latest.status,
        Status::Succeeded,
        "{}",
        e2e::task_cause(&latest)
    );
    assert_eq!(
        fp(&w.deps, "postgresql", "now", T).await,
        fp(&w.deps, "postgresql", HOME, T).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_backup_restored_at_v2_is_transformed_and_an_unknown_version_writes_nothing() {
    let w = local_world().await;
    seed_json(&w.deps, T, &["postgresql", "redis", "pinecone"], 40).await;
    let b = backup(&w.deps, T, "full").await;
    let e = restore(
        &w.deps,
        json!({"backup_id": b["backup_id"], "to": "v2", "schema_version": 2}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    let t = tid(T);
    // Embeddings are not the tenant's documents: a schema change leaves them as they are.
    assert_eq!(
        fp(&w.deps, "pinecone", "v2", T).await,
        fp(&w.deps, "pinecone", HOME, T).await,
        "vectors restored at v2 as backed up"
    );
    let home = ports::migrate::Locator::dataset(&*w.deps, "redis", HOME).expect("ds");
    let v2 = ports::migrate::Locator::dataset(&*w.deps, "redis", "v2").expect("ds");
    let a = home
        .read(&t, "rec/00007")
        .await
        .expect("r")
        .and_then(|r| r.body)
        .expect("home");
    let b2 = v2
        .read(&t, "rec/00007")
        .await
        .expect("r")
        .and_then(|r| r.body)
        .expect("v2");
    assert_eq!(b2, Transform::SchemaV1ToV2.forward(&a).expect("fwd"));
    e2e::assert_restore_at_v7_refused(&w.deps, &b["backup_id"], "v7").await;
    for s in ["postgresql", "redis"] {
        let ds = ports::migrate::Locator::dataset(&*w.deps, s, "v7").expect("ds");
        assert!(
            ds.scan(&t, None, 1).await.expect("scan").is_empty(),
            "{s}: nothing written"
        );
    }
}

async fn step(deps: &Deps, f: &str, input: Value, budget: Duration) -> Value {
    call(f, input, deps, Budget::of(budget)).await.expect(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_killed_mid_export_resumes_from_its_last_chunk() {
    let w = local_world().await;
    seed_json(&w.deps, T, &["postgresql"], 5000).await;
    let begun = step(
        &w.deps,
        "begin-backup",
        json!({"tenant_id": T}),
        Duration::from_secs(60),
    )
    .await;
    let id = begun["backup_id"].as_str().expect("id").to_owned();
    let input = json!({"tenant_id": T, "backup_id": id, "system": "postgresql"});
    // A budget already spent: one chunk, then the continuation.
    let first = step(&w.deps, "backup-system", input.clone(), Duration::ZERO).await;
    assert_eq!(first["done"], false);
    assert_eq!(first["chunks"], 1);
    // "Killed": a new process (new connection) picks the work up.
    let again = Arc::new(
        tenantctl::world::connect(w.dir.path(), None)
            .await
            .expect("reconnect"),
    );
    let mut out = step(&again, "backup-system", input.clone(), Duration::ZERO).await;
    assert_eq!(out["chunks"], 2, "resumed after the recorded chunk");
    while out["done"] == false {
        out = step(
            &again,
            "backup-system",
            input.clone(),
            Duration::from_secs(60),
        )
        .await;
    }
    assert_eq!(out["records"], 5000);
    for s in SYSTEMS.iter().filter(|s| **s != "postgresql") {
        step(
            &again,
            "backup-system",
            json!({"tenant_id": T, "backup_id": id, "system": s}),
            Duration::from_secs(60),
        )
        .await;
    }
    let fin = step(
        &again,
        "finish-backup",
        json!({"tenant_id": T, "backup_id": id}),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(fin["records"], 5000);
    let e = restore(&again, json!({"backup_id": id, "to": "resumed"})).await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    assert_eq!(
        fp(&again, "postgresql", "resumed", T).await,
        fp(&again, "postgresql", HOME, T).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_changed_byte_in_a_chunk_is_caught_before_anything_is_written() {
    let w = local_world().await;
    seed_json(&w.deps, T, &["postgresql", "s3"], 60).await;
    let b = backup(&w.deps, T, "full").await;
    let chunk = files(&archive_dir(&w))
        .into_iter()
        .find(|p| {
            p.to_string_lossy().contains("/s3/") && p.extension().is_some_and(|e| e == "chunk")
        })
        .expect("a chunk");
    let bytes = std::fs::read(&chunk).expect("read");
    std::fs::write(&chunk, e2e::flip_middle_byte(bytes)).expect("write");
    let e = restore(
        &w.deps,
        json!({"backup_id": b["backup_id"], "to": "broken"}),
    )
    .await;
    assert_eq!(e.status, Status::Failed);
    assert_eq!(
        e.error.as_deref(),
        Some("BackupCorrupt"),
        "{}",
        e2e::task_cause(&e)
    );
    for s in ["postgresql", "s3"] {
        let ds = ports::migrate::Locator::dataset(&*w.deps, s, "broken").expect("ds");
        assert!(
            ds.scan(&tid(T), None, 1).await.expect("scan").is_empty(),
            "{s}: nothing partial"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_expired_backups_except_under_a_legal_hold() {
    let w = local_world().await;
    seed_json(&w.deps, T, &["postgresql"], 10).await;
    seed_json(&w.deps, OTHER, &["postgresql"], 10).await;
    backup(&w.deps, T, "full").await;
    backup(&w.deps, OTHER, "full").await;
    let later = Arc::new(
        tenantctl::world::connect(w.dir.path(), None)
            .await
            .expect("connect")
            .with_clock(Arc::new(Later(time::Duration::days(400)))),
    );
    w.deps
        .holds
        .place(&ports::LegalHold {
            tenant_id: T.into(),
            hold_id: "LIT-1".into(),
            reason: "case".into(),
            placed_at: "2026-01-01T00:00:00Z".into(),
            released_at: None,
        })
        .await
        .expect("hold");
    let kept = steps::backup::prune(&*later, &tid(T)).await.expect("prune");
    assert!(kept.deleted.is_empty());
    assert_eq!(kept.held_by, ["LIT-1"]);
    assert!(
        kept.certificate_seq.is_some(),
        "what the hold kept is certified"
    );
    assert_eq!(backups(&later, T).await, 1);
    let gone = steps::backup::prune(&*later, &tid(OTHER))
        .await
        .expect("prune");
    assert_eq!(gone.deleted.len(), 1);
    assert!(backups(&later, OTHER).await == 0);
    assert_eq!(
        backups(&later, T).await,
        1,
        "the held tenant's backup survives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_deletes_every_backup_and_the_key_so_a_copy_cannot_be_read_nor_restored() {
    let w = local_world().await;
    let gone = "tenant_004_departed_customer";
    seed_json(&w.deps, gone, SYSTEMS, 25).await;
    seed_json(&w.deps, OTHER, SYSTEMS, 25).await;
    let b = backup(&w.deps, gone, "full").await;
    backup(&w.deps, OTHER, "full").await;
    // Someone copied the backup away (a replica, a download): keep its manifest and chunks.
    let copy = tempfile::tempdir().expect("tmp");
    let theirs: Vec<PathBuf> = files(&archive_dir(&w))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(gone))
        .collect();
    assert!(theirs.len() > SYSTEMS.len());
    for (i, p) in theirs.iter().enumerate() {
        std::fs::copy(
            p,
            copy.path().join(format!(
                "{i}-{}",
                p.file_name().and_then(|n| n.to_str()).unwrap_or("f")
            )),
        )
        .expect("copy");
    }
    let manifest = theirs
        .iter()
        .find(|p| p.ends_with("manifest.json"))
        .expect("manifest");
    let m = lifecycle::backup::Manifest::parse(
        &std::fs::read(copy.path().join(format!(
            "{}-manifest.json",
            theirs.iter().position(|p| p == manifest).expect("pos")
        )))
        .expect("read"),
    )
    .expect("parse");
    let mut all: Vec<&str> = SYSTEMS.to_vec();
    all.push("backups");
    let e = run(&w.deps, request("gdpr-bk-1", gone, &all)).await;
    assert_eq!(e.status, Status::Succeeded, "{}", e2e::task_cause(&e));
    assert!(
        files(&archive_dir(&w))
            .iter()
            .all(|p| !p.to_string_lossy().contains(gone)),
        "every backup object is gone"
    );
    assert!(
        !files(&archive_dir(&w)).is_empty(),
        "the other tenant's backups stay"
    );
    assert!(matches!(
        w.deps
            .keys()
            .expect("keys")
            .state(&tid(gone))
            .await
            .expect("state"),
        KeyState::Destroyed(_)
    ));
    // Its tier's scheduled run leaves it out rather than failing on it every month.
    let run_after = execute(
        &w.deps,
        tenantctl::TENANT_BACKUP_TIER_ASL,
        "bronze-after-erasure",
        json!({"tier": "bronze"}),
    )
    .await;
    assert_eq!(run_after.status, Status::Succeeded, "{:?}", run_after.cause);
    let out = run_after.output.expect("output");
    assert!(
        out["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["tenant_id"] != gone),
        "{out}"
    );
    assert_eq!(out["erased"][0]["tenant_id"], gone, "{out}");
    let wrapped = base64_decode(&m.key.wrapped_b64);
    let err = w
        .deps
        .keys()
        .expect("keys")
        .unwrap(&tid(gone), &m.key.key_ref, &wrapped)
        .await
        .expect_err("destroyed");
    assert!(
        matches!(err, ports::StoreError::KeyDestroyed { .. }),
        "{err}"
    );
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
    assert_eq!(bk["windows"][0]["region"], "local");
    let r = restore(&w.deps, json!({"backup_id": b["backup_id"], "to": "back"})).await;
    assert_eq!(
        r.error.as_deref(),
        Some("TenantErased"),
        "{}",
        e2e::task_cause(&r)
    );
    let again = execute(
        &w.deps,
        tenantctl::TENANT_BACKUP_ASL,
        "b2",
        json!({"tenant_id": gone}),
    )
    .await;
    assert_eq!(again.error.as_deref(), Some("TenantErased"));
    // The other tenant still restores.
    let other = steps::backup::list(&*w.deps, &tid(OTHER))
        .await
        .expect("list");
    let ok = restore(
        &w.deps,
        json!({"backup_id": other[0].backup_id, "to": "staging"}),
    )
    .await;
    assert_eq!(ok.status, Status::Succeeded, "{}", e2e::task_cause(&ok));
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("b64")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_backup_file_holds_a_readable_record_or_key() {
    let w = local_world().await;
    let t = tid(T);
    let pg = ports::migrate::Locator::dataset(&*w.deps, "postgresql", HOME).expect("ds");
    let secret = "SEEDED-alice.smith@example.com-4111111111111111";
    pg.apply_many(
        &t,
        &[Rec {
            key: format!("user/{secret}"),
            rev: 1,
            body: Some(format!("{{\"email\":\"{secret}\"}}").into_bytes()),
        }],
    )
    .await
    .expect("seed");
    seed_json(&w.deps, T, &["postgresql"], 3000).await;
    backup(&w.deps, T, "full").await;
    backup(&w.deps, T, "incremental").await;
    let all = files(&archive_dir(&w));
    assert!(!all.is_empty());
    for p in &all {
        let b = std::fs::read(p).expect("read");
        for needle in [secret.as_bytes(), b"\"i\":17,", b"rec/00001"] {
            assert!(
                !b.windows(needle.len()).any(|x| x == needle),
                "{} holds {:?}",
                p.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_run_backs_up_each_tenant_of_the_tier_in_its_own_execution_and_no_other() {
    let w = local_world().await;
    let gold = ["tenant_002_globex", "tenant_003_initech"];
    for t in gold.iter().chain(&[T, "tenant_004_departed_customer"]) {
        seed_json(&w.deps, t, &["postgresql", "s3"], 6).await;
    }
    let e = execute(
        &w.deps,
        tenantctl::TENANT_BACKUP_TIER_ASL,
        "gold-run",
        json!({"tier": "gold"}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    let out = e.output.expect("output");
    assert_eq!(out["failed"], json!([]));
    let results = out["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{out}");
    for (r, t) in results.iter().zip(gold) {
        assert_eq!(r["tenant_id"], t);
        assert_eq!(r["backup"]["status"], "SUCCEEDED");
        let arn = r["backup"]["execution"].as_str().expect("arn");
        assert!(
            arn.contains(":execution:TenantBackupStateMachine:"),
            "{arn}"
        );
        let listed = steps::backup::list(&*w.deps, &tid(t)).await.expect("list");
        assert_eq!(listed.len(), 1, "{t} has its backup");
        assert_eq!(
            listed[0].backup_id,
            r["backup"]["backup_id"].as_str().expect("id")
        );
        assert_eq!(listed[0].tier, "gold");
    }
    for t in [T, "tenant_004_departed_customer"] {
        assert!(backups(&w.deps, t).await == 0, "{t} is not of the tier");
    }

    // One tenant failing does not stop the other; the run fails and names it.
    let sim = tenantctl::world::with_shipped_machines(sim::Simulator::new(Arc::new(FailStep {
        deps: w.deps.clone(),
        function: "begin-backup",
        error: "StoreUnavailable",
        tenant: Some("tenant_002_globex"),
    })));
    let e = sim
        .run(
            &e2e::machine(tenantctl::TENANT_BACKUP_TIER_ASL),
            "gold-run-2",
            json!({"tier": "gold", "kind": "full"}),
        )
        .await;
    assert_eq!(e.status, Status::Failed);
    assert_eq!(e.error.as_deref(), Some("TierRunIncomplete"));
    assert_eq!(
        e.cause.as_deref(),
        Some("1 of 2 tenant(s) failed; the others went through")
    );
    assert_eq!(
        backups(&w.deps, "tenant_003_initech").await,
        2,
        "the other tenant's second backup went through"
    );
    assert_eq!(backups(&w.deps, "tenant_002_globex").await, 1);

    // A tier the catalog does not have is refused before anything runs.
    let e = execute(
        &w.deps,
        tenantctl::TENANT_BACKUP_TIER_ASL,
        "bad",
        json!({"tier": "diamond"}),
    )
    .await;
    assert_eq!(e.error.as_deref(), Some("InvalidRequest"), "{:?}", e.cause);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_prune_prunes_every_listed_tenant_and_keeps_what_a_hold_covers() {
    let w = local_world().await;
    // UNLISTED is in no tier of the catalog: backed up on demand, it is pruned all the same.
    const UNLISTED: &str = "tenant_009_on_demand";
    for t in [T, OTHER, UNLISTED] {
        seed_json(&w.deps, t, &["postgresql"], 4).await;
        backup(&w.deps, t, "full").await;
    }
    w.deps
        .holds
        .place(&ports::LegalHold {
            tenant_id: T.into(),
            hold_id: "LIT-9".into(),
            reason: "case".into(),
            placed_at: "2026-01-01T00:00:00Z".into(),
            released_at: None,
        })
        .await
        .expect("hold");
    let later = Arc::new(
        tenantctl::world::connect(w.dir.path(), None)
            .await
            .expect("connect")
            .with_clock(Arc::new(Later(time::Duration::days(400)))),
    );
    let e = execute(&later, tenantctl::TENANT_PRUNE_ASL, "prune", json!({})).await;
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    let results = e.output.expect("output")["results"].clone();
    assert_eq!(
        results.as_array().map(Vec::len),
        Some(6),
        "every tenant the catalog lists, and the one holding backups: {results}"
    );
    assert_eq!(
        backups(&later, UNLISTED).await,
        0,
        "its backups are past the default tier's retention"
    );
    assert_eq!(backups(&later, T).await, 1, "held");
    assert!(backups(&later, OTHER).await == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_id_of_100_characters_is_backed_up_and_restored_when_the_restore_names_it() {
    let w = local_world().await;
    let long = format!("tenant_{}", "l".repeat(93));
    seed_json(&w.deps, &long, &["postgresql", "s3"], 5).await;
    let b = execute(
        &w.deps,
        tenantctl::TENANT_BACKUP_ASL,
        "long",
        json!({"tenant_id": long}),
    )
    .await;
    assert_eq!(b.status, Status::Succeeded, "{}", e2e::task_cause(&b));
    let id = b.output.expect("out")["backup_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(id.len() <= 80 && id.starts_with("bl-"), "{id}");
    let bare = execute(
        &w.deps,
        tenantctl::TENANT_RESTORE_ASL,
        "long-bare",
        json!({"backup_id": id}),
    )
    .await;
    assert_eq!(bare.error.as_deref(), Some("InvalidRequest"));
    let r = execute(
        &w.deps,
        tenantctl::TENANT_RESTORE_ASL,
        "long-named",
        json!({"backup_id": id, "tenant_id": long}),
    )
    .await;
    assert_eq!(r.status, Status::Succeeded, "{}", e2e::task_cause(&r));
    assert_eq!(r.output.expect("out")["matches_manifest"], true);
    let other = execute(
        &w.deps,
        tenantctl::TENANT_RESTORE_ASL,
        "long-other",
        json!({"backup_id": id, "tenant_id": T}),
    )
    .await;
    assert_eq!(other.error.as_deref(), Some("InvalidRequest"));
}

/// A task that fails one function with one error (for one tenant, or for all), and runs
/// the real handler otherwise.
#[derive(Debug)]
struct FailStep {
    deps: Arc<Deps>,
    function: &'static str,
    error: &'static str,
    tenant: Option<&'static str>,
}

#[async_trait::async_trait]
impl sim::TaskInvoker for FailStep {
    async fn invoke(
        &self,
        resource: &str,
        input: Value,
        budget: Duration,
    ) -> Result<Value, sim::TaskError> {
        let f = tenantctl::registry::function_for(resource).unwrap_or_default();
        if f == self.function && self.tenant.is_none_or(|t| input["tenant_id"] == t) {
            return Err(sim::TaskError {
                error: self.error.into(),
                cause: format!("injected: {} fails", self.function),
            });
        }
        call(&f, input, &self.deps, Budget::of(budget)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_place_restore_cuts_over_through_the_router_and_a_closed_gate_rolls_it_back() {
    let w = local_world().await;
    let t = tid(T);
    let systems = ["postgresql", "redis", "s3"];
    seed_json(&w.deps, T, &systems, 30).await;
    let b = backup(&w.deps, T, "full").await;
    // A bad deploy overwrites a record in every system after the backup.
    for s in systems {
        let ds = ports::migrate::Locator::dataset(&*w.deps, s, HOME).expect("ds");
        ds.write(&t, "rec/00001", Some(b"{\"broken\":true}"))
            .await
            .expect("write");
    }
    let read = |loc: &'static str, s: &'static str| {
        let deps = w.deps.clone();
        async move {
            ports::migrate::Locator::dataset(&*deps, s, loc)
                .expect("ds")
                .read(&tid(T), "rec/00001")
                .await
                .expect("read")
                .and_then(|r| r.body)
        }
    };
    let before_home: Vec<_> = futures_fps(&w.deps, T, HOME).await;

    // A closed health gate: the cutover rolls back, traffic stays on home, nothing is lost.
    let gate = tenantctl::world::with_shipped_machines(sim::Simulator::new(Arc::new(FailStep {
        deps: w.deps.clone(),
        function: "check-health",
        error: "HealthGateBreached",
        tenant: None,
    })));
    let e = gate
        .run(
            &e2e::machine(tenantctl::TENANT_RESTORE_ASL),
            "in-place-1",
            json!({"backup_id": b["backup_id"], "to": "restored", "in_place": true}),
        )
        .await;
    assert_eq!(
        e.error.as_deref(),
        Some("InPlaceCutOverFailed"),
        "{:?}",
        e.cause
    );
    assert!(
        e.cause
            .as_deref()
            .is_some_and(|c| c.contains("MigrationRolledBack")),
        "{:?}",
        e.cause
    );
    let routing = w
        .deps
        .routing()
        .expect("routing")
        .get(&t)
        .await
        .expect("get");
    assert!(
        routing
            .as_ref()
            .is_none_or(|r| r.source == HOME && r.target.is_none()),
        "{routing:?}"
    );
    assert_eq!(
        futures_fps(&w.deps, T, HOME).await,
        before_home,
        "home untouched"
    );
    let m = w
        .deps
        .migrations()
        .expect("m")
        .get(&t)
        .await
        .expect("get")
        .expect("record");
    assert_eq!(m.kind, lifecycle::migration::MigrationKind::Restore);
    assert_eq!(m.phase, lifecycle::migration::Phase::RolledBack);

    // With the gate open: the restored location is live, the broken write is gone there,
    // and home keeps it (the way back).
    let e = execute(
        &w.deps,
        tenantctl::TENANT_RESTORE_ASL,
        "in-place-2",
        json!({"backup_id": b["backup_id"], "to": "restored2", "in_place": true}),
    )
    .await;
    if e.status != Status::Succeeded {
        let m = w.deps.migrations().expect("m").get(&t).await.expect("get");
        panic!("{:?} {:?}: migration {m:?}", e.error, e.cause);
    }
    let out = e.output.expect("out");
    assert_eq!(out["matches_manifest"], true, "{out}");
    assert_eq!(out["cutover"]["status"], "SUCCEEDED", "{out}");
    let routing = w
        .deps
        .routing()
        .expect("routing")
        .get(&t)
        .await
        .expect("get")
        .expect("r");
    assert_eq!(
        (routing.source.as_str(), routing.target.as_deref()),
        ("restored2", None)
    );
    let m = w
        .deps
        .migrations()
        .expect("m")
        .get(&t)
        .await
        .expect("get")
        .expect("record");
    assert_eq!(
        (m.kind, m.phase, m.restore_id.is_some()),
        (
            lifecycle::migration::MigrationKind::Restore,
            lifecycle::migration::Phase::Migrated,
            true
        )
    );
    for s in systems {
        assert_ne!(
            read("restored2", s).await.as_deref(),
            Some(&b"{\"broken\":true}"[..]),
            "{s}"
        );
        assert_eq!(
            read(HOME, s).await.as_deref(),
            Some(&b"{\"broken\":true}"[..]),
            "{s}"
        );
    }

    // Its certificate stands for the restored location only while that holds exactly what
    // was certified: once written (it is live now), it cannot justify another cutover.
    let rid = out["restore_id"].as_str().expect("restore id").to_owned();
    let all: Vec<String> = w
        .deps
        .catalog
        .systems
        .iter()
        .filter(|s| s.migratable())
        .map(|s| s.name.to_string())
        .collect();
    ports::migrate::Locator::dataset(&*w.deps, "redis", "restored2")
        .expect("ds")
        .write(&t, "rec/00009", Some(b"{\"live\":true}"))
        .await
        .expect("write");
    let stale = steps::backup::certified_restore(&*w.deps, &t, &rid, "restored2", &all).await;
    assert!(
        stale
            .as_ref()
            .is_err_and(|e| e.to_string().contains("no longer holds")),
        "{stale:?}"
    );

    // A second in-place restore into the live location, or at another schema, is refused.
    for bad in [
        json!({"backup_id": b["backup_id"], "to": "restored2", "in_place": true, "restore_id": "rs-x1"}),
        json!({"backup_id": b["backup_id"], "to": "v2x", "in_place": true, "schema_version": 2}),
    ] {
        let e = execute(&w.deps, tenantctl::TENANT_RESTORE_ASL, "bad", bad.clone()).await;
        assert_eq!(
            e.error.as_deref(),
            Some("InvalidRequest"),
            "{bad} {:?}",
            e.cause
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_after_a_migration_restores_the_live_state_of_every_system() {
    let w = local_world().await;
    let t = tid(T);
    seed_json(&w.deps, T, SYSTEMS, 25).await;
    backup(&w.deps, T, "full").await;
    // Changes at home after the backup, which the migration then bulk-copies (a copy the
    // target's change feed does not record).
    for s in SYSTEMS {
        let ds = ports::migrate::Locator::dataset(&*w.deps, s, HOME).expect("ds");
        ds.write(&t, "rec/00002", Some(b"{\"changed\":\"before the move\"}"))
            .await
            .expect("write");
        ds.write(&t, "rec/00004", None).await.expect("delete");
    }
    let m = execute(
        &w.deps,
        tenantctl::TENANT_MIGRATION_ASL,
        "move",
        json!({"tenant_id": T, "kind": "blue-green", "from": {"environment": "blue"},
               "to": {"environment": "m1"}, "options": {"soak_seconds": 0}}),
    )
    .await;
    assert_eq!(m.status, Status::Succeeded, "{}", e2e::task_cause(&m));
    let inc = backup(&w.deps, T, "incremental").await;
    let now = lifecycle::backup::policy::stamp(time::OffsetDateTime::now_utc());
    let r = restore(
        &w.deps,
        json!({"backup_id": inc["backup_id"], "to": "chk", "to_time": now}),
    )
    .await;
    assert_eq!(r.status, Status::Succeeded, "{}", e2e::task_cause(&r));
    for s in SYSTEMS {
        let spec = w.deps.catalog.system(s).expect("spec");
        let live = if spec.migratable() { "m1" } else { HOME };
        let want = fp(&w.deps, s, live, T).await;
        assert!(want.count > 0, "{s} has records at {live}");
        assert_eq!(
            fp(&w.deps, s, "chk", T).await,
            want,
            "{s}: restored = live at {live}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_incremental_and_one_on_an_expired_base_are_taken_in_full() {
    let w = local_world().await;
    seed_json(&w.deps, OTHER, &["postgresql"], 12).await;
    let b = backup(&w.deps, OTHER, "incremental").await;
    assert_eq!(b["records"], 12, "{b}");
    let m = steps::backup::list(&*w.deps, &tid(OTHER))
        .await
        .expect("list");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].kind, lifecycle::backup::BackupKind::Full);
    assert_eq!(m[0].base, None);
    // Past its base's retention (gold: 90 days) an incremental is taken in full as well:
    // a prune may delete that base at any moment.
    let later = Arc::new(
        tenantctl::world::connect(w.dir.path(), None)
            .await
            .expect("connect")
            .with_clock(Arc::new(Later(time::Duration::days(100)))),
    );
    backup(&later, OTHER, "incremental").await;
    let m = steps::backup::list(&*later, &tid(OTHER))
        .await
        .expect("list");
    assert_eq!(
        (m[1].kind, m[1].base.as_deref()),
        (lifecycle::backup::BackupKind::Full, None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_tenant_moved_again_is_backed_up_as_v2_and_restores_as_it_is_live() {
    let w = local_world().await;
    seed_json(&w.deps, T, &["postgresql"], 15).await;
    let migrate = |input: Value| {
        let deps = w.deps.clone();
        async move {
            let m = execute(&deps, tenantctl::TENANT_MIGRATION_ASL, "m", input).await;
            assert_eq!(m.status, Status::Succeeded, "{}", e2e::task_cause(&m));
        }
    };
    migrate(
        json!({"tenant_id": T, "kind": "schema-version", "from": {"schema_version": 1},
        "to": {"schema_version": 2}, "systems": ["postgresql"], "options": {"soak_seconds": 0}}),
    )
    .await;
    migrate(
        json!({"tenant_id": T, "kind": "blue-green", "from": {"environment": "v2"},
        "to": {"environment": "bg"}, "systems": ["postgresql"], "options": {"soak_seconds": 0}}),
    )
    .await;
    let b = backup(&w.deps, T, "full").await;
    let m = steps::backup::list(&*w.deps, &tid(T)).await.expect("list");
    let part = m[0].part("postgresql").expect("part");
    assert_eq!((part.location.as_str(), part.schema_version), ("bg", 2));
    let r = restore(&w.deps, json!({"backup_id": b["backup_id"], "to": "again"})).await;
    assert_eq!(r.status, Status::Succeeded, "{}", e2e::task_cause(&r));
    assert_eq!(
        fp(&w.deps, "postgresql", "again", T).await,
        fp(&w.deps, "postgresql", "bg", T).await,
        "restored as live, not transformed twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_a_backup_abandoned_mid_export_only_once_it_is_past_the_redrive_window() {
    let w = local_world().await;
    seed_json(&w.deps, OTHER, &["postgresql"], 4000).await;
    let begun = step(
        &w.deps,
        "begin-backup",
        json!({"tenant_id": OTHER}),
        Duration::from_secs(60),
    )
    .await;
    let id = begun["backup_id"].as_str().expect("id").to_owned();
    step(
        &w.deps,
        "backup-system",
        json!({"tenant_id": OTHER, "backup_id": id, "system": "postgresql"}),
        Duration::ZERO,
    )
    .await;
    let left = || {
        files(&archive_dir(&w))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(&id))
            .count()
    };
    assert!(left() > 1, "pending.json and a chunk");
    let at = |days| {
        let dir = w.dir.path().to_owned();
        async move {
            tenantctl::world::connect(&dir, None)
                .await
                .expect("connect")
                .with_clock(Arc::new(Later(time::Duration::days(days))))
        }
    };
    for days in [1, 14] {
        let p = steps::backup::prune(&at(days).await, &tid(OTHER))
            .await
            .expect("prune");
        assert!(
            p.abandoned.is_empty(),
            "{days} days: it may still be redriven"
        );
        assert!(left() > 1);
    }
    let p = steps::backup::prune(&at(16).await, &tid(OTHER))
        .await
        .expect("prune");
    assert_eq!(p.abandoned, std::slice::from_ref(&id));
    assert_eq!(left(), 0, "every file of it is gone");
    assert!(p.certificate_seq.is_some(), "and the prune is certified");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_after_a_rolled_back_migration_is_taken_in_full() {
    let w = local_world().await;
    seed_json(&w.deps, T, &["postgresql"], 10).await;
    backup(&w.deps, T, "full").await;
    // A migration that rolls back leaves the tenant where it was, but its copies back went
    // through `apply`, which the home feed does not record.
    let gate = tenantctl::world::with_shipped_machines(sim::Simulator::new(Arc::new(FailStep {
        deps: w.deps.clone(),
        function: "check-health",
        error: "HealthGateBreached",
        tenant: None,
    })));
    let m = gate
        .run(
            &e2e::machine(tenantctl::TENANT_MIGRATION_ASL),
            "rolled-back",
            json!({"tenant_id": T, "kind": "blue-green", "from": {"environment": "blue"},
                   "to": {"environment": "g9"}, "options": {"soak_seconds": 0}}),
        )
        .await;
    assert_eq!(
        m.error.as_deref(),
        Some("MigrationRolledBack"),
        "{:?}",
        m.cause
    );
    backup(&w.deps, T, "incremental").await;
    let all = steps::backup::list(&*w.deps, &tid(T)).await.expect("list");
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[1].kind,
        lifecycle::backup::BackupKind::Full,
        "taken in full"
    );
    assert!(all[1].migration_version.is_some());
    // With no migration since, the next one is incremental again.
    backup(&w.deps, T, "incremental").await;
    let all = steps::backup::list(&*w.deps, &tid(T)).await.expect("list");
    assert_eq!(all[2].kind, lifecycle::backup::BackupKind::Incremental);
}
