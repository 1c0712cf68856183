//! The S3 Vectors product against moto's server (MOTO_URL): the conformance suite, an
//! erasure request through the state machine checked with the aws CLI (the tenant's
//! index gone from home and from its migration location, other tenants kept), throttling
//! mid-erasure retried through the throttling proxy, and malformed catalog entries
//! refused by `stores::wiring::validate`.

use lifecycle::{Catalog, SystemKind, TenantId};
use ports::TenantStore;
use ports::migrate::{ChangeFeed, Dataset, Rec};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use steps::testkit;
use stores::pgvector::VectorBody;
use stores::s3vectors::{Config, S3VectorsDataset, S3VectorsTenantStore};

const DIM: u32 = 8;

fn client(cfg: &aws_config::SdkConfig) -> aws_sdk_s3vectors::Client {
    aws_sdk_s3vectors::Client::new(cfg)
}

/// A fresh vector bucket on moto (names allow a-z, 0-9 and '-').
async fn bucket(prefix: &str) -> String {
    let name = testkit::unique(prefix).replace('_', "-");
    client(&e2e::moto_config().await)
        .create_vector_bucket()
        .vector_bucket_name(&name)
        .send()
        .await
        .expect("create vector bucket");
    name
}

fn entry(bucket: &str, extra: &str) -> String {
    format!(
        "vector_bucket = \"{bucket}\"\nindex = \"emb-{{tenant_id}}\"\ndimension = {DIM}\ndistance = \"cosine\"\n{extra}"
    )
}

fn config(toml: &str) -> Config {
    let text = format!(
        "environment = \"t\"\nledger = {{ backend = \"embedded\" }}\nlegal_holds = {{ backend = \"embedded\" }}\nsigner = {{ backend = \"local\" }}\n[[systems]]\nname = \"pinecone\"\nkind = \"vectors\"\nbackend = \"s3vectors\"\n{toml}"
    );
    Config::parse(&Catalog::from_toml(&text).expect("catalog").systems[0]).expect("config")
}

async fn store(toml: &str) -> S3VectorsTenantStore {
    S3VectorsTenantStore::new(
        client(&e2e::moto_config().await),
        "pinecone",
        SystemKind::Vectors,
        &config(toml),
    )
}

fn body(seed: u32) -> Vec<u8> {
    VectorBody {
        values: (0..DIM)
            .map(|i| (seed * DIM + i + 1) as f32 / 7.0)
            .collect(),
        metadata: Some(serde_json::json!({"doc": format!("d{seed}"), "chunk": seed % 5})),
    }
    .encode()
    .expect("encode")
}

/// `aws s3vectors list-vectors` against moto: the product's own client. `None` when the
/// index does not exist.
fn aws_vectors(bucket: &str, index: &str) -> Option<usize> {
    let out = Command::new(".venv/bin/aws")
        .current_dir(env!("CARGO_MANIFEST_DIR").trim_end_matches("/tests"))
        .args(["s3vectors", "list-vectors", "--vector-bucket-name", bucket])
        .args(["--index-name", index, "--output", "json"])
        .args(["--endpoint-url", &e2e::moto_url(), "--region", "us-east-1"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("the aws CLI of scripts/bootstrap");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("NotFoundException"), "aws s3vectors: {err}");
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    Some(v["vectors"].as_array().map_or(0, Vec::len))
}

#[tokio::test]
async fn s3vectors_store_passes_the_suite() {
    let b = bucket("suite").await;
    testkit::tenant_store_suite(&store(&entry(&b, "")).await.with_batch_size(10)).await;
}

#[tokio::test]
async fn s3vectors_dataset_passes_the_suite() {
    let b = bucket("dataset").await;
    let ds = S3VectorsDataset::new(store(&entry(&b, "")).await.with_batch_size(10), "green");
    testkit::dataset_suite(&ds, &ds).await;
}

#[tokio::test]
async fn a_copy_moves_vectors_bit_for_bit_and_refuses_indexes_of_another_shape() {
    let (home, green) = (bucket("copyhome").await, bucket("copygreen").await);
    let t = TenantId::parse("copy_t").expect("t");
    let src = S3VectorsDataset::new(store(&entry(&home, "")).await, "home");
    let dst = S3VectorsDataset::new(store(&entry(&green, "")).await, "green");
    for i in 0..30 {
        src.write(&t, &format!("chunk/{i:03}"), Some(&body(i)))
            .await
            .expect("write");
    }
    src.write(&t, "chunk/005", None).await.expect("delete");
    let mut after: Option<String> = None;
    let mut copied = 0;
    loop {
        let page = src.scan(&t, after.as_deref(), 12).await.expect("scan");
        copied += dst
            .apply_many_exclusive(&t, &page)
            .await
            .expect("copy page");
        match page.last() {
            Some(r) if page.len() == 12 => after = Some(r.key.clone()),
            _ => break,
        }
    }
    assert_eq!(copied, 30);
    for i in [0, 7, 29] {
        let r = Dataset::read(&dst, &t, &format!("chunk/{i:03}"))
            .await
            .expect("read");
        assert_eq!(r.and_then(|r| r.body), Some(body(i)), "bit for bit");
    }
    let gone = Dataset::read(&dst, &t, "chunk/005")
        .await
        .expect("read")
        .expect("tombstone");
    assert_eq!((gone.rev, gone.body), (2, None));
    assert_eq!(src.head(&t).await.expect("head"), 31);
    // Erasure takes the feed index (31 entries and its counter) with the records.
    let erase = store(&entry(&home, "")).await;
    assert_eq!(erase.count(&t).await.expect("count"), 30 + 31 + 1);
    let pass = erase
        .erase(&t, Instant::now() + Duration::from_secs(30))
        .await
        .expect("erase");
    assert_eq!((pass.erased, pass.complete), (62, true));
    assert_eq!(aws_vectors(&home, "emb-copy.5ft.feed"), None, "feed gone");
    assert_eq!(aws_vectors(&home, "emb-copy.5ft"), None, "index gone");
    let rec = Rec {
        key: "k".into(),
        rev: 1,
        body: Some(body(1)),
    };
    for (dim, distance) in [(4, "cosine"), (DIM, "euclidean")] {
        let other = bucket("shape").await;
        let wrong = S3VectorsDataset::new(
            store(&format!(
                "vector_bucket = \"{other}\"\nindex = \"emb-{{tenant_id}}\"\ndimension = {dim}\ndistance = \"{distance}\""
            ))
            .await,
            "green",
        );
        wrong.provision(&t).await.expect("provision other shape");
        let target = S3VectorsDataset::new(store(&entry(&other, "")).await, "green");
        let e = target
            .apply_many_exclusive(&t, std::slice::from_ref(&rec))
            .await
            .expect_err("another shape is refused");
        assert!(e.to_string().contains("same shape"), "{e}");
        assert!(target.provision(&t).await.is_err(), "provision refuses too");
    }
}

#[tokio::test]
async fn vectors_read_back_bit_for_bit_and_other_dimensions_are_refused() {
    let b = bucket("bits").await;
    let s = store(&entry(&b, "")).await;
    let t = TenantId::parse("Bits_t1").expect("t");
    s.put(&t, "chunk/1", &body(1)).await.expect("put vector");
    assert_eq!(s.get(&t, "chunk/1").await.expect("get"), Some(body(1)));
    s.put(&t, "doc", b"\x00raw bytes\xff")
        .await
        .expect("put doc");
    assert_eq!(
        s.get(&t, "doc").await.expect("get"),
        Some(b"\x00raw bytes\xff".to_vec())
    );
    let wrong = VectorBody {
        values: vec![1.0; 3],
        metadata: None,
    }
    .encode()
    .expect("encode");
    let e = s.put(&t, "w", &wrong).await.expect_err("3 of 8 dimensions");
    assert!(e.to_string().contains("3 dimensions"), "{e}");
    assert_eq!(aws_vectors(&b, "emb-.42its.5ft1"), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_request_leaves_no_vector_of_the_tenant_anywhere() {
    let (home, green) = (bucket("home").await, bucket("green").await);
    let dir = tempfile::tempdir().expect("dir");
    let text = tenantctl::LOCAL_CATALOG.replacen(
        "[[systems]]\nname = \"pinecone\"\nkind = \"vectors\"\nholds = \"embeddings, one namespace per tenant\"\nbackend = \"embedded\"",
        &format!(
            "[[systems]]\nname = \"pinecone\"\nkind = \"vectors\"\nholds = \"embeddings\"\nbackend = \"s3vectors\"\n{}",
            entry(&home, &format!("batch_size = 25\nlocations = {{ green = \"{green}\" }}"))
        ),
        1,
    );
    assert!(
        text.contains("backend = \"s3vectors\""),
        "the local catalog's pinecone entry moved"
    );
    let catalog = Catalog::from_toml(&text).expect("catalog");
    stores::wiring::validate(&catalog).expect("valid");
    let deps = stores::Deps::connect(
        catalog,
        stores::ConnectOptions {
            world: Some(dir.path().join("w.db")),
            aws: Some(e2e::moto_config().await),
            ..Default::default()
        },
    )
    .await
    .expect("deps");
    let deps = Arc::new(deps);
    let gone = "tenant_004_departed_customer";
    let kept = "tenant_005_test_account";
    let at_home = store(&entry(&home, "")).await;
    let at_green = store(&entry(&green, "")).await;
    for t in [gone, kept] {
        let t = TenantId::parse(t).expect("t");
        for i in 0..60 {
            at_home
                .put(&t, &format!("chunk/{i:03}"), &body(i))
                .await
                .expect("home");
        }
        for i in 0..15 {
            at_green
                .put(&t, &format!("chunk/{i:03}"), &body(i))
                .await
                .expect("green");
        }
    }
    let (gone_index, kept_index) = (
        "emb-tenant.5f004.5fdeparted.5fcustomer",
        "emb-tenant.5f005.5ftest.5faccount",
    );
    assert_eq!(aws_vectors(&home, gone_index), Some(60));
    let exec = e2e::run(&deps, e2e::request("gdpr_s3v_1", gone, &["pinecone"])).await;
    assert!(
        exec.error.is_none(),
        "{:?}: {:?}",
        exec.error,
        e2e::task_cause(&exec)
    );
    assert_eq!(aws_vectors(&home, gone_index), None, "home index deleted");
    assert_eq!(aws_vectors(&green, gone_index), None, "green index deleted");
    assert_eq!(aws_vectors(&home, kept_index), Some(60), "others kept");
    assert_eq!(aws_vectors(&green, kept_index), Some(15), "others kept");
    let bodies = e2e::erasure_bodies(&deps).await;
    assert_eq!(bodies[0]["outcome"], "erased", "{bodies:?}");
    let sys = &bodies[0]["details"]["systems"][0];
    assert_eq!(
        (sys["system"].as_str(), sys["records_erased"].as_u64()),
        (Some("pinecone"), Some(75)),
        "{sys}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_mid_erasure_is_retried() {
    let proxy = e2e::proxy::throttling_proxy(&e2e::moto_url(), 3).await;
    let cfg = tenantctl::fixtures::moto_config(&proxy.url).await;
    let b = bucket("throttled").await;
    let s = S3VectorsTenantStore::new(
        client(&cfg),
        "pinecone",
        SystemKind::Vectors,
        &config(&entry(&b, "")),
    )
    .with_batch_size(4);
    let t = TenantId::parse("throttled_t").expect("t");
    for i in 0..30 {
        s.put(&t, &format!("k{i:02}"), &body(i))
            .await
            .expect("put through throttling");
    }
    let pass = s
        .erase(&t, Instant::now() + Duration::from_secs(60))
        .await
        .expect("throttled calls are retried");
    assert_eq!((pass.erased, pass.complete), (30, true));
    assert_eq!(s.count(&t).await.expect("count"), 0);
    assert!(
        proxy.throttled.load(std::sync::atomic::Ordering::SeqCst) > 5,
        "the proxy throttled"
    );
    assert_eq!(aws_vectors(&b, "emb-throttled.5ft"), None);
}

#[test]
fn malformed_catalog_entries_are_refused() {
    for (settings, says) in [
        (
            "vector_bucket = \"rag\"\nindex = \"emb\"\ndimension = 8\ndistance = \"cosine\"",
            "{tenant_id}",
        ),
        (
            "vector_bucket = \"rag\"\nindex = \"emb-{tenant_id}\"\ndimension = 8\ndistance = \"dot\"",
            "unknown variant `dot`",
        ),
        (
            "vector_bucket = \"rag\"\nindex = \"emb-{tenant_id}\"\ndimension = 9000\ndistance = \"cosine\"",
            "between 1 and 4096",
        ),
        (
            "vector_bucket = \"rag\"\nindex = \"emb-{tenant_id}\"\ndimension = 8\ndistance = \"cosine\"\nlocations = { green = \"rag\" }",
            "its own vector bucket",
        ),
        (
            "vector_bucket = \"rag\"\nindex = \"emb-{tenant_id}\"\ndimension = 8\ndistance = \"cosine\"\nbucket = \"x\"",
            "unknown field `bucket`",
        ),
    ] {
        let text = tenantctl::LOCAL_CATALOG.replacen(
            "[[systems]]\nname = \"pinecone\"\nkind = \"vectors\"\nholds = \"embeddings, one namespace per tenant\"\nbackend = \"embedded\"",
            &format!("[[systems]]\nname = \"pinecone\"\nkind = \"vectors\"\nbackend = \"s3vectors\"\n{settings}"),
            1,
        );
        let e = stores::wiring::validate(&Catalog::from_toml(&text).expect("catalog"))
            .expect_err(settings);
        assert_eq!(e.error_type(), "ConfigurationError", "{settings}");
        assert!(e.to_string().contains(says), "{settings}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_of_an_s3vectors_system_under_load_loses_nothing() {
    let (home, green) = (bucket("mhome").await, bucket("mgreen").await);
    let dir = tempfile::tempdir().expect("dir");
    let text = tenantctl::LOCAL_CATALOG.replacen(
        "[[systems]]\nname = \"pinecone\"\nkind = \"vectors\"\nholds = \"embeddings, one namespace per tenant\"\nbackend = \"embedded\"",
        &format!(
            "[[systems]]\nname = \"pinecone\"\nkind = \"vectors\"\nholds = \"embeddings\"\nbackend = \"s3vectors\"\n{}",
            entry(&home, &format!("locations = {{ green = \"{green}\" }}"))
        ),
        1,
    );
    let deps = Arc::new(
        stores::Deps::connect(
            Catalog::from_toml(&text).expect("catalog"),
            stores::ConnectOptions {
                world: Some(dir.path().join("w.db")),
                aws: Some(e2e::moto_config().await),
                ..Default::default()
            },
        )
        .await
        .expect("deps"),
    );
    let tenant = "tenant_001_acme_corp";
    let t = TenantId::parse(tenant).expect("t");
    // Vectors written the way an application writes them, before the migration.
    let at_home = store(&entry(&home, "")).await;
    for i in 0..120 {
        at_home
            .put(&t, &format!("chunk/{i:04}"), &body(i))
            .await
            .expect("seed");
    }
    e2e::migration::seed_json(&deps, tenant, &["postgresql"], 100).await;
    let (tally, r) =
        e2e::migration::blue_green_under_load(&deps, tenant, &["pinecone", "postgresql"]).await;
    e2e::migration::assert_migrated_then_erased(&deps, tenant, "pinecone", &tally, 120).await;
    assert_eq!(
        aws_vectors(&green, "emb-tenant.5f001.5facme.5fcorp"),
        None,
        "erased from the migrated location too"
    );
    r.shutdown().await.expect("shutdown");
}
