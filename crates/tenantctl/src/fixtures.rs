//! Fixtures shared by the benchmarks and the end-to-end tests: moto clients, versioned
//! buckets and DynamoDB tables, seeding, the migration's bulk copy driven step by step,
//! catalogs with one backend swapped, and progress bars.

use anyhow::{Context, Result};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use lifecycle::TenantId;
use lifecycle::migration::HOME;
use ports::TenantStore;
use ports::migrate::{Locator, Rec};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stores::Deps;
use stores::s3::S3TenantStore;
use tenant_runtime::Budget;

/// A progress bar of `len` steps, labelled `what`.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(&format!("  {what} {{bar:30}} {{pos}}/{{len}} {{per_sec}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// AWS configuration pointing every client at the moto server at `endpoint`.
pub async fn moto_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await
}

/// An S3 client for moto (path-style addressing).
pub fn moto_s3(cfg: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(cfg)
            .force_path_style(true)
            .build(),
    )
}

/// Creates a bucket with versioning enabled.
pub async fn versioned_bucket(s3: &aws_sdk_s3::Client, name: &str) -> Result<()> {
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

/// Creates an on-demand DynamoDB table with string hash key `pk` and range key `sk`.
pub async fn table(ddb: &aws_sdk_dynamodb::Client, name: &str, pk: &str, sk: &str) -> Result<()> {
    create_table(ddb, name, &[pk, sk], false).await
}

/// The same with a DynamoDB Stream (view `NEW_IMAGE`).
pub async fn streamed_table(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    pk: &str,
    sk: &str,
) -> Result<()> {
    create_table(ddb, name, &[pk, sk], true).await
}

/// Creates an on-demand DynamoDB table with only a string partition key `pk`.
pub async fn hash_table(ddb: &aws_sdk_dynamodb::Client, name: &str, pk: &str) -> Result<()> {
    create_table(ddb, name, &[pk], false).await
}

/// `keys` are the hash key and, when there is a second, the range key; all strings.
async fn create_table(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    keys: &[&str],
    stream: bool,
) -> Result<()> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        StreamSpecification, StreamViewType,
    };
    let spec = if stream {
        Some(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()?,
        )
    } else {
        None
    };
    let mut req = ddb
        .create_table()
        .set_stream_specification(spec)
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (k, ty) in keys.iter().zip([KeyType::Hash, KeyType::Range]) {
        req = req
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(*k)
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(*k)
                    .key_type(ty)
                    .build()?,
            );
    }
    req.send()
        .await
        .with_context(|| format!("CreateTable {name}"))?;
    Ok(())
}

/// Writes `n` objects of tenant `t` through `store`; a third get three versions.
pub async fn seed_s3(store: &S3TenantStore, t: &TenantId, n: usize) -> Result<()> {
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

/// Writes `n` usage items of tenant `t` into `table` (keys `pk`, `sk`) with BatchWriteItem.
pub async fn seed_ddb(
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

/// Writes `n` JSON documents of `tenant` into the home dataset of `system`.
pub async fn seed_dataset(deps: &Deps, tenant: &str, system: &str, n: usize) -> Result<()> {
    let t = TenantId::parse(tenant)?;
    let ds = deps.dataset(system, HOME)?;
    for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
        let recs: Vec<Rec> = chunk
            .iter()
            .map(|i| Rec {
                key: format!("doc/{i:07}"),
                rev: 0,
                body: Some(
                    json!({"title": format!("document {i}"), "pages": i % 40, "owner": "user-7"})
                        .to_string()
                        .into_bytes(),
                ),
            })
            .collect();
        ds.apply_many(&t, &recs).await?;
    }
    Ok(())
}

/// Calls the step function `f` in process, as the migration state machine would.
pub async fn step(deps: &Deps, f: &str, input: Value) -> Result<Value> {
    crate::registry::call(f, input, deps, Budget::of(Duration::from_secs(900)))
        .await
        .map_err(|e| anyhow::anyhow!("{f}: {}: {}", e.error, e.cause))
}

/// `m` with the field `k` set to `v`.
pub fn with_field(m: &Value, k: &str, v: Value) -> Value {
    let mut x = m.clone();
    x[k] = v;
    x
}

/// Provisions and bulk-copies; returns the migration ref and the copy time.
pub async fn bulk(deps: &Deps, tenant: &str, systems: &[&str]) -> Result<(Value, Duration)> {
    let req = json!({"tenant_id": tenant, "kind": "blue-green", "from": {"environment": "blue"},
        "to": {"environment": "green"}, "systems": systems,
        "options": {"page_size": 1000, "soak_seconds": 0, "max_lag": 0}});
    let p = step(deps, "provision", req).await?;
    let m = json!({"tenant_id": tenant, "migration_id": p["migration_id"]});
    let t0 = Instant::now();
    loop {
        if step(deps, "sync", with_field(&m, "mode", json!("bulk"))).await?["done"] == true {
            break;
        }
    }
    Ok((m, t0.elapsed()))
}

/// The local catalog with `system`'s `backend = "embedded"` line replaced by `backend`
/// (the lines of another backend's entry).
pub fn catalog_with(system: &str, backend: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in crate::LOCAL_CATALOG.lines() {
        if line.starts_with("name = ") {
            inside = line == format!("name = \"{system}\"");
        }
        if inside && line.starts_with("backend = ") {
            out.push_str(backend);
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `data_dir/name`, removed if it exists, so that what opens it starts from nothing.
pub fn fresh_dir(data_dir: &Path, name: &str) -> Result<PathBuf> {
    let dir = data_dir.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(dir)
}
