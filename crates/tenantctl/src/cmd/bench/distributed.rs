//! `tenantctl bench distributed-erase`: one tenant's S3 prefix erased on moto by the
//! Distributed Map machine (statemachines/gdpr-erasure-s3-distributed.asl.json in the
//! simulator: listObjectsV2, batches of 1,000 keys, `workers` child executions of
//! delete-objects at once) against the single loop of the inline erasure (delete-system's
//! S3 store: list a page, delete it, next page, one call at a time), on equal tenants in
//! buckets of their own.

use crate::fixtures::{bar, moto_config, moto_s3};
use crate::objects::S3Objects;
use crate::registry::LocalFunctions;
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use lifecycle::{SystemKind, TenantId};
use ports::TenantStore;
use serde_json::json;
use sim::{Machine, Simulator, Status};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stores::Deps;
use stores::s3::S3TenantStore;
use stores::wiring::ConnectOptions;

/// The Distributed Map S3 erasure, as shipped.
const ASL: &str = include_str!("../../../../../statemachines/gdpr-erasure-s3-distributed.asl.json");

async fn seed(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str, n: usize) -> Result<()> {
    let b = bar(n as u64, "seeding S3");
    let results: Vec<Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let (s3, b) = (s3.clone(), b.clone());
            async move {
                s3.put_object()
                    .bucket(bucket)
                    .key(format!("{prefix}doc-{i:07}"))
                    .body(b"x".to_vec().into())
                    .send()
                    .await
                    .context("PutObject")?;
                b.inc(1);
                Ok(())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    b.finish_and_clear();
    results.into_iter().collect()
}

async fn bucket(s3: &aws_sdk_s3::Client, name: &str) -> Result<()> {
    s3.create_bucket()
        .bucket(name)
        .send()
        .await
        .with_context(|| format!("CreateBucket {name}"))?;
    Ok(())
}

/// Empties moto (`POST /moto-api/reset`): it keeps every object of every bucket in one
/// process, about 57 KB each, so 400,000 objects and their deletions outgrow 24 GiB.
fn reset_moto(endpoint: &str) -> Result<()> {
    let out = std::process::Command::new("curl")
        .args(["-sf", "-X", "POST", &format!("{endpoint}/moto-api/reset")])
        .output()
        .context("curl (to reset moto)")?;
    if !out.status.success() {
        bail!("moto did not reset at {endpoint}");
    }
    Ok(())
}

/// Erases equal tenants both ways and prints both times and their ratio. With `reset`,
/// each tenant is seeded just before its erasure and moto is emptied between the two,
/// so only one tenant's objects are ever held (everything else on that moto is lost).
pub async fn run(endpoint: &str, objects: usize, workers: usize, reset: bool) -> Result<()> {
    let cfg = moto_config(endpoint).await;
    let s3 = moto_s3(&cfg);
    let pid = std::process::id();
    let (dist_bucket, loop_bucket) = (format!("bench-dmap-{pid}"), format!("bench-loop-{pid}"));
    let tenant = TenantId::parse("bench_dmap")?;
    let prefix = format!("tenants/{tenant}/");
    bucket(&s3, &dist_bucket).await?;
    seed(&s3, &dist_bucket, &prefix, objects).await?;
    if !reset {
        bucket(&s3, &loop_bucket).await?;
        seed(&s3, &loop_bucket, &prefix, objects).await?;
    }
    println!("each tenant: {objects} objects under {prefix} (unversioned buckets)");

    // The Distributed Map, in the simulator, on the real delete-objects handler.
    let dir = std::env::temp_dir().join(format!("tenantctl-bench-dmap-{pid}"));
    std::fs::create_dir_all(&dir)?;
    let catalog = lifecycle::Catalog::from_toml(&format!(
        "environment = \"moto\"\nledger = {{ backend = \"embedded\" }}\nlegal_holds = {{ backend = \"embedded\" }}\nsigner = {{ backend = \"local\" }}\n[[systems]]\nname = \"s3\"\nkind = \"objects\"\nbackend = \"s3\"\nbucket = \"{dist_bucket}\"\nprefix = \"tenants/{{tenant_id}}/\"\n"
    ))?;
    let deps = Arc::new(
        Deps::connect(
            catalog,
            ConnectOptions {
                world: Some(dir.join("world.db")),
                aws: Some(cfg.clone()),
                read_only: false,
            },
        )
        .await?,
    );
    let def: serde_json::Value = serde_json::from_str(ASL)?;
    let machine = Machine::load(&def)?;
    let sim = Simulator::new(Arc::new(LocalFunctions::new(deps)))
        .with_objects(Arc::new(S3Objects::new(&cfg)));
    let t = Instant::now();
    let exec = sim
        .run(
            &machine,
            "bench",
            json!({"bucket": dist_bucket, "prefix": prefix, "tenant_id": tenant.as_str(),
                   "workers": workers, "batch_size": 1000, "results_bucket": dist_bucket,
                   "results_prefix": "erasure-runs/bench"}),
        )
        .await;
    let dist = t.elapsed();
    if exec.status != Status::Succeeded {
        bail!(
            "the Distributed Map erasure failed: {:?}: {:?}",
            exec.error,
            exec.cause
        );
    }

    let left = s3
        .list_objects_v2()
        .bucket(&dist_bucket)
        .prefix(&prefix)
        .send()
        .await?
        .key_count()
        .unwrap_or(0);
    if left != 0 {
        bail!("the Distributed Map erasure left {left} objects behind");
    }
    if reset {
        reset_moto(endpoint)?;
        bucket(&s3, &loop_bucket).await?;
        seed(&s3, &loop_bucket, &prefix, objects).await?;
    }

    // The single loop: the inline erasure's S3 store, one call at a time.
    let store = S3TenantStore::new(
        s3.clone(),
        "s3",
        SystemKind::Objects,
        &loop_bucket,
        "tenants/{tenant_id}/",
        1,
    );
    let t = Instant::now();
    let p = store
        .erase(&tenant, Instant::now() + Duration::from_secs(3600))
        .await?;
    let single = t.elapsed();
    if !p.complete || store.count(&tenant).await? != 0 {
        bail!("the single loop left objects behind");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let rate = |d: Duration| objects as f64 / d.as_secs_f64().max(1e-9);
    println!("erase {objects} objects of one tenant on {endpoint} (moto):");
    println!("| path | time | objects/s |");
    println!("| --- | ---: | ---: |");
    println!(
        "| Distributed Map, {workers} workers (batches of 1,000, simulator) | {:.2} s | {:.0} |",
        dist.as_secs_f64(),
        rate(dist)
    );
    println!(
        "| single loop (delete-system's S3 store, 1 call at a time) | {:.2} s | {:.0} |",
        single.as_secs_f64(),
        rate(single)
    );
    println!(
        "| ratio (single / distributed) | {:.2}x | |",
        single.as_secs_f64() / dist.as_secs_f64().max(1e-9)
    );
    Ok(())
}
