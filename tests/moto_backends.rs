//! The shared conformance suite against real AWS APIs (moto's server).

use e2e::{kms_key, moto_config, moto_s3, table, versioned_bucket};
use lifecycle::SystemKind;
use std::sync::Arc;
use stores::dynamodb::{DynamoHolds, DynamoLedger, DynamoTenantStore};
use stores::kms::KmsSigner;
use stores::s3::S3TenantStore;
use stores::testkit;

#[tokio::test]
async fn s3_store_passes_the_suite() {
    let cfg = moto_config().await;
    let s3 = moto_s3(&cfg);
    let bucket = testkit::unique("suite").replace('_', "-");
    versioned_bucket(&s3, &bucket).await;
    let store = S3TenantStore::new(
        s3,
        "s3",
        SystemKind::Objects,
        &bucket,
        "tenants/{tenant_id}/",
        4,
    )
    .with_batch_size(10);
    testkit::tenant_store_suite(&store).await;
}

#[tokio::test]
async fn dynamodb_store_passes_the_suite() {
    let cfg = moto_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let name = testkit::unique("suite");
    table(&ddb, &name, "pk", "sk").await;
    let store = DynamoTenantStore::new(
        ddb,
        "analytics",
        SystemKind::Analytics,
        &name,
        "pk",
        "sk",
        "TENANT#{tenant_id}",
        4,
    )
    .with_page_size(10);
    testkit::tenant_store_suite(&store).await;
}

#[tokio::test]
async fn dynamodb_holds_pass_the_suite() {
    let cfg = moto_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let name = testkit::unique("holds");
    table(&ddb, &name, "tenant_id", "hold_id").await;
    testkit::legal_holds_suite(&DynamoHolds::new(ddb, &name)).await;
}

#[tokio::test]
async fn kms_signer_passes_the_suite() {
    let cfg = moto_config().await;
    let kms = aws_sdk_kms::Client::new(&cfg);
    let key = kms_key(&kms).await;
    let signer = KmsSigner::connect(kms, &key).await.expect("connect");
    // moto signs MessageType=DIGEST wrongly (a known limit), so messages over KMS's 4 KiB RAW
    // limit, which KmsSigner sends as a digest, are only checked against real KMS.
    testkit::signer_suite(&signer, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_ledger_passes_the_suite_with_a_kms_signer() {
    let cfg = moto_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let name = testkit::unique("ledger");
    table(&ddb, &name, "chain", "sk").await;
    let kms = aws_sdk_kms::Client::new(&cfg);
    let key = kms_key(&kms).await;
    let signer = Arc::new(KmsSigner::connect(kms, &key).await.expect("connect"));
    testkit::ledger_suite(Arc::new(DynamoLedger::new(ddb, &name)), signer).await;
}

#[tokio::test]
async fn dynamodb_routing_and_migrations_pass_the_suites() {
    let cfg = moto_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let routing = testkit::unique("routing");
    table(&ddb, &routing, "tenant_id", "sk").await;
    testkit::routing_suite(&stores::dynamodb::DynamoRouting::new(ddb.clone(), &routing)).await;
    let migrations = testkit::unique("migrations");
    e2e::hash_table(&ddb, &migrations, "tenant_id").await;
    testkit::migrations_suite(&stores::dynamodb::DynamoMigrations::new(ddb, &migrations)).await;
}

#[tokio::test]
async fn dynamodb_dataset_passes_the_suite() {
    let cfg = moto_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let name = testkit::unique("dataset");
    table(&ddb, &name, "pk", "sk").await;
    let ds = stores::dynamodb::DynamoDataset::new(
        ddb,
        "analytics",
        "green",
        &name,
        "pk",
        "sk",
        "TENANT#{tenant_id}",
        4,
    );
    testkit::dataset_suite(&ds, &ds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamodb_system_migrates_under_load_and_erasure_reaches_both_tables() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let cfg = moto_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let (home, green) = (testkit::unique("usage"), testkit::unique("usage-green"));
    table(&ddb, &home, "pk", "sk").await;
    table(&ddb, &green, "pk", "sk").await;
    let text = tenantctl::LOCAL_CATALOG.replacen(
        "name = \"analytics\"\nkind = \"analytics\"\nholds = \"usage events in the data lake, keyed by tenant\"\nbackend = \"embedded\"",
        &format!("name = \"analytics\"\nkind = \"analytics\"\nholds = \"usage events\"\nbackend = \"dynamodb\"\ntable = \"{home}\"\npartition_key = \"pk\"\nsort_key = \"sk\"\npartition_value = \"TENANT#{{tenant_id}}\"\nlocations = {{ green = \"{green}\" }}"),
        1,
    );
    assert!(
        text.contains(&green),
        "the local catalog's analytics entry moved"
    );
    let dir = tempfile::tempdir().expect("dir");
    let deps = stores::wiring::Deps::connect(
        lifecycle::Catalog::from_toml(&text).expect("catalog"),
        stores::wiring::ConnectOptions {
            world: Some(dir.path().join("w.db")),
            aws: Some(cfg),
        },
    )
    .await
    .expect("deps");
    let deps = Arc::new(deps);
    let tenant = "tenant_002_globex";
    e2e::migration::seed_json(&deps, tenant, &["analytics"], 60).await;
    let r = tenantctl::migrate::router(&deps, tenant)
        .await
        .expect("router");
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, handles) =
        tenantctl::migrate::workload(r.clone(), vec!["analytics".into()], 2, stop.clone());
    let exec = e2e::migration::run_migration(
        Arc::new(tenantctl::registry::LocalFunctions::new(deps.clone())),
        e2e::migration::blue_green(
            tenant,
            &["analytics"],
            serde_json::json!({"soak_seconds": 5, "page_size": 25}),
        ),
        0.02,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.await.expect("worker");
    }
    r.shutdown().await.expect("shutdown");
    assert!(exec.error.is_none(), "{:?}: {:?}", exec.error, exec.cause);
    assert!(tally.ok.load(Ordering::SeqCst) > 0);
    e2e::migration::assert_migrated_then_erased(&deps, tenant, "analytics", &tally, 60).await;
}
