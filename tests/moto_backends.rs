//! The shared conformance suite against real AWS APIs (moto's server).

use e2e::{kms_key, moto_config, moto_s3, table, versioned_bucket};
use lifecycle::SystemKind;
use std::sync::Arc;
use steps::testkit;
use stores::dynamodb::{DynamoHolds, DynamoLedger, DynamoTenantStore};
use stores::kms::KmsSigner;
use stores::s3::{S3Dataset, S3TenantStore};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_request_log_passes_the_suite() {
    let cfg = moto_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let name = testkit::unique("requests");
    table(&ddb, &name, "chain", "sk").await;
    testkit::request_log_suite(Arc::new(DynamoLedger::new(ddb, &name))).await;
}

#[tokio::test]
async fn s3_object_lock_checkpoints_pass_the_suite() {
    let cfg = moto_config().await;
    let s3 = moto_s3(&cfg);
    let bucket = testkit::unique("checkpoints").replace('_', "-");
    e2e::object_lock_bucket(&s3, &bucket).await;
    let store = stores::s3::S3Checkpoints::new(s3.clone(), &bucket, "checkpoints/", 1);
    testkit::checkpoint_store_suite(&store).await;
    // Compliance mode: the published object cannot be deleted while locked.
    let key = s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .expect("list")
        .contents()[0]
        .key()
        .expect("key")
        .to_owned();
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.object_lock_mode(),
        Some(&aws_sdk_s3::types::ObjectLockMode::Compliance)
    );
    let version = head.version_id().expect("versioned").to_owned();
    let del = s3
        .delete_object()
        .bucket(&bucket)
        .key(&key)
        .version_id(version)
        .send()
        .await;
    assert!(del.is_err(), "a locked checkpoint version was deleted");
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

/// The `analytics` dataset of location `green` over `table`, read by the suites.
fn usage_dataset(ddb: &aws_sdk_dynamodb::Client, table: &str) -> stores::dynamodb::DynamoDataset {
    stores::dynamodb::DynamoDataset::new(
        ddb.clone(),
        "analytics",
        "green",
        table,
        "pk",
        "sk",
        "TENANT#{tenant_id}",
        4,
    )
}

#[tokio::test]
async fn dynamodb_dataset_passes_the_suite() {
    let cfg = moto_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let name = testkit::unique("dataset");
    table(&ddb, &name, "pk", "sk").await;
    let ds = usage_dataset(&ddb, &name);
    testkit::dataset_suite(&ds, &ds).await;
}

#[tokio::test]
async fn dynamodb_dataset_with_a_stream_feed_passes_the_suite() {
    let cfg = moto_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let streams = stores::dynamodb::StreamSource::new(aws_sdk_dynamodbstreams::Client::new(&cfg));
    let name = testkit::unique("streamed");
    e2e::streamed_table(&ddb, &name, "pk", "sk").await;
    let ds = usage_dataset(&ddb, &name).with_streams(streams.clone());
    testkit::dataset_suite(&ds, &ds).await;
    // A table without a stream is refused with what to change.
    let plain = testkit::unique("plain");
    table(&ddb, &plain, "pk", "sk").await;
    let no_stream = usage_dataset(&ddb, &plain).with_streams(streams);
    let t = lifecycle::TenantId::parse("t1").expect("tenant");
    let e = ports::migrate::ChangeFeed::head(&no_stream, &t)
        .await
        .expect_err("no stream");
    assert!(e.to_string().contains("NEW_IMAGE"), "{e}");
}

#[tokio::test]
async fn s3_dataset_passes_the_suite() {
    let cfg = moto_config().await;
    let s3 = moto_s3(&cfg);
    let bucket = testkit::unique("dataset").replace('_', "-");
    versioned_bucket(&s3, &bucket).await;
    let ds = S3Dataset::new(s3, "s3", "green", &bucket, "tenants/{tenant_id}/", 4);
    testkit::dataset_suite(&ds, &ds).await;
}

#[tokio::test]
async fn s3_bulk_copy_is_server_side_resumable_and_never_overwrites_newer() {
    use lifecycle::TenantId;
    use lifecycle::migration::{Checkpoint, Transform};
    use ports::migrate::{Dataset, Rec};
    use steps::mover::{Direction, Pair, copy_page};
    let cfg = moto_config().await;
    let s3 = moto_s3(&cfg);
    let (a, b) = (
        testkit::unique("home").replace('_', "-"),
        testkit::unique("green").replace('_', "-"),
    );
    versioned_bucket(&s3, &a).await;
    versioned_bucket(&s3, &b).await;
    let prefix = "tenants/{tenant_id}/";
    let home = Arc::new(S3Dataset::new(s3.clone(), "s3", "home", &a, prefix, 4));
    let green = Arc::new(S3Dataset::new(s3.clone(), "s3", "green", &b, prefix, 4));
    let t = TenantId::parse(&testkit::unique("t")).expect("tenant");
    for i in 0..23 {
        let body = format!("doc {i}");
        home.write(&t, &format!("docs/{i:03} é+.txt"), Some(body.as_bytes()))
            .await
            .expect("write");
    }
    home.write(&t, "docs/gone", None).await.expect("tombstone");
    // The target already holds one key at a newer revision: the copy must keep it.
    let newer = Rec {
        key: "docs/005 é+.txt".into(),
        rev: 7,
        body: Some(b"newer".to_vec()),
    };
    assert!(green.apply(&t, &newer, false).await.expect("apply"));
    let pair = Pair {
        system: "s3".into(),
        from: home.clone(),
        to: green.clone(),
        feed: home.clone(),
        transform: Transform::None,
        direction: Direction::Forward,
    };
    let mut cp = Checkpoint::default();
    // Two pages, then a "killed" run resumes from the saved cursor.
    assert!(!copy_page(&pair, &t, &mut cp, 10).await.expect("page 1"));
    let saved = cp.clone();
    assert!(!copy_page(&pair, &t, &mut cp, 10).await.expect("page 2"));
    let mut resumed = saved;
    while !copy_page(&pair, &t, &mut resumed, 10).await.expect("page") {}
    assert_eq!(
        (resumed.copied, resumed.skipped),
        (13, 11),
        "page 1 copies 9 and keeps the newer key; the rerun of page 2 copies nothing again; page 3 copies 4"
    );
    let all = green.scan(&t, None, 100).await.expect("scan");
    assert_eq!(all.len(), 24, "every key once, tombstone included");
    let kept = green
        .read(&t, &newer.key)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(
        (kept.rev, kept.body),
        (7, newer.body),
        "newer never overwritten"
    );
    let gone = green
        .read(&t, "docs/gone")
        .await
        .expect("read")
        .expect("tomb");
    assert_eq!(
        (gone.rev, gone.body),
        (1, None),
        "tombstones copy as tombstones"
    );
    let one = green
        .read(&t, "docs/001 é+.txt")
        .await
        .expect("read")
        .expect("doc");
    assert_eq!((one.rev, one.body.as_deref()), (1, Some(&b"doc 1"[..])));
    assert!(
        green.write(&t, "~feed/1", Some(b"x")).await.is_err(),
        "record keys may not enter the feed's range"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamodb_system_migrates_under_load_and_erasure_reaches_both_tables() {
    let cfg = moto_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let (home, green) = (testkit::unique("usage"), testkit::unique("usage-green"));
    table(&ddb, &home, "pk", "sk").await;
    table(&ddb, &green, "pk", "sk").await;
    migrate_under_load(
        cfg,
        "analytics",
        "name = \"analytics\"\nkind = \"analytics\"\nholds = \"usage events in the data lake, keyed by tenant\"\nbackend = \"embedded\"",
        &format!("name = \"analytics\"\nkind = \"analytics\"\nholds = \"usage events\"\nbackend = \"dynamodb\"\ntable = \"{home}\"\npartition_key = \"pk\"\nsort_key = \"sk\"\npartition_value = \"TENANT#{{tenant_id}}\"\nlocations = {{ green = \"{green}\" }}"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamodb_system_caught_up_from_its_stream_migrates_under_load() {
    let cfg = moto_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let (home, green) = (testkit::unique("usage-s"), testkit::unique("usage-s-green"));
    e2e::streamed_table(&ddb, &home, "pk", "sk").await;
    e2e::streamed_table(&ddb, &green, "pk", "sk").await;
    migrate_under_load(
        cfg,
        "analytics",
        "name = \"analytics\"\nkind = \"analytics\"\nholds = \"usage events in the data lake, keyed by tenant\"\nbackend = \"embedded\"",
        &format!("name = \"analytics\"\nkind = \"analytics\"\nholds = \"usage events\"\nbackend = \"dynamodb\"\ntable = \"{home}\"\npartition_key = \"pk\"\nsort_key = \"sk\"\npartition_value = \"TENANT#{{tenant_id}}\"\nchange_feed = \"streams\"\nlocations = {{ green = \"{green}\" }}"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_system_migrates_under_load_and_erasure_reaches_both_buckets() {
    let cfg = moto_config().await;
    let s3 = moto_s3(&cfg);
    let (home, green) = (
        testkit::unique("docs").replace('_', "-"),
        testkit::unique("docs-green").replace('_', "-"),
    );
    versioned_bucket(&s3, &home).await;
    versioned_bucket(&s3, &green).await;
    migrate_under_load(
        cfg,
        "s3",
        "name = \"s3\"\nkind = \"objects\"\nholds = \"uploaded documents and exports, every object version\"\nbackend = \"embedded\"",
        &format!("name = \"s3\"\nkind = \"objects\"\nholds = \"documents\"\nbackend = \"s3\"\nbucket = \"{home}\"\nprefix = \"tenants/{{tenant_id}}/\"\nlocations = {{ green = \"{green}\" }}"),
    )
    .await;
}

/// Replaces `system`'s embedded entry of the local catalog by `entry`, then runs a whole
/// blue-green migration of it under a router workload and checks the outcome and erasure.
async fn migrate_under_load(cfg: aws_config::SdkConfig, system: &str, embedded: &str, entry: &str) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let text = tenantctl::LOCAL_CATALOG.replacen(embedded, entry, 1);
    assert!(
        text.contains(entry),
        "the local catalog's {system} entry moved"
    );
    let dir = tempfile::tempdir().expect("dir");
    let deps = stores::wiring::Deps::connect(
        lifecycle::Catalog::from_toml(&text).expect("catalog"),
        stores::wiring::ConnectOptions {
            world: Some(dir.path().join("w.db")),
            aws: Some(cfg),
            read_only: false,
        },
    )
    .await
    .expect("deps");
    let deps = Arc::new(deps);
    let tenant = "tenant_002_globex";
    e2e::migration::seed_json(&deps, tenant, &[system], 60).await;
    let r = tenantctl::migrate::router(&deps, tenant)
        .await
        .expect("router");
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, handles) =
        tenantctl::migrate::workload(r.clone(), vec![system.into()], 2, stop.clone());
    let exec = e2e::migration::run_migration(
        Arc::new(tenantctl::registry::LocalFunctions::new(deps.clone())),
        e2e::migration::blue_green(
            tenant,
            &[system],
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
    if exec.error.is_some() {
        let reason = deps
            .migrations()
            .expect("migrations")
            .get(&lifecycle::TenantId::parse(tenant).expect("tenant"))
            .await
            .expect("get")
            .and_then(|m| m.reason);
        panic!(
            "{:?}: {:?}; rolled back because {reason:?}",
            exec.error, exec.cause
        );
    }
    assert!(tally.ok.load(Ordering::SeqCst) > 0);
    e2e::migration::assert_migrated_then_erased(&deps, tenant, system, &tally, 60).await;
}

/// The local catalog with its `s3` and `analytics` entries on moto: `docs` and `usage`
/// at home, `docs_green` and `usage_green` at location green.
fn aws_catalog(docs: &str, docs_green: &str, usage: &str, usage_green: &str) -> lifecycle::Catalog {
    let text = tenantctl::LOCAL_CATALOG
        .replacen(
            "name = \"s3\"\nkind = \"objects\"\nholds = \"uploaded documents and exports, every object version\"\nbackend = \"embedded\"",
            &format!("name = \"s3\"\nkind = \"objects\"\nholds = \"documents\"\nbackend = \"s3\"\nbucket = \"{docs}\"\nprefix = \"tenants/{{tenant_id}}/\"\nlocations = {{ green = \"{docs_green}\" }}"),
            1,
        )
        .replacen(
            "name = \"analytics\"\nkind = \"analytics\"\nholds = \"usage events in the data lake, keyed by tenant\"\nbackend = \"embedded\"",
            &format!("name = \"analytics\"\nkind = \"analytics\"\nholds = \"usage events\"\nbackend = \"dynamodb\"\ntable = \"{usage}\"\npartition_key = \"pk\"\nsort_key = \"sk\"\npartition_value = \"TENANT#{{tenant_id}}\"\nlocations = {{ green = \"{usage_green}\" }}"),
            1,
        );
    assert!(
        text.contains(docs_green) && text.contains(usage_green),
        "the local catalog's entries moved"
    );
    lifecycle::Catalog::from_toml(&text).expect("catalog")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_creates_the_targets_in_the_sources_shape_once_and_refuses_another_shape() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        PointInTimeRecoverySpecification, Projection, ProjectionType, ScalarAttributeType,
        StreamSpecification, StreamViewType,
    };
    let cfg = moto_config().await;
    let (s3, ddb) = (moto_s3(&cfg), aws_sdk_dynamodb::Client::new(&cfg));
    let u = testkit::unique("prov").replace('_', "-");
    let (docs, docs_green) = (format!("{u}-docs"), format!("{u}-docs-green"));
    let (usage, usage_green) = (format!("{u}-usage"), format!("{u}-usage-green"));
    // The source bucket: versioned, KMS default encryption.
    versioned_bucket(&s3, &docs).await;
    let sse = aws_sdk_s3::types::ServerSideEncryptionConfiguration::builder()
        .rules(
            aws_sdk_s3::types::ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    aws_sdk_s3::types::ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                        .kms_master_key_id("alias/tenant-docs")
                        .build()
                        .expect("sse"),
                )
                .build(),
        )
        .build()
        .expect("conf");
    s3.put_bucket_encryption()
        .bucket(&docs)
        .server_side_encryption_configuration(sse)
        .send()
        .await
        .expect("encryption");
    // The source table: pk/sk, a global index, on demand, a stream, PITR.
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attr")
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .expect("key")
    };
    // The source table's shape: pk/sk, a global index, on demand, a stream.
    let usage_like = |name: &str| {
        ddb.create_table()
            .table_name(name)
            .attribute_definitions(attr("pk"))
            .attribute_definitions(attr("sk"))
            .attribute_definitions(attr("user"))
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("by_user")
                    .key_schema(key("user", KeyType::Hash))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .build()
                    .expect("gsi"),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .expect("stream"),
            )
    };
    usage_like(&usage).send().await.expect("source table");
    ddb.update_continuous_backups()
        .table_name(&usage)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .expect("pitr"),
        )
        .send()
        .await
        .expect("pitr");

    let dir = tempfile::tempdir().expect("dir");
    let connect = |catalog: lifecycle::Catalog, world: &str| {
        let (cfg, path) = (cfg.clone(), dir.path().join(world));
        async move {
            Arc::new(
                stores::wiring::Deps::connect(
                    catalog,
                    stores::wiring::ConnectOptions {
                        world: Some(path),
                        aws: Some(cfg),
                        read_only: false,
                    },
                )
                .await
                .expect("deps"),
            )
        }
    };
    let deps = connect(
        aws_catalog(&docs, &docs_green, &usage, &usage_green),
        "w.db",
    )
    .await;
    let input = e2e::migration::blue_green(
        "tenant_002_globex",
        &["s3", "analytics"],
        serde_json::json!({}),
    );
    let budget = || tenant_runtime::Budget::of(std::time::Duration::from_secs(60));
    let first = tenantctl::registry::call("provision", input.clone(), &deps, budget())
        .await
        .expect("provision");
    assert_eq!(first["provisioned"], 2, "{first}");
    let migration = first["migration_id"].as_str().expect("id").to_owned();
    // The bucket: versioned, the source's encryption, tagged with who made it.
    let v = s3
        .get_bucket_versioning()
        .bucket(&docs_green)
        .send()
        .await
        .expect("versioning");
    assert_eq!(
        v.status(),
        Some(&aws_sdk_s3::types::BucketVersioningStatus::Enabled)
    );
    let e = s3
        .get_bucket_encryption()
        .bucket(&docs_green)
        .send()
        .await
        .expect("encryption");
    let d = e
        .server_side_encryption_configuration()
        .and_then(|c| c.rules().first())
        .and_then(|r| r.apply_server_side_encryption_by_default())
        .expect("default encryption");
    assert_eq!(
        d.sse_algorithm(),
        &aws_sdk_s3::types::ServerSideEncryption::AwsKms
    );
    assert_eq!(d.kms_master_key_id(), Some("alias/tenant-docs"));
    let tags = s3
        .get_bucket_tagging()
        .bucket(&docs_green)
        .send()
        .await
        .expect("tags");
    let tag = |k: &str| {
        tags.tag_set()
            .iter()
            .find(|t| t.key() == k)
            .map(|t| t.value().to_owned())
    };
    assert_eq!(
        tag("tenant-lifecycle:tenant").as_deref(),
        Some("tenant_002_globex")
    );
    assert_eq!(tag("tenant-lifecycle:migration"), Some(migration.clone()));
    // The table: the same keys, index, billing, stream and PITR, tagged.
    let t = ddb
        .describe_table()
        .table_name(&usage_green)
        .send()
        .await
        .expect("describe");
    let t = t.table().expect("table");
    assert_eq!(t.key_schema().len(), 2);
    assert_eq!(
        t.global_secondary_indexes()
            .first()
            .and_then(|g| g.index_name()),
        Some("by_user")
    );
    assert_eq!(
        t.stream_specification().and_then(|s| s.stream_view_type()),
        Some(&StreamViewType::NewAndOldImages)
    );
    assert_eq!(
        t.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    let p = ddb
        .describe_continuous_backups()
        .table_name(&usage_green)
        .send()
        .await
        .expect("pitr");
    assert_eq!(
        p.continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status()),
        Some(&aws_sdk_dynamodb::types::PointInTimeRecoveryStatus::Enabled)
    );
    let arn = t.table_arn().expect("arn").to_owned();
    let ttags = ddb
        .list_tags_of_resource()
        .resource_arn(&arn)
        .send()
        .await
        .expect("tags");
    assert!(
        ttags
            .tags()
            .iter()
            .any(|t| t.key() == "tenant-lifecycle:migration" && t.value() == migration),
        "{ttags:?}"
    );
    // A second call changes nothing.
    let again = tenantctl::registry::call("provision", input.clone(), &deps, budget())
        .await
        .expect("again");
    assert_eq!(again["provisioned"], 0, "{again}");
    assert_eq!(again["resumed"], true);

    // A call that died half-way left a bucket and a table tagged with this migration but
    // not configured (no versioning, no encryption; no PITR): the next call finishes them.
    let (half_docs, half_usage) = (format!("{u}-half-docs"), format!("{u}-half-usage"));
    let mine = aws_sdk_s3::types::Tagging::builder()
        .tag_set(
            aws_sdk_s3::types::Tag::builder()
                .key("tenant-lifecycle:tenant")
                .value("tenant_002_globex")
                .build()
                .expect("tag"),
        )
        .tag_set(
            aws_sdk_s3::types::Tag::builder()
                .key("tenant-lifecycle:migration")
                .value("mig-tenant_002_globex-green-1")
                .build()
                .expect("tag"),
        )
        .build()
        .expect("tagging");
    s3.create_bucket()
        .bucket(&half_docs)
        .send()
        .await
        .expect("half bucket");
    s3.put_bucket_tagging()
        .bucket(&half_docs)
        .tagging(mine)
        .send()
        .await
        .expect("tags");
    usage_like(&half_usage)
        .tags(
            aws_sdk_dynamodb::types::Tag::builder()
                .key("tenant-lifecycle:tenant")
                .value("tenant_002_globex")
                .build()
                .expect("tag"),
        )
        .tags(
            aws_sdk_dynamodb::types::Tag::builder()
                .key("tenant-lifecycle:migration")
                .value("mig-tenant_002_globex-green-1")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("half table");
    let deps = connect(aws_catalog(&docs, &half_docs, &usage, &half_usage), "w4.db").await;
    let healed = tenantctl::registry::call("provision", input.clone(), &deps, budget())
        .await
        .expect("finished");
    assert_eq!(
        healed["migration_id"], "mig-tenant_002_globex-green-1",
        "{healed}"
    );
    assert_eq!(healed["provisioned"], 2, "{healed}");
    let v = s3
        .get_bucket_versioning()
        .bucket(&half_docs)
        .send()
        .await
        .expect("versioning");
    assert_eq!(
        v.status(),
        Some(&aws_sdk_s3::types::BucketVersioningStatus::Enabled)
    );
    assert!(
        s3.get_bucket_encryption()
            .bucket(&half_docs)
            .send()
            .await
            .is_ok()
    );
    let p = ddb
        .describe_continuous_backups()
        .table_name(&half_usage)
        .send()
        .await
        .expect("pitr");
    assert_eq!(
        p.continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status()),
        Some(&aws_sdk_dynamodb::types::PointInTimeRecoveryStatus::Enabled)
    );

    // Targets of another shape are refused, saying what differs, and left as they were.
    let (odd_docs, odd_usage) = (format!("{u}-odd-docs"), format!("{u}-odd-usage"));
    s3.create_bucket()
        .bucket(&odd_docs)
        .send()
        .await
        .expect("unversioned bucket");
    let refused = |deps: Arc<stores::wiring::Deps>| {
        let input = input.clone();
        async move {
            tenantctl::registry::call("provision", input, &deps, budget())
                .await
                .expect_err("refused")
        }
    };
    let deps = connect(aws_catalog(&docs, &odd_docs, &usage, &usage_green), "w2.db").await;
    let err = refused(deps).await;
    assert!(
        err.cause
            .contains(&format!("bucket {odd_docs} exists with another shape"))
            && err
                .cause
                .contains("versioning off where the source's is enabled"),
        "{}: {}",
        err.error,
        err.cause
    );
    let v = s3
        .get_bucket_versioning()
        .bucket(&odd_docs)
        .send()
        .await
        .expect("versioning");
    assert_eq!(v.status(), None, "the odd bucket is left as it was");
    table(&ddb, &odd_usage, "id", "sk").await;
    let deps = connect(aws_catalog(&docs, &docs_green, &usage, &odd_usage), "w3.db").await;
    let err = refused(deps).await;
    assert!(
        err.cause
            .contains(&format!("table {odd_usage} exists with another shape"))
            && err
                .cause
                .contains("keys id:S:HASH,sk:S:RANGE where the source's is pk:S:HASH,sk:S:RANGE"),
        "{}: {}",
        err.error,
        err.cause
    );
}
