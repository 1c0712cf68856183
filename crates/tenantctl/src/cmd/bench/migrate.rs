//! `tenantctl bench migrate`: the migration's own figures, each next to a baseline
//! measured in the same run. Bulk copy against the database copying the rows itself
//! (`INSERT ... SELECT`); the write pause at the flip and the rollback time under a live
//! workload; dual-write against a single write through the same router.

use crate::fixtures::{
    self, bulk, catalog_with, fresh_dir, moto_config, seed_dataset, step, with_field,
};
use crate::migrate::{router, workload};
use anyhow::{Context, Result, bail};
use lifecycle::migration::HOME;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use stores::Deps;

/// Takes a bulk-copied migration to `percent` percent of reads on the target.
async fn to_percent(deps: &Deps, m: &Value, percent: u64) -> Result<Value> {
    step(deps, "cutover", with_field(m, "to", json!("DUAL_WRITE"))).await?;
    while step(deps, "sync", with_field(m, "mode", json!("catch-up"))).await?["done"] != true {}
    step(deps, "verify", with_field(m, "mode", json!("FULL"))).await?;
    let mut out = Value::Null;
    while out["percent"].as_u64().unwrap_or(0) < percent {
        out = step(deps, "cutover", with_field(m, "to", json!("next"))).await?;
    }
    Ok(out)
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// Runs the migration benchmarks on a fresh embedded world (and PostgreSQL / DynamoDB when
/// a URL / endpoint is given).
pub async fn run(
    data_dir: &Path,
    records: usize,
    trials: usize,
    pg_url: Option<&str>,
    dynamodb: Option<(&str, usize)>,
) -> Result<()> {
    if records == 0 || trials == 0 {
        bail!("--records and --trials must be at least 1");
    }
    let dir = fresh_dir(data_dir, "bench-migrate")?;
    let deps = Arc::new(crate::world::connect(&dir, None).await?);
    let world = deps
        .world()
        .context("the local catalog uses the embedded world")?
        .clone();
    println!(
        "tenantctl bench migrate: {records} records per copy, {trials} flips and rollbacks under load\n"
    );

    // 1. Bulk copy rate, embedded world, against SQLite copying the same rows itself.
    seed_dataset(&deps, "bench_copy", "postgresql", records).await?;
    let (_, ours) = bulk(&deps, "bench_copy", &["postgresql"]).await?;
    let t0 = Instant::now();
    world.execute_raw(
        "INSERT INTO records (system, tenant, key, version, body, rev)
         SELECT 'postgresql@baseline', tenant, key, version, body, rev FROM records
         WHERE system = 'postgresql' AND tenant = 'bench_copy'",
        &[],
    )?;
    let base = t0.elapsed();
    let rate = |d: Duration| records as f64 / d.as_secs_f64();
    println!("bulk copy, embedded world ({records} records)");
    println!(
        "  {:<44} {:>10.0} records/s  ({:.2} s)",
        "sync (pages, checkpoints, conditional apply)",
        rate(ours),
        ours.as_secs_f64()
    );
    println!(
        "  {:<44} {:>10.0} records/s  ({:.2} s)",
        "baseline: INSERT ... SELECT in SQLite",
        rate(base),
        base.as_secs_f64()
    );
    println!(
        "  sync reaches {:.0} % of the raw copy rate\n",
        100.0 * base.as_secs_f64() / ours.as_secs_f64()
    );

    if let Some(url) = pg_url {
        let schema = format!("bench_{}", std::process::id());
        let text = pg_catalog(url, &schema);
        let cat = lifecycle::Catalog::from_toml(&text)?;
        let pdeps = Arc::new(
            stores::wiring::Deps::connect(
                cat,
                stores::wiring::ConnectOptions {
                    world: Some(dir.join("pg-world.db")),
                    aws: None,
                    read_only: false,
                },
            )
            .await?,
        );
        seed_dataset(&pdeps, "bench_copy", "postgresql", records).await?;
        let (_, ours) = bulk(&pdeps, "bench_copy", &["postgresql"]).await?;
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "CREATE TABLE \"{schema}\".baseline (LIKE \"{schema}\".records INCLUDING ALL)"
            ))
            .await?;
        let t0 = Instant::now();
        client.batch_execute(&format!("INSERT INTO \"{schema}\".baseline SELECT * FROM \"{schema}\".records WHERE tenant = 'bench_copy'")).await?;
        let base = t0.elapsed();
        println!("bulk copy, PostgreSQL ({records} rows, pages in turn over a pool of 8)");
        println!(
            "  {:<44} {:>10.0} rows/s  ({:.2} s)",
            "sync (pages, checkpoints, conditional apply)",
            rate(ours),
            ours.as_secs_f64()
        );
        println!(
            "  {:<44} {:>10.0} rows/s  ({:.2} s)",
            "baseline: INSERT ... SELECT in PostgreSQL",
            rate(base),
            base.as_secs_f64()
        );
        println!(
            "  sync reaches {:.0} % of the server-side copy rate\n",
            100.0 * base.as_secs_f64() / ours.as_secs_f64()
        );
        client.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE; DROP SCHEMA IF EXISTS \"{schema}__green\" CASCADE")).await?;
    }

    if let Some((endpoint, items)) = dynamodb {
        dynamodb_copy(&dir, endpoint, items).await?;
    }

    // 2 and 3. The flip to 100 % and the rollback, each under a 4-task workload.
    let mut pauses = Vec::new();
    let mut fences = Vec::new();
    let mut rollbacks = Vec::new();
    let mut observed = Vec::new();
    let mut runs: Vec<Vec<u64>> = Vec::new();
    let mut ops = 0;
    for i in 0..trials {
        let tenant = format!("bench_flip_{i}");
        seed_dataset(&deps, &tenant, "redis", 200).await?;
        let (m, _) = bulk(&deps, &tenant, &["redis"]).await?;
        let r = router(&deps, &tenant).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tally, handles) = workload(r.clone(), vec!["redis".into()], 4, stop.clone());
        let out = to_percent(&deps, &m, 50).await?;
        tokio::time::sleep(Duration::from_millis(30)).await;
        let before = r.stats().pauses_us.len();
        let flip = step(&deps, "cutover", with_field(&m, "to", json!("next"))).await?;
        tokio::time::sleep(Duration::from_millis(30)).await;
        let run: Vec<u64> = r.stats().pauses_us.into_iter().skip(before).collect();
        pauses.extend(&run);
        runs.push(run);
        fences.push(flip["fenced_us"].as_u64().unwrap_or(0));
        let _ = out;
        // Roll back from 100 %: fence, copy back, route to the source.
        let t0 = Instant::now();
        let rb = step(&deps, "rollback", m.clone()).await?;
        let epoch = rb["epoch"].as_u64().unwrap_or(0);
        let seen = loop {
            if let Some((_, at)) = r.stats().epochs.iter().find(|(e, _)| *e >= epoch) {
                break at.saturating_duration_since(t0);
            }
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("the router never saw the rollback epoch");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        rollbacks.push(rb["all_on_source_ms"].as_u64().unwrap_or(0) * 1000);
        observed.push(seen.as_micros() as u64);
        stop.store(true, Ordering::SeqCst);
        for h in handles {
            h.await?;
        }
        r.shutdown().await?;
        ops += tally.ok.load(Ordering::SeqCst);
        let failed = tally.failed.load(Ordering::SeqCst);
        let lost = crate::migrate::lost_writes(
            &deps,
            &tenant,
            HOME,
            &tally,
            lifecycle::migration::Transform::None,
        )
        .await?;
        if failed + lost > 0 {
            bail!("trial {i}: {failed} failed operations, {lost} lost writes");
        }
    }
    let n = pauses.len();
    println!(
        "write pause at the flip to 100 %, {trials} flips under a 4-task workload ({ops} operations, 0 failed, 0 lost)"
    );
    println!("| run | fenced writes | pause p50 | p99 | max | fence held |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut under = 0;
    for (i, (run, fence)) in runs.iter_mut().zip(&fences).enumerate() {
        let p99 = pct(run, 0.99);
        under += usize::from(p99 < 5_000);
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            i + 1,
            run.len(),
            ms(pct(run, 0.5)),
            ms(p99),
            ms(pct(run, 1.0)),
            ms(*fence)
        );
    }
    println!(
        "  fenced writes: {n}; pause p50 {}  p99 {}  max {}",
        ms(pct(&mut pauses, 0.5)),
        ms(pct(&mut pauses, 0.99)),
        ms(pct(&mut pauses, 1.0))
    );
    println!(
        "  fence held (fence to flip) p50 {}  max {}",
        ms(pct(&mut fences, 0.5)),
        ms(pct(&mut fences, 1.0))
    );
    println!(
        "  target: p99 under 5 ms in every run ({under} of {trials}); over all runs p99 is {:.1}x inside the seed design's 100 ms\n",
        100_000.0 / pct(&mut pauses, 0.99).max(1) as f64
    );
    println!(
        "rollback from 100 % to all traffic on the source (fence, reverse copy, route), {trials} trials"
    );
    println!(
        "  router saw the source-only epoch after p50 {}  max {}",
        ms(pct(&mut observed, 0.5)),
        ms(pct(&mut observed, 1.0))
    );
    println!(
        "  every live router acknowledged after p50 {}  max {}",
        ms(pct(&mut rollbacks, 0.5)),
        ms(pct(&mut rollbacks, 1.0))
    );
    println!("  target: under 1 s\n");

    // 4. Dual-write overhead: the same router, the same keys, before and during dual-write.
    let tenant = "bench_dual";
    seed_dataset(&deps, tenant, "redis", 100).await?;
    let r = router(&deps, tenant).await?;
    let writes = 5_000usize;
    let time_writes = |r: tenant_router::Router| async move {
        let t0 = Instant::now();
        for i in 0..writes {
            r.put("redis", &format!("k/{}", i % 1000), b"{\"v\":1}")
                .await?;
        }
        Ok::<_, anyhow::Error>(t0.elapsed())
    };
    let single = time_writes(r.clone()).await?;
    let (m, _) = bulk(&deps, tenant, &["redis"]).await?;
    step(&deps, "cutover", with_field(&m, "to", json!("DUAL_WRITE"))).await?;
    r.refresh().await?;
    let dual = time_writes(r.clone()).await?;
    r.shutdown().await?;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / writes as f64;
    println!("dual-write overhead, embedded world, {writes} writes each");
    println!(
        "  {:<36} {:>8.1} us/write",
        "single write (source only)",
        per(single)
    );
    println!(
        "  {:<36} {:>8.1} us/write",
        "dual-write (source, then target)",
        per(dual)
    );
    println!("  overhead {:.2}x a single write", per(dual) / per(single));
    Ok(())
}

/// Bulk copy of a DynamoDB system on an API endpoint (moto), against writing the same items
/// with plain BatchWriteItem (25 per call, 8 calls in flight): no revision check, the
/// fastest way to put them there.
async fn dynamodb_copy(dir: &Path, endpoint: &str, items: usize) -> Result<()> {
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    let cfg = moto_config(endpoint).await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let stamp = std::process::id();
    let tables = [
        format!("bench-home-{stamp}"),
        format!("bench-green-{stamp}"),
        format!("bench-base-{stamp}"),
    ];
    for t in &tables {
        fixtures::table(&ddb, t, "pk", "sk").await?;
    }
    let out = catalog_with(
        "analytics",
        &format!(
            "backend = \"dynamodb\"\ntable = \"{}\"\npartition_key = \"pk\"\nsort_key = \"sk\"\nlocations = {{ green = \"{}\" }}\n",
            tables[0], tables[1]
        ),
    );
    let deps = Arc::new(
        stores::wiring::Deps::connect(
            lifecycle::Catalog::from_toml(&out)?,
            stores::wiring::ConnectOptions {
                world: Some(dir.join("ddb-world.db")),
                aws: Some(cfg),
                read_only: false,
            },
        )
        .await?,
    );
    seed_dataset(&deps, "bench_copy", "analytics", items).await?;
    let (_, ours) = bulk(&deps, "bench_copy", &["analytics"]).await?;
    let reqs: Vec<WriteRequest> = (0..items)
        .map(|i| {
            let put = PutRequest::builder()
                .item("pk", AttributeValue::S("bench_copy".into()))
                .item("sk", AttributeValue::S(format!("doc/{i:07}")))
                .item("rev", AttributeValue::N("0".into()))
                .item("body", AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
                    json!({"title": format!("document {i}"), "pages": i % 40, "owner": "user-7"}).to_string().into_bytes(),
                )))
                .build()?;
            Ok(WriteRequest::builder().put_request(put).build())
        })
        .collect::<Result<_>>()?;
    let t0 = Instant::now();
    for wave in reqs.chunks(25 * 8) {
        let mut set = tokio::task::JoinSet::new();
        for chunk in wave.chunks(25) {
            let (ddb, table, chunk) = (ddb.clone(), tables[2].clone(), chunk.to_vec());
            set.spawn(async move {
                let mut pending = chunk;
                while !pending.is_empty() {
                    let out = ddb
                        .batch_write_item()
                        .request_items(&table, pending.clone())
                        .send()
                        .await?;
                    pending = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(&table))
                        .unwrap_or_default();
                }
                Ok::<_, anyhow::Error>(())
            });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }
    }
    let base = t0.elapsed();
    let rate = |d: Duration| items as f64 / d.as_secs_f64();
    println!("bulk copy, DynamoDB on {endpoint} ({items} items)");
    println!(
        "  {:<44} {:>10.0} items/s  ({:.2} s)",
        "sync (BatchGetItem revisions, BatchWriteItem)",
        rate(ours),
        ours.as_secs_f64()
    );
    println!(
        "  {:<44} {:>10.0} items/s  ({:.2} s)",
        "baseline: BatchWriteItem x25, 8 in flight",
        rate(base),
        base.as_secs_f64()
    );
    println!(
        "  sync reaches {:.0} % of the unconditional batch rate\n",
        100.0 * base.as_secs_f64() / ours.as_secs_f64()
    );
    Ok(())
}

/// The local catalog with its `postgresql` system on PostgreSQL at `url`, schema `schema`.
fn pg_catalog(url: &str, schema: &str) -> String {
    catalog_with(
        "postgresql",
        &format!("backend = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\"\n"),
    )
}
