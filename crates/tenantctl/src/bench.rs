//! Benchmarks that print a table comparing against a peer in the same run. They measure;
//! they never assert on time.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use lifecycle::{SystemKind, TenantId};
use ports::TenantStore;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stores::dynamodb::DynamoTenantStore;
use stores::s3::S3TenantStore;

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCmd {
    /// Erase a tenant of N S3 objects (a third with 3 versions) and N DynamoDB items on an
    /// S3/DynamoDB API endpoint (moto), against the aws CLI removing an equal tenant.
    Erase {
        /// API endpoint (moto's URL).
        #[arg(long, env = "MOTO_URL")]
        endpoint: String,
        /// Objects per tenant.
        #[arg(long, default_value_t = 20_000)]
        objects: usize,
        /// DynamoDB items per tenant.
        #[arg(long, default_value_t = 20_000)]
        items: usize,
        /// The aws CLI to compare with.
        #[arg(long, default_value = ".venv/bin/aws")]
        aws_cli: String,
        /// Concurrent DeleteObjects / BatchWriteItem calls.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Migration figures: bulk copy rate against the database's own copy, write pause at
    /// the flip and rollback time under a live workload, dual-write overhead.
    Migrate {
        /// Records per bulk copy.
        #[arg(long, default_value_t = 50_000)]
        records: usize,
        /// Flips and rollbacks measured.
        #[arg(long, default_value_t = 20)]
        trials: usize,
        /// Also measure a PostgreSQL copy (connection string).
        #[arg(long, env = "TENANT_PG_URL")]
        pg_url: Option<String>,
        /// Also measure a DynamoDB copy on this endpoint (moto's URL).
        #[arg(long)]
        dynamodb_endpoint: Option<String>,
        /// Items of the DynamoDB copy.
        #[arg(long, default_value_t = 5_000)]
        dynamodb_items: usize,
    },
    /// Bulk copy of one tenant's S3 prefix by the migration's sync, `rclone copy` and
    /// `aws s3 sync`, on an endpoint (moto's URL).
    S3Copy {
        /// The S3 endpoint.
        #[arg(long)]
        endpoint: String,
        /// Objects under the prefix.
        #[arg(long, default_value_t = 10_000)]
        objects: usize,
        /// Requests in flight, for every tool.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// The aws CLI to compare with.
        #[arg(long, default_value = ".venv/bin/aws")]
        aws_cli: String,
        /// The rclone binary to compare with.
        #[arg(long, default_value = "rclone")]
        rclone: String,
    },
    /// Verify a ledger of N entries on one thread and on every core, against
    /// `openssl speed ecdsap256` measured in the same run.
    LedgerVerify {
        /// Entries.
        #[arg(long, default_value_t = 100_000)]
        entries: usize,
    },
    /// Verify one certificate's receipt against a checkpoint of a tree of N entries.
    Receipt {
        /// Entries in the tree.
        #[arg(long, default_value_t = 1_000_000)]
        size: u64,
    },
    /// Appends with the Merkle tree kept, against appends without it.
    LedgerAppend {
        /// Embedded appends.
        #[arg(long, default_value_t = 4_000)]
        entries: usize,
        /// Also on DynamoDB at this endpoint (moto's URL).
        #[arg(long)]
        dynamodb_endpoint: Option<String>,
        /// DynamoDB appends.
        #[arg(long, default_value_t = 600)]
        dynamodb_entries: usize,
    },
}

/// Runs a benchmark.
pub async fn run(cmd: BenchCmd, data_dir: &Path) -> Result<()> {
    match cmd {
        BenchCmd::LedgerVerify { entries } => crate::bench_ledger::verify(entries, data_dir).await,
        BenchCmd::Receipt { size } => crate::bench_ledger::receipt(size, data_dir).await,
        BenchCmd::LedgerAppend {
            entries,
            dynamodb_endpoint,
            dynamodb_entries,
        } => {
            let ddb = dynamodb_endpoint.as_deref().map(|e| (e, dynamodb_entries));
            crate::bench_ledger::append(entries, ddb, data_dir).await
        }
        BenchCmd::Migrate {
            records,
            trials,
            pg_url,
            dynamodb_endpoint,
            dynamodb_items,
        } => {
            let ddb = dynamodb_endpoint.as_deref().map(|e| (e, dynamodb_items));
            crate::bench_migrate::run(data_dir, records, trials, pg_url.as_deref(), ddb).await
        }
        BenchCmd::S3Copy {
            endpoint,
            objects,
            concurrency,
            aws_cli,
            rclone,
        } => {
            let o = crate::bench_s3copy::S3CopyOptions {
                objects,
                concurrency,
                aws_cli,
                rclone,
            };
            crate::bench_s3copy::run(data_dir, &endpoint, o).await
        }
        BenchCmd::Erase {
            endpoint,
            objects,
            items,
            aws_cli,
            concurrency,
        } => erase(&endpoint, objects, items, &aws_cli, concurrency).await,
    }
}

pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(&format!("  {what} {{bar:30}} {{pos}}/{{len}} {{per_sec}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// The AWS configuration and a path-style S3 client for a moto endpoint.
pub(crate) async fn moto_clients(endpoint: &str) -> (aws_config::SdkConfig, aws_sdk_s3::Client) {
    let cfg = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "bench",
        ))
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&cfg)
            .force_path_style(true)
            .build(),
    );
    (cfg, s3)
}

/// Creates a bucket with versioning enabled.
pub(crate) async fn versioned_bucket(s3: &aws_sdk_s3::Client, name: &str) -> Result<()> {
    s3.create_bucket()
        .bucket(name)
        .send()
        .await
        .with_context(|| format!("CreateBucket {name}"))?;
    s3.put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await?;
    Ok(())
}

async fn erase(
    endpoint: &str,
    objects: usize,
    items: usize,
    aws_cli: &str,
    concurrency: usize,
) -> Result<()> {
    if !Path::new(aws_cli).exists() && Command::new(aws_cli).arg("--version").output().is_err() {
        bail!("the aws CLI ({aws_cli}) is missing: run scripts/bootstrap");
    }
    let (cfg, s3) = moto_clients(endpoint).await;
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    // One bucket per tool: moto's ListObjectVersions costs time in proportion to the whole
    // bucket, so a shared bucket would slow whichever tool runs second.
    let bucket = format!("bench-ours-{}", std::process::id());
    let cli_bucket = format!("bench-cli-{}", std::process::id());
    let table = format!("bench-usage-{}", std::process::id());
    for b in [&bucket, &cli_bucket] {
        versioned_bucket(&s3, b).await?;
    }
    create_table(&ddb, &table).await?;
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

async fn seed_s3(store: &S3TenantStore, t: &TenantId, n: usize) -> Result<()> {
    let b = bar(n as u64, "seeding S3");
    let store = Arc::new(store.clone());
    let results: Vec<Result<(), ports::StoreError>> = futures::stream::iter(0..n)
        .map(|i| {
            let (s, t, b) = (store.clone(), t.clone(), b.clone());
            async move {
                let key = format!("uploads/doc-{i:06}.pdf");
                let versions = if i % 3 == 0 { 3 } else { 1 };
                for v in 0..versions {
                    s.put(&t, &key, format!("v{v}").as_bytes()).await?;
                }
                b.inc(1);
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    b.finish_and_clear();
    results.into_iter().collect::<Result<(), _>>()?;
    Ok(())
}

async fn seed_ddb(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    t: &TenantId,
    n: usize,
) -> Result<()> {
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    let b = bar(n as u64, "seeding DynamoDB");
    for chunk in (0..n).collect::<Vec<_>>().chunks(25) {
        let reqs = chunk
            .iter()
            .map(|i| {
                PutRequest::builder()
                    .item("pk", AttributeValue::S(format!("TENANT#{t}")))
                    .item("sk", AttributeValue::S(format!("usage/{i:07}")))
                    .item("tokens", AttributeValue::N("12".into()))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut pending = reqs;
        while !pending.is_empty() {
            let out = ddb
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(table))
                .unwrap_or_default();
        }
        b.inc(chunk.len() as u64);
    }
    b.finish_and_clear();
    Ok(())
}

/// Creates an on-demand DynamoDB table keyed by string `pk` and `sk`.
pub(crate) async fn create_table(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Result<()> {
    create_table_keyed(ddb, name, "pk", "sk").await
}

/// Creates an on-demand DynamoDB table with string hash key `pk` and range key `sk`.
pub(crate) async fn create_table_keyed(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    pk: &str,
    sk: &str,
) -> Result<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
    };
    ddb.create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(pk)?)
        .attribute_definitions(attr(sk)?)
        .key_schema(key(pk, KeyType::Hash)?)
        .key_schema(key(sk, KeyType::Range)?)
        .send()
        .await
        .with_context(|| format!("CreateTable {name}"))?;
    Ok(())
}
