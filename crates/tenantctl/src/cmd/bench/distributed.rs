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

/// A moto server of the bench's own, started with one tenant's objects already in it and
/// stopped (with all it holds) when dropped.
///
/// moto keeps every object in one Python process and does not give memory back after
/// `/moto-api/reset` (200,000 objects and their deletions grew it past 23 GB), so each row
/// gets a fresh process; seeding inside that process (scripts/moto_server.py `--seed`)
/// takes seconds where 200,000 PutObject calls take 40 minutes.
struct FreshMoto {
    child: std::process::Child,
    url: String,
}

impl FreshMoto {
    async fn start(bucket: &str, prefix: &str, objects: usize) -> Result<Self> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log =
            std::fs::File::create(std::env::temp_dir().join(format!("moto-bench-{port}.log")))?;
        let child = std::process::Command::new(root.join(".venv/bin/python"))
            .arg(root.join("scripts/moto_server.py"))
            .arg(port.to_string())
            .arg("--seed")
            .arg(format!("{bucket},{prefix},{objects}"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting moto (run scripts/bootstrap first)")?;
        let moto = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let b = bar(1, &format!("starting moto with {objects} objects"));
        let deadline = Instant::now() + Duration::from_secs(600);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("moto did not start with {objects} objects in 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        b.finish_and_clear();
        Ok(moto)
    }
}

impl Drop for FreshMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// Where each row's tenant lives: one shared moto (each tenant seeded through the API
/// into a bucket of its own first), or a fresh pre-seeded moto per row.
pub enum Moto {
    /// An already running moto at this URL.
    Shared(String),
    /// A moto process of the bench's own per row.
    Fresh,
}

/// Erases equal tenants three ways (the Distributed Map with `workers` children, the same
/// machine with one, and the inline erasure's single loop) and prints the times and their
/// ratios; `cap` stops the single loop early (its row then says what it erased and the
/// ratios are lower bounds).
pub async fn run(moto: Moto, objects: usize, workers: usize, cap: Option<Duration>) -> Result<()> {
    let pid = std::process::id();
    let buckets = [
        format!("bench-dmap-{pid}"),
        format!("bench-dmap1-{pid}"),
        format!("bench-loop-{pid}"),
    ];
    let tenant = TenantId::parse("bench_dmap")?;
    let prefix = format!("tenants/{tenant}/");
    if let Moto::Shared(endpoint) = &moto {
        let s3 = moto_s3(&moto_config(endpoint).await);
        for b in &buckets {
            bucket(&s3, b).await?;
            seed(&s3, b, &prefix, objects).await?;
        }
    }
    // Each row runs on its moto (kept alive by `_fresh` for the row's duration).
    let at = |i: usize| {
        let (b, prefix) = (buckets[i].clone(), prefix.clone());
        let moto = &moto;
        async move {
            let (fresh, url) = match moto {
                Moto::Shared(url) => (None, url.clone()),
                Moto::Fresh => {
                    let m = FreshMoto::start(&b, &prefix, objects).await?;
                    let url = m.url.clone();
                    (Some(m), url)
                }
            };
            let cfg = moto_config(&url).await;
            anyhow::Ok((fresh, url, cfg))
        }
    };
    let where_ = match &moto {
        Moto::Shared(url) => url.clone(),
        Moto::Fresh => "a fresh moto per row, seeded in its own process".into(),
    };
    println!("each tenant: {objects} objects under {prefix} (unversioned buckets), on {where_}");

    // The Distributed Map, in the simulator, on the real delete-objects handler.
    let (_fresh, _, cfg) = at(0).await?;
    let dist = dmap(&cfg, &moto_s3(&cfg), &buckets[0], &tenant, workers).await?;
    drop(_fresh);
    // Each row is printed as it ends, so a later row's failure does not lose it.
    println!(
        "Distributed Map, {workers} workers: {:.2} s",
        dist.as_secs_f64()
    );
    let (_fresh, _, cfg) = at(1).await?;
    let one = dmap(&cfg, &moto_s3(&cfg), &buckets[1], &tenant, 1).await?;
    drop(_fresh);
    println!("Distributed Map, 1 worker: {:.2} s", one.as_secs_f64());

    // The single loop: the inline erasure's S3 store, one call at a time.
    let (_fresh, _, cfg) = at(2).await?;
    let s3 = moto_s3(&cfg);
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
    drop(_fresh);
    println!("erase {objects} objects of one tenant on {where_} (moto):");
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
