//! The conformance suite against the embedded world.

use super::*;
use crate::testkit;
use lifecycle::SystemKind;
use std::sync::Arc;

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
    assert_eq!(crate::Signer::key_id(&s), crate::Signer::key_id(&again));
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
    crate::TenantStore::put(&store, &t, "snap-1", b"x")
        .await
        .expect("put");
    let pass = crate::TenantStore::erase(&store, &t, std::time::Instant::now())
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
        let ds = crate::local::LocalDataset::new(w.clone(), "sys", kind, "green");
        testkit::dataset_suite(&ds, &ds).await;
    }
    testkit::routing_suite(&crate::local::LocalRouting::new(w.clone())).await;
    testkit::migrations_suite(&crate::local::LocalMigrations::new(w)).await;
}
