//! `tenantctl bench s3vectors`: one tenant's N vectors put and erased on moto by the
//! S3 Vectors product (the bulk copy's batched PutVectors, then erasure's DeleteVectors
//! batches and DeleteIndex), against the aws CLI making the same calls with the same
//! batch sizes for an equal tenant.

use crate::fixtures::{bar, moto_config};
use anyhow::{Result, bail};
use lifecycle::{Catalog, SystemKind, TenantId};
use ports::TenantStore;
use ports::migrate::{Dataset, Rec};
use std::process::Command;
use std::time::{Duration, Instant};
use stores::pgvector::VectorBody;
use stores::s3vectors::{Config, S3VectorsDataset, S3VectorsTenantStore};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// moto's URL.
    pub endpoint: String,
    /// Vectors of the tenant.
    pub vectors: usize,
    /// Their dimension.
    pub dimension: u32,
    /// Vectors per PutVectors and keys per DeleteVectors, for both tools.
    pub batch: usize,
    /// The aws CLI to compare with.
    pub aws_cli: String,
}

fn values(i: usize, dim: u32) -> Vec<f32> {
    (0..dim)
        .map(|j| ((i * 31 + j as usize) % 997) as f32 / 997.0 + 0.001)
        .collect()
}

/// Runs the benchmark and prints its table.
pub async fn run(p: Plan) -> Result<()> {
    let cfg = moto_config(&p.endpoint).await;
    let client = aws_sdk_s3vectors::Client::new(&cfg);
    let bucket = format!("bench-s3v-{}", std::process::id());
    client
        .create_vector_bucket()
        .vector_bucket_name(&bucket)
        .send()
        .await?;
    let text = format!(
        "environment = \"bench\"\nledger = {{ backend = \"embedded\" }}\nlegal_holds = {{ backend = \"embedded\" }}\nsigner = {{ backend = \"local\" }}\n[[systems]]\nname = \"vectors\"\nkind = \"vectors\"\nbackend = \"s3vectors\"\nvector_bucket = \"{bucket}\"\nindex = \"emb-{{tenant_id}}\"\ndimension = {}\ndistance = \"cosine\"\nbatch_size = {}",
        p.dimension, p.batch
    );
    let config = Config::parse(&Catalog::from_toml(&text)?.systems[0])?;
    let store = S3VectorsTenantStore::new(client.clone(), "vectors", SystemKind::Vectors, &config);
    let ds = S3VectorsDataset::new(store.clone(), "home");

    // Ours: the bulk copy's path (revisions read, then batched PutVectors), then erasure.
    let t = TenantId::parse("benchours")?;
    let recs = (0..p.vectors)
        .map(|i| {
            Ok(Rec {
                key: format!("chunk/{i:07}"),
                rev: 1,
                body: Some(
                    VectorBody {
                        values: values(i, p.dimension),
                        metadata: Some(serde_json::json!({"doc": format!("d{}", i / 10)})),
                    }
                    .encode()?,
                ),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let start = Instant::now();
    let b = bar(p.vectors as u64, "PutVectors (tenantctl)");
    for page in recs.chunks(p.batch.max(1) * 4) {
        ds.apply_many_exclusive(&t, page).await?;
        b.inc(page.len() as u64);
    }
    b.finish_and_clear();
    let our_put = start.elapsed();
    if store.count(&t).await? != p.vectors as u64 {
        bail!("our puts did not land");
    }
    let start = Instant::now();
    let pass = store
        .erase(&t, Instant::now() + Duration::from_secs(3600))
        .await?;
    let our_erase = start.elapsed();
    if !pass.complete || store.count(&t).await? != 0 {
        bail!("our erasure left vectors behind");
    }

    // The aws CLI: the same calls, the same batch sizes, for an equal tenant.
    let index = "emb-benchcli";
    let dir = std::env::temp_dir().join(format!("bench-s3vectors-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cli = |args: &[&str]| -> Result<Vec<u8>> {
        let out = Command::new(&p.aws_cli)
            .args(["--endpoint-url", &p.endpoint, "--region", "us-east-1"])
            .args(["--output", "json", "s3vectors"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()?;
        if !out.status.success() {
            bail!(
                "aws s3vectors {}: {}",
                args.first().copied().unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out.stdout)
    };
    let dim = p.dimension.to_string();
    let start = Instant::now();
    cli(&[
        "create-index",
        "--vector-bucket-name",
        &bucket,
        "--index-name",
        index,
        "--data-type",
        "float32",
        "--dimension",
        &dim,
        "--distance-metric",
        "cosine",
    ])?;
    let b = bar(p.vectors as u64, "aws s3vectors put-vectors");
    for (n, chunk) in (0..p.vectors)
        .collect::<Vec<_>>()
        .chunks(p.batch.max(1))
        .enumerate()
    {
        let vectors: Vec<serde_json::Value> = chunk
            .iter()
            .map(|i| {
                serde_json::json!({
                    "key": format!("chunk/{i:07}"),
                    "data": {"float32": values(*i, p.dimension)},
                    "metadata": {"doc": format!("d{}", i / 10)},
                })
            })
            .collect();
        let file = dir.join(format!("put-{n}.json"));
        std::fs::write(&file, serde_json::to_vec(&vectors)?)?;
        cli(&[
            "put-vectors",
            "--vector-bucket-name",
            &bucket,
            "--index-name",
            index,
            "--vectors",
            &format!("file://{}", file.display()),
        ])?;
        b.inc(chunk.len() as u64);
    }
    b.finish_and_clear();
    let cli_put = start.elapsed();
    std::fs::remove_dir_all(&dir)?;
    let start = Instant::now();
    let listed: serde_json::Value = serde_json::from_slice(&cli(&[
        "list-vectors",
        "--vector-bucket-name",
        &bucket,
        "--index-name",
        index,
    ])?)?;
    let keys: Vec<String> = listed["vectors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v["key"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if keys.len() != p.vectors {
        bail!(
            "the aws CLI listed {} vectors, not {}",
            keys.len(),
            p.vectors
        );
    }
    for chunk in keys.chunks(p.batch.max(1)) {
        let mut args = vec![
            "delete-vectors",
            "--vector-bucket-name",
            &bucket,
            "--index-name",
            index,
            "--keys",
        ];
        args.extend(chunk.iter().map(String::as_str));
        cli(&args)?;
    }
    cli(&[
        "delete-index",
        "--vector-bucket-name",
        &bucket,
        "--index-name",
        index,
    ])?;
    let cli_erase = start.elapsed();
    client
        .delete_vector_bucket()
        .vector_bucket_name(&bucket)
        .send()
        .await?;

    let n = p.vectors as f64;
    let rate = |d: Duration| n / d.as_secs_f64().max(1e-9);
    let ratio = |cli: Duration, ours: Duration| cli.as_secs_f64() / ours.as_secs_f64().max(1e-9);
    println!(
        "put and erase one tenant's {} vectors of {} dimensions, {} a call (S3 Vectors on moto)",
        p.vectors, p.dimension, p.batch
    );
    println!(
        "{:<58} {:>9} {:>10} {:>8}",
        "tool", "seconds", "vectors/s", "speed"
    );
    for (tool, d, peer) in [
        (
            "tenantctl put (GetVectors revisions, then PutVectors)",
            our_put,
            cli_put,
        ),
        ("aws s3vectors create-index + put-vectors", cli_put, cli_put),
        (
            "tenantctl erase (ListVectors, DeleteVectors, DeleteIndex)",
            our_erase,
            cli_erase,
        ),
        (
            "aws s3vectors list-vectors + delete-vectors + delete-index",
            cli_erase,
            cli_erase,
        ),
    ] {
        println!(
            "{tool:<58} {:>9.2} {:>10.0} {:>7.2}x",
            d.as_secs_f64(),
            rate(d),
            ratio(peer, d)
        );
    }
    Ok(())
}
