//! The Distributed Map S3 erasure (statemachines/gdpr-erasure-s3-distributed.asl.json) in
//! the simulator against moto: ItemReader lists the tenant's prefix, batches go to
//! delete-objects as child executions, ResultWriter writes the map run's results to S3,
//! the sweep takes the versions listObjectsV2 cannot see. It leaves the same state, and
//! deletes the same number of versions, as the inline-Map erasure of gdpr-erasure.

use e2e::{moto_config, moto_s3, request, versioned_bucket};
use lifecycle::TenantId;
use serde_json::{Value, json};
use sim::{Machine, Simulator, Status};
use std::sync::Arc;
use stores::Deps;
use stores::wiring::ConnectOptions;
use tenantctl::objects::S3Objects;
use tenantctl::registry::LocalFunctions;

async fn world(dir: &std::path::Path) -> (aws_config::SdkConfig, Arc<Deps>, String) {
    let cfg = moto_config().await;
    let s3 = moto_s3(&cfg);
    let bucket = steps::testkit::unique("dmap").replace('_', "-");
    versioned_bucket(&s3, &bucket).await;
    let catalog = format!(
        r#"
environment = "moto"
ledger = {{ backend = "embedded" }}
legal_holds = {{ backend = "embedded" }}
signer = {{ backend = "local" }}
[[systems]]
name = "s3"
kind = "objects"
backend = "s3"
bucket = "{bucket}"
prefix = "tenants/{{tenant_id}}/"
"#
    );
    let deps = Deps::connect(
        lifecycle::Catalog::from_toml(&catalog).expect("catalog"),
        ConnectOptions {
            world: Some(dir.join("world.db")),
            aws: Some(cfg.clone()),
            read_only: false,
        },
    )
    .await
    .expect("connect");
    (cfg, Arc::new(deps), bucket)
}

/// Objects with versions and delete markers, as the moto erasure test seeds them.
async fn seed(deps: &Deps, tenant: &str, objects: usize) {
    let t = TenantId::parse(tenant).expect("tenant");
    let s3 = deps.store("s3").expect("s3");
    for i in 0..objects {
        let key = format!("uploads/doc-{i:04}.pdf");
        s3.put(&t, &key, b"v1").await.expect("put");
        if i % 3 == 0 {
            s3.put(&t, &key, b"v2").await.expect("put v2");
        }
        if i % 10 == 0 {
            s3.delete(&t, &key).await.expect("delete marker");
        }
    }
}

async fn count(deps: &Deps, tenant: &str) -> u64 {
    deps.store("s3")
        .expect("s3")
        .count(&TenantId::parse(tenant).expect("tenant"))
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn distributed_map_erasure_matches_the_inline_erasure_on_moto() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, deps, bucket) = world(dir.path()).await;
    // Two tenants seeded alike (one for each path), a neighbour sharing the prefix, another.
    for t in ["dist_gone", "inline_gone"] {
        seed(&deps, t, 250).await;
    }
    seed(&deps, "dist_gonex", 7).await;
    seed(&deps, "globex", 9).await;
    let before = count(&deps, "dist_gone").await;
    assert_eq!(before, count(&deps, "inline_gone").await);
    assert_eq!(before, 250 + 84 + 25, "versions and delete markers");
    let keep = (
        count(&deps, "dist_gonex").await,
        count(&deps, "globex").await,
    );

    let def: Value = serde_json::from_str(include_str!(
        "../statemachines/gdpr-erasure-s3-distributed.asl.json"
    ))
    .expect("json");
    let machine = Machine::load(&def).expect("loads");
    let sim = Simulator::new(Arc::new(LocalFunctions::new(deps.clone())))
        .with_objects(Arc::new(S3Objects::new(&cfg)));
    let exec = sim
        .run(
            &machine,
            "dist-1",
            json!({"bucket": bucket, "prefix": "tenants/dist_gone/", "tenant_id": "dist_gone",
                   "workers": 8, "batch_size": 100, "results_bucket": bucket, "results_prefix": "erasure-runs/dist_gone"}),
        )
        .await;
    assert_eq!(
        exec.status,
        Status::Succeeded,
        "{:?}: {:?}",
        exec.error,
        exec.cause
    );
    let out = exec.output.expect("output");
    let details = &out["map_run"]["ResultWriterDetails"];
    assert_eq!(details["Bucket"], bucket.as_str());
    let key = details["Key"].as_str().expect("manifest key");
    assert!(key.starts_with("erasure-runs/dist_gone/") && key.ends_with("/manifest.json"));

    // What the map run wrote: 225 listed keys in three batches, every one succeeded.
    let s3 = moto_s3(&cfg);
    let get = |k: String| {
        let s3 = s3.clone();
        let b = bucket.clone();
        async move {
            let o = s3.get_object().bucket(b).key(k).send().await.expect("get");
            let body = o.body.collect().await.expect("body").into_bytes();
            serde_json::from_slice::<Value>(&body).expect("json")
        }
    };
    let manifest = get(key.to_owned()).await;
    assert_eq!(manifest["ResultFiles"]["FAILED"], json!([]));
    let file = manifest["ResultFiles"]["SUCCEEDED"][0]["Key"]
        .as_str()
        .expect("file")
        .to_owned();
    let results = get(file).await;
    let results = results.as_array().expect("array");
    let listed: u64 = 250 - 25; // keys whose current version is a delete marker are not listed
    assert_eq!(results.len(), listed.div_ceil(100) as usize);
    let mut batch_deleted = 0;
    let mut keys = 0;
    for r in results {
        let o: Value = serde_json::from_str(r["Output"].as_str().expect("output")).expect("json");
        batch_deleted += o["deleted"].as_u64().expect("deleted");
        keys += o["keys"].as_u64().expect("keys");
    }
    assert_eq!(keys, listed);
    let swept = out["sweep"]["deleted"].as_u64().expect("swept");
    assert_eq!(out["sweep"]["remaining"], 0);

    // The inline path on the twin tenant.
    let inline = e2e::run(&deps, request("req-inline-1", "inline_gone", &["s3"])).await;
    assert_eq!(
        inline.status,
        Status::Succeeded,
        "{:?}: {:?}",
        inline.error,
        inline.cause
    );
    let erased = inline.output.as_ref().expect("certificate")["certificate"]["certificate"]
        ["details"]["records_erased_total"]
        .as_u64()
        .expect("records_erased_total");

    assert_eq!(count(&deps, "dist_gone").await, 0);
    assert_eq!(count(&deps, "inline_gone").await, 0);
    assert_eq!(
        (
            count(&deps, "dist_gonex").await,
            count(&deps, "globex").await
        ),
        keep,
        "neighbours untouched"
    );
    assert_eq!(
        batch_deleted + swept,
        before,
        "every version and marker, once"
    );
    assert_eq!(erased, before, "the same count as the inline erasure");
}
