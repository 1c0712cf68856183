//! `tenantctl bench distributed-erase`: one tenant's S3 prefix erased on moto by the
//! Distributed Map machine (statemachines/gdpr-erasure-s3-distributed.asl.json in the
//! simulator: listObjectsV2, batches of 1,000 keys, `workers` child executions of
//! delete-objects at once), the same machine with one worker (the same calls in series, so
//! the ratio of the two is what parallelism gives), and the single loop of the inline
//! erasure (delete-system's S3 store: list a page of versions, delete it, next page, one
//! call at a time), on equal tenants in buckets of their own.

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

/// Runs the shipped Distributed Map machine over `bucket` with `workers` children at once
/// and returns how long it took, once nothing is left under the prefix.
async fn dmap(
    cfg: &aws_config::SdkConfig,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    tenant: &TenantId,
    workers: usize,
) -> Result<Duration> {
    let prefix = format!("tenants/{tenant}/");
    let dir = std::env::temp_dir().join(format!(
        "tenantctl-bench-dmap-{}-{workers}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    let catalog = lifecycle::Catalog::from_toml(&format!(
        "environment = \"moto\"\nledger = {{ backend = \"embedded\" }}\nlegal_holds = {{ backend = \"embedded\" }}\nsigner = {{ backend = \"local\" }}\n[[systems]]\nname = \"s3\"\nkind = \"objects\"\nbackend = \"s3\"\nbucket = \"{bucket}\"\nprefix = \"tenants/{{tenant_id}}/\"\n"
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
        .with_objects(Arc::new(S3Objects::new(cfg)));
    let t = Instant::now();
    let exec = sim
        .run(
            &machine,
            "bench",
            json!({"bucket": bucket, "prefix": prefix, "tenant_id": tenant.as_str(),
                   "workers": workers, "batch_size": 1000, "results_bucket": bucket,
                   "results_prefix": "erasure-runs/bench"}),
        )
        .await;
    let took = t.elapsed();
    if exec.status != Status::Succeeded {
        bail!(
            "the Distributed Map erasure ({workers} workers) failed: {:?}: {:?}",
            exec.error,
            exec.cause
        );
    }
    let left = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&prefix)
        .send()
        .await?
        .key_count()
        .unwrap_or(0);
    if left != 0 {
        bail!("the Distributed Map erasure ({workers} workers) left {left} objects behind");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(took)
}

/// Erases equal tenants three ways (the Distributed Map with `workers` children, the same
/// machine with one, and the inline erasure's single loop) and prints the times and their
/// ratios; `cap` stops the single loop early (its row then says what it erased and the
/// ratios are lower bounds). With `reset`, each tenant is seeded just before its erasure and moto is emptied
/// between them, so only one tenant's objects are ever held (everything else on that moto
/// is lost).
pub async fn run(
    endpoint: &str,
    objects: usize,
    workers: usize,
    reset: bool,
    cap: Option<Duration>,
) -> Result<()> {
    let cfg = moto_config(endpoint).await;
    let s3 = moto_s3(&cfg);
    let pid = std::process::id();
    let buckets = [
        format!("bench-dmap-{pid}"),
        format!("bench-dmap1-{pid}"),
        format!("bench-loop-{pid}"),
    ];
    let tenant = TenantId::parse("bench_dmap")?;
    let prefix = format!("tenants/{tenant}/");
    let prepare = |i: usize| {
        let (s3, b, prefix) = (s3.clone(), buckets[i].clone(), prefix.clone());
        async move {
            if reset && i > 0 {
                reset_moto(endpoint)?;
            }
            bucket(&s3, &b).await?;
            seed(&s3, &b, &prefix, objects).await
        }
    };
    if !reset {
        for i in 0..buckets.len() {
            prepare(i).await?;
        }
    }
    println!("each tenant: {objects} objects under {prefix} (unversioned buckets)");

    // The Distributed Map, in the simulator, on the real delete-objects handler.
    if reset {
        prepare(0).await?;
    }
    let dist = dmap(&cfg, &s3, &buckets[0], &tenant, workers).await?;
    if reset {
        prepare(1).await?;
    }
    let one = dmap(&cfg, &s3, &buckets[1], &tenant, 1).await?;
    if reset {
        prepare(2).await?;
    }

    // The single loop: the inline erasure's S3 store, one call at a time.
    let store = S3TenantStore::new(
        s3.clone(),
        "s3",
        SystemKind::Objects,
        &buckets[2],
        "tenants/{tenant_id}/",
        1,
    );
    let t = Instant::now();
    let p = store
        .erase(
            &tenant,
            Instant::now() + cap.unwrap_or(Duration::from_secs(3 * 3600)),
        )
        .await?;
    let single = t.elapsed();
    if !p.complete && cap.is_none() {
        bail!("the single loop left objects behind");
    }
    let left = store.count(&tenant).await?;
    if p.complete && left != 0 {
        bail!("the single loop left {left} objects behind");
    }
    let capped = !p.complete;
    let rate = |d: Duration| objects as f64 / d.as_secs_f64().max(1e-9);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    // Capped, the loop had not finished: its time is a floor, and so is every ratio to it.
    let at_least = if capped { "≥ " } else { "" };
    println!("erase {objects} objects of one tenant on {endpoint} (moto):");
    println!("| path | time | objects/s | single loop / this |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| Distributed Map, {workers} workers (batches of 1,000, simulator) | {:.2} s | {:.0} | {at_least}{:.2}x |",
        dist.as_secs_f64(),
        rate(dist),
        ratio(single, dist)
    );
    println!(
        "| Distributed Map, 1 worker (the same calls, one at a time) | {:.2} s | {:.0} | {at_least}{:.2}x |",
        one.as_secs_f64(),
        rate(one),
        ratio(single, one)
    );
    if capped {
        let remaining = objects.saturating_sub(left as usize);
        println!(
            "| single loop (delete-system's S3 store: ListObjectVersions + DeleteObjects), stopped at the cap | > {:.2} s ({} of {objects} erased, {left} left) | {:.0} | 1.00x |",
            single.as_secs_f64(),
            remaining,
            remaining as f64 / single.as_secs_f64().max(1e-9)
        );
    } else {
        println!(
            "| single loop (delete-system's S3 store: ListObjectVersions + DeleteObjects) | {:.2} s | {:.0} | 1.00x |",
            single.as_secs_f64(),
            rate(single)
        );
    }
    println!(
        "{workers} workers against 1: {:.2}x (what parallel workers give on one moto process)",
        ratio(one, dist)
    );
    Ok(())
}
