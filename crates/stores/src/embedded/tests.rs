//! The conformance suite against the embedded world.

use super::*;
use lifecycle::SystemKind;
use std::sync::Arc;
use steps::testkit;

fn world() -> (tempfile::TempDir, World) {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = World::open(&dir.path().join("world.db")).expect("open");
    (dir, w)
}

#[tokio::test]
async fn every_kind_passes_the_tenant_store_suite() {
    let (_d, w) = world();
    for kind in [
        SystemKind::Relational,
        SystemKind::KeyValue,
        SystemKind::Vectors,
        SystemKind::Objects,
        SystemKind::Logs,
        SystemKind::Backups,
        SystemKind::Analytics,
    ] {
        let store =
            LocalTenantStore::new(w.clone(), &format!("{kind:?}"), kind).with_batch_size(10);
        testkit::tenant_store_suite(&store).await;
    }
}

#[tokio::test]
async fn legal_holds_pass_the_suite() {
    let (_d, w) = world();
    testkit::legal_holds_suite(&LocalHolds::new(w)).await;
}

#[tokio::test]
async fn signer_passes_the_suite_and_persists_its_key() {
    let (_d, w) = world();
    let s = LocalSigner::load_or_create(&w, "2026-01-01T00:00:00Z").expect("signer");
    testkit::signer_suite(&s, true).await;
    let again = LocalSigner::load_or_create(&w.reopen().expect("reopen"), "later").expect("again");
    assert_eq!(ports::Signer::key_id(&s), ports::Signer::key_id(&again));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_passes_the_suite() {
    let (_d, w) = world();
    let signer = Arc::new(LocalSigner::load_or_create(&w, "now").expect("signer"));
    testkit::ledger_suite(Arc::new(LocalLedger::new(w)), signer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_holds_across_separate_connections() {
    // Separate connections behave like separate processes sharing the file.
    let (_d, w) = world();
    let signer = Arc::new(LocalSigner::load_or_create(&w, "now").expect("signer"));
    testkit::ledger_suite(
        Arc::new(LocalLedger::new(w.reopen().expect("reopen"))),
        signer,
    )
    .await;
}

#[tokio::test]
async fn backups_are_excluded_not_deleted() {
    let (_d, w) = world();
    let store = LocalTenantStore::new(w.clone(), "backups", SystemKind::Backups);
    let t = lifecycle::TenantId::parse("t1").expect("id");
    ports::TenantStore::put(&store, &t, "snap-1", b"x")
        .await
        .expect("put");
    let pass = ports::TenantStore::erase(&store, &t, std::time::Instant::now())
        .await
        .expect("erase");
    assert_eq!((pass.erased, pass.complete), (1, true));
    let kept: i64 = w
        .conn()
        .query_row("SELECT COUNT(*) FROM records WHERE system='backups' AND excluded=1 AND purge_after IS NOT NULL", [], |r| r.get(0))
        .expect("query");
    assert_eq!(
        kept, 1,
        "the snapshot is kept, excluded from restore, with a purge date"
    );
}

#[tokio::test]
async fn embedded_migration_ports_pass_the_suites() {
    let dir = tempfile::tempdir().expect("dir");
    let w = World::open(&dir.path().join("w.db")).expect("world");
    for kind in [
        lifecycle::SystemKind::Relational,
        lifecycle::SystemKind::Objects,
    ] {
        let ds = crate::embedded::LocalDataset::new(w.clone(), "sys", kind, "green");
        testkit::dataset_suite(&ds, &ds).await;
    }
    testkit::routing_suite(&crate::embedded::LocalRouting::new(w.clone())).await;
    testkit::migrations_suite(&crate::embedded::LocalMigrations::new(w)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_log_passes_the_suite() {
    let (_d, w) = world();
    testkit::request_log_suite(Arc::new(LocalLedger::new(w))).await;
}

#[tokio::test]
async fn directory_checkpoints_pass_the_suite() {
    let dir = tempfile::tempdir().expect("dir");
    testkit::checkpoint_store_suite(&DirectoryCheckpoints::new(dir.path().join("cp"))).await;
}

#[test]
fn first_use_from_many_connections_at_once_makes_one_key() {
    // Each trial: an empty data dir, eight connections (as eight processes would open the
    // file) asking for the key at the same moment. Before the key left the world this
    // made two keys in 3 runs of 10.
    for _ in 0..10 {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("world.db");
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let ids: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let (p, b) = (path.clone(), barrier.clone());
                    s.spawn(move || {
                        b.wait();
                        let w = World::open(&p).map_err(|e| e.to_string())?;
                        let k =
                            LocalSigner::load_or_create(&w, "now").map_err(|e| e.to_string())?;
                        Ok::<_, String>(ports::Signer::key_id(&k).to_owned())
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("thread").expect("open and load"))
                .collect()
        });
        assert!(ids.iter().all(|i| *i == ids[0]), "two keys: {ids:?}");
        let left = std::fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".signing-key"))
            .count();
        assert_eq!(left, 0, "no temporary key file is left behind");
    }
}

#[cfg(unix)]
#[test]
fn the_key_lives_outside_the_world_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let (d, w) = world();
    let s = LocalSigner::load_or_create(&w, "now").expect("key");
    let file = d.path().join("signing-key.pem");
    let mode = std::fs::metadata(&file)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let in_world: i64 = w
        .conn()
        .query_row("SELECT COUNT(*) FROM signing_keys", [], |r| r.get(0))
        .expect("count");
    assert_eq!(in_world, 0, "no private key in the data file");
    let loaded = LocalSigner::load(&file).expect("load");
    assert_eq!(ports::Signer::key_id(&loaded), ports::Signer::key_id(&s));
    assert!(LocalSigner::load(&d.path().join("absent.pem")).is_err());
}

#[test]
fn a_key_an_older_world_kept_inside_moves_out_and_keeps_signing() {
    use p256::pkcs8::EncodePrivateKey as _;
    let (d, w) = world();
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let pem = key.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).expect("pem");
    w.conn()
        .execute(
            "INSERT INTO signing_keys (key_id, pkcs8_pem, created_at) VALUES ('old', ?1, '2020')",
            [pem.as_str()],
        )
        .expect("insert");
    let s = LocalSigner::load_or_create(&w, "now").expect("key");
    assert_eq!(
        ports::Signer::public_key(&s),
        key.verifying_key(),
        "the world's existing key keeps signing"
    );
    assert!(d.path().join("signing-key.pem").is_file());
}

#[tokio::test]
async fn a_chain_written_before_the_tree_gets_its_tree_on_the_next_append() {
    let (_d, w) = world();
    let ledger = LocalLedger::new(w.clone());
    let signer = LocalSigner::load_or_create(&w, "now").expect("key");
    let draft = |r: &str| steps::certify::Draft {
        kind: "legacy".into(),
        outcome: "erased".into(),
        request_id: r.into(),
        tenant_id: "t1".into(),
        details: serde_json::json!({}),
        unique: false,
    };
    let old = LocalLedger::without_tree(w.clone());
    for i in 0..5 {
        steps::certify::certify(&old, &signer, &ports::SystemClock, &draft(&format!("r{i}")))
            .await
            .expect("append");
    }
    steps::certify::certify(&ledger, &signer, &ports::SystemClock, &draft("r5"))
        .await
        .expect("append");
    let head = ports::Ledger::head(&ledger, "legacy")
        .await
        .expect("head")
        .expect("some");
    let f = head.tree().expect("tree rebuilt");
    assert_eq!(f.size(), 6);
    assert_eq!(
        steps::checkpoint::root_at(&ledger, "legacy", 6)
            .await
            .expect("root"),
        f.root()
    );
}

#[tokio::test]
async fn the_publisher_refuses_to_sign_over_a_rewritten_or_truncated_ledger() {
    let (d, w) = world();
    let ledger = LocalLedger::new(w.clone());
    let signer = LocalSigner::load_or_create(&w, "now").expect("key");
    let store = DirectoryCheckpoints::new(d.path().join("checkpoints"));
    let draft = |r: &str| steps::certify::Draft {
        kind: "cp-test".into(),
        outcome: "erased".into(),
        request_id: r.into(),
        tenant_id: "t1".into(),
        details: serde_json::json!({}),
        unique: false,
    };
    let mut ring = lifecycle::certificate::KeyRing::default();
    ring.trust(*ports::Signer::public_key(&signer))
        .expect("trust");
    let publish = || {
        steps::checkpoint::publish(
            &ledger,
            &signer,
            &store,
            &ports::SystemClock,
            "local",
            "cp-test",
            &ring,
        )
    };
    for i in 0..5 {
        steps::certify::certify(
            &ledger,
            &signer,
            &ports::SystemClock,
            &draft(&format!("r{i}")),
        )
        .await
        .expect("append");
    }
    let first = publish().await.expect("publish");
    assert!(first.new && first.size == 5);
    assert!(
        !publish().await.expect("again").new,
        "nothing new: nothing published"
    );
    // Rewrite the history: drop everything and re-append a different chain of 6.
    for t in ["ledger_entries", "ledger_heads", "ledger_nodes"] {
        w.execute_raw(&format!("DELETE FROM {t} WHERE chain = 'cp-test'"), &[])
            .expect("rewrite");
    }
    for i in 0..6 {
        steps::certify::certify(
            &ledger,
            &signer,
            &ports::SystemClock,
            &draft(&format!("x{i}")),
        )
        .await
        .expect("append");
    }
    let e = publish().await.expect_err("rewritten");
    assert!(e.to_string().contains("rewritten"), "{e}");
    // Truncated below the published size.
    for t in ["ledger_entries", "ledger_heads", "ledger_nodes"] {
        w.execute_raw(&format!("DELETE FROM {t} WHERE chain = 'cp-test'"), &[])
            .expect("truncate");
    }
    steps::certify::certify(&ledger, &signer, &ports::SystemClock, &draft("y"))
        .await
        .expect("append");
    let e = publish().await.expect_err("truncated");
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishers_racing_appenders_never_see_a_truncation_or_a_conflict() {
    let (d, w) = world();
    let signer = Arc::new(LocalSigner::load_or_create(&w, "now").expect("key"));
    let mut ring = lifecycle::certificate::KeyRing::default();
    ring.trust(*ports::Signer::public_key(&*signer))
        .expect("trust");
    let ring = Arc::new(ring);
    let dir = d.path().join("checkpoints");
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (w, s, r, dir) = (
            w.reopen().expect("reopen"),
            signer.clone(),
            ring.clone(),
            dir.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let ledger = LocalLedger::new(w);
            let store = DirectoryCheckpoints::new(dir);
            for i in 0..6 {
                let draft = steps::certify::Draft {
                    kind: "race".into(),
                    outcome: "erased".into(),
                    request_id: format!("t{t}-{i}"),
                    tenant_id: "t1".into(),
                    details: serde_json::json!({}),
                    unique: false,
                };
                steps::certify::certify(&ledger, &*s, &ports::SystemClock, &draft)
                    .await
                    .expect("append");
                steps::checkpoint::publish(
                    &ledger,
                    &*s,
                    &store,
                    &ports::SystemClock,
                    "local",
                    "race",
                    &r,
                )
                .await
                .expect("publish while others append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
}
