//! `tenantctl bench erase`: one tenant erased from S3 (versioned) and DynamoDB on moto by
//! tenantctl's stores, against the aws CLI removing an equal tenant from the same server.

use crate::fixtures::{self, bar, moto_config, moto_s3, seed_ddb, seed_s3, versioned_bucket};
use anyhow::{Result, bail};
use lifecycle::{SystemKind, TenantId};
use ports::TenantStore;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use stores::dynamodb::DynamoTenantStore;
use stores::s3::S3TenantStore;

/// Erases a tenant with tenantctl's stores and an equal one with the aws CLI; prints both.
pub async fn run(
    endpoint: &str,
    objects: usize,
    items: usize,
    aws_cli: &str,
    concurrency: usize,
) -> Result<()> {
    if !Path::new(aws_cli).exists() && Command::new(aws_cli).arg("--version").output().is_err() {
        bail!("the aws CLI ({aws_cli}) is missing: run scripts/bootstrap");
    }
    let cfg = moto_config(endpoint).await;
    let s3 = moto_s3(&cfg);
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    // One bucket per tool: moto's ListObjectVersions costs time in proportion to the whole
    // bucket, so a shared bucket would slow whichever tool runs second.
    let bucket = format!("bench-ours-{}", std::process::id());
    let cli_bucket = format!("bench-cli-{}", std::process::id());
    let table = format!("bench-usage-{}", std::process::id());
    for b in [&bucket, &cli_bucket] {
        versioned_bucket(&s3, b).await?;
    }
    fixtures::table(&ddb, &table, "pk", "sk").await?;
    let s3_store = S3TenantStore::new(
        s3.clone(),
        "s3",
        SystemKind::Objects,
        &bucket,
        "tenants/{tenant_id}/",
        concurrency,
    );
    let ddb_store = DynamoTenantStore::new(
        ddb.clone(),
        "analytics",
        SystemKind::Analytics,
        &table,
        "pk",
        "sk",
        "TENANT#{tenant_id}",
        concurrency,
    );
    let cli_store = S3TenantStore::new(
        s3.clone(),
        "s3",
        SystemKind::Objects,
        &cli_bucket,
        "tenants/{tenant_id}/",
        concurrency,
    );
    let ours = TenantId::parse("bench_ours")?;
    let theirs = TenantId::parse("bench_cli")?;
    seed_s3(&s3_store, &ours, objects).await?;
    seed_s3(&cli_store, &theirs, objects).await?;
    for t in [&ours, &theirs] {
        seed_ddb(&ddb, &table, t, items).await?;
    }
    let versions = objects + 2 * objects.div_ceil(3);
    println!(
        "each tenant: {objects} objects = {versions} versions in S3, {items} items in DynamoDB"
    );

    let far = Instant::now() + Duration::from_secs(3600);
    let t = Instant::now();
    let p = s3_store.erase(&ours, far).await?;
    let our_s3 = t.elapsed();
    let t = Instant::now();
    let q = ddb_store.erase(&ours, far).await?;
    let our_ddb = t.elapsed();
    if !(p.complete && q.complete)
        || s3_store.count(&ours).await? != 0
        || ddb_store.count(&ours).await? != 0
    {
        bail!("our erasure left data behind");
    }

    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ];
    let cli = |args: &[&str]| -> Result<Vec<u8>> {
        let out = Command::new(aws_cli)
            .args(["--endpoint-url", endpoint])
            .args(args)
            .envs(env)
            .output()?;
        if !out.status.success() {
            bail!(
                "aws {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out.stdout)
    };
    let prefix = format!("tenants/{theirs}/");
    let t = Instant::now();
    cli(&[
        "s3",
        "rm",
        "--recursive",
        "--quiet",
        &format!("s3://{cli_bucket}/{prefix}"),
    ])?;
    loop {
        let listing: serde_json::Value = serde_json::from_slice(&cli(&[
            "s3api",
            "list-object-versions",
            "--bucket",
            &cli_bucket,
            "--prefix",
            &prefix,
            "--max-items",
            "1000",
            "--output",
            "json",
        ])?)
        .unwrap_or_default();
        let mut objs = Vec::new();
        for k in ["Versions", "DeleteMarkers"] {
            for v in listing[k].as_array().into_iter().flatten() {
                objs.push(serde_json::json!({"Key": v["Key"], "VersionId": v["VersionId"]}));
            }
        }
        if objs.is_empty() {
            break;
        }
        for chunk in objs.chunks(1000) {
            let doc = serde_json::json!({"Objects": chunk, "Quiet": true}).to_string();
            cli(&[
                "s3api",
                "delete-objects",
                "--bucket",
                &cli_bucket,
                "--delete",
                &doc,
            ])?;
        }
    }
    let cli_s3 = t.elapsed();
    let t = Instant::now();
    let keys: serde_json::Value = serde_json::from_slice(&cli(&[
        "dynamodb",
        "query",
        "--table-name",
        &table,
        "--key-condition-expression",
        "pk = :p",
        "--expression-attribute-values",
        &format!("{{\":p\":{{\"S\":\"TENANT#{theirs}\"}}}}"),
        "--projection-expression",
        "pk, sk",
        "--output",
        "json",
    ])?)?;
    let list = keys["Items"].as_array().cloned().unwrap_or_default();
    let b = bar(list.len() as u64, "aws dynamodb batch-write-item");
    for chunk in list.chunks(25) {
        let reqs: Vec<_> = chunk
            .iter()
            .map(|k| serde_json::json!({"DeleteRequest": {"Key": k}}))
            .collect();
        let doc = serde_json::json!({ table.clone(): reqs }).to_string();
        cli(&["dynamodb", "batch-write-item", "--request-items", &doc])?;
        b.inc(chunk.len() as u64);
    }
    b.finish_and_clear();
    let cli_ddb = t.elapsed();
    if cli_store.count(&theirs).await? != 0 || ddb_store.count(&theirs).await? != 0 {
        bail!("the CLI run left data behind");
    }
    println!("erase one tenant on {endpoint} (moto), same data for both:");
    println!(
        "  {:<34} {:>12} {:>12} {:>8}",
        "", "tenantctl s", "aws CLI s", "ratio"
    );
    let row = |name: &str, a: Duration, b: Duration| {
        println!(
            "  {name:<34} {:>12.2} {:>12.2} {:>7.1}x",
            a.as_secs_f64(),
            b.as_secs_f64(),
            b.as_secs_f64() / a.as_secs_f64()
        );
    };
    row(&format!("S3, {versions} versions"), our_s3, cli_s3);
    row(&format!("DynamoDB, {items} items"), our_ddb, cli_ddb);
    row("total", our_s3 + our_ddb, cli_s3 + cli_ddb);
    Ok(())
}
