//! `tenantctl demo --services`: the demo's systems on real products running on this
//! machine instead of the embedded world: PostgreSQL, Redis, pgvector, and moto's S3,
//! S3 Vectors, DynamoDB and CloudWatch Logs. Prepares a catalog and the resources it names.

use crate::fixtures::{moto_config, moto_s3, table, versioned_bucket};
use anyhow::{Context, Result, bail};
use std::path::Path;

/// The services catalog template (see `fixtures/catalog.services.toml`).
pub const SERVICES_CATALOG: &str = include_str!("../../../../fixtures/catalog.services.toml");

/// What the demo connects to.
pub struct Services {
    /// The catalog, filled in.
    pub catalog: String,
    /// Where it was written.
    pub catalog_path: std::path::PathBuf,
    /// AWS configuration pointing at moto.
    pub aws: aws_config::SdkConfig,
    /// moto's URL.
    pub moto: String,
}

fn env(name: &str, how: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => bail!(
            "{name} is not set: {how} (or run scripts/demo-services, which starts everything)"
        ),
    }
}

/// Reads the services' addresses, creates the buckets, tables and log groups on moto,
/// and writes the catalog into `dir`.
pub async fn prepare(dir: &Path) -> Result<Services> {
    let moto = env("MOTO_URL", "eval \"$(scripts/moto start)\"")?;
    let pgvector = env("TENANT_PGVECTOR_URL", "eval \"$(scripts/pgvector start)\"")?;
    let pg = std::env::var("TENANT_PG_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 user=postgres dbname=test".into());
    let redis =
        std::env::var("TENANT_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let run = format!("{:08x}", rand_run());
    let catalog = SERVICES_CATALOG
        .replace("@RUN@", &run)
        .replace("@PG@", &pg)
        .replace("@PGVECTOR@", &pgvector)
        .replace("@REDIS@", redis.trim_end_matches('/'));
    let aws = moto_config(&moto).await;
    let s3 = moto_s3(&aws);
    for b in ["docs", "docs-green", "docs-v2"] {
        versioned_bucket(&s3, &format!("demo-{run}-{b}")).await?;
    }
    let eu = aws
        .to_builder()
        .region(aws_config::Region::new("eu-west-1"))
        .build();
    let s3_eu = moto_s3(&eu);
    let eu_bucket = format!("demo-{run}-docs-eu");
    s3_eu
        .create_bucket()
        .bucket(&eu_bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .context("creating the eu-west-1 bucket on moto")?;
    s3_eu
        .put_bucket_versioning()
        .bucket(&eu_bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await?;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    for t in ["usage", "usage-green", "usage-v2"] {
        table(&ddb, &format!("demo-{run}-{t}"), "pk", "sk").await?;
    }
    table(
        &aws_sdk_dynamodb::Client::new(&eu),
        &format!("demo-{run}-usage-eu"),
        "pk",
        "sk",
    )
    .await?;
    for (cfg, b) in [
        (&aws, "vectors"),
        (&aws, "vectors-green"),
        (&aws, "vectors-v2"),
        (&eu, "vectors-eu"),
    ] {
        aws_sdk_s3vectors::Client::new(cfg)
            .create_vector_bucket()
            .vector_bucket_name(format!("demo-{run}-{b}"))
            .send()
            .await
            .context("creating a vector bucket on moto")?;
    }
    let catalog_path = dir.join("catalog.toml");
    std::fs::write(&catalog_path, &catalog)?;
    Ok(Services {
        catalog,
        catalog_path,
        aws,
        moto,
    })
}

/// A run id: time and process make it unique enough for names on one machine.
fn rand_run() -> u32 {
    (ports::migrate::unix_ms() as u32) ^ std::process::id().rotate_left(16)
}
