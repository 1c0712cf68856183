//! S3 backend: a tenant's objects live under a per-tenant prefix of a (versioned) bucket.
//! Erasure removes every object version and delete marker under that prefix.

mod archive;
mod checkpoints;
pub mod config;
mod dataset;
pub(crate) mod discover;
pub mod provision;
mod tenant_store;

pub use archive::S3Archive;
pub use checkpoints::S3Checkpoints;
pub use config::Config;
pub use dataset::S3Dataset;
pub use tenant_store::S3TenantStore;

use crate::wiring::{Context, DatasetPorts, System, both};
use lifecycle::StepError;
use lifecycle::catalog::SystemSpec;
use ports::TenantStore;
use std::sync::Arc;

/// DeleteObjects takes at most this many keys.
const MAX_DELETE_BATCH: usize = 1000;

/// An S3 client for `cfg`; path-style addressing when an endpoint override is set (local
/// API servers) or `TENANT_S3_PATH_STYLE=1`.
pub fn client(cfg: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let path_style = std::env::var("TENANT_S3_PATH_STYLE").is_ok_and(|v| v == "1")
        || cfg.endpoint_url().is_some();
    let conf = aws_sdk_s3::config::Builder::from(cfg)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Opens a catalog entry of `backend = "s3"`.
pub async fn open(spec: &SystemSpec, ctx: &mut Context) -> Result<Arc<dyn System>, StepError> {
    let config = Config::parse(spec)?;
    let client = client(ctx.aws().await?);
    // Erasure reaches every location a migration may have copied to.
    let store = S3TenantStore::new(
        client.clone(),
        spec.name.as_str(),
        spec.kind,
        &config.bucket,
        &config.prefix,
        config.max_concurrency,
    )
    .with_location_buckets(
        config
            .locations
            .iter()
            .map(|(loc, b)| (crate::aws::region_of(loc), b.clone()))
            .collect(),
    );
    Ok(Arc::new(Opened {
        name: spec.name.to_string(),
        config,
        client,
        store: Arc::new(store),
    }))
}

#[derive(Debug)]
struct Opened {
    name: String,
    config: Config,
    client: aws_sdk_s3::Client,
    store: Arc<S3TenantStore>,
}

impl System for Opened {
    fn store(&self) -> Arc<dyn TenantStore> {
        self.store.clone()
    }

    /// The home bucket, or the bucket the catalog names for `location` (a location named
    /// after an AWS region is reached there).
    fn dataset(&self, location: &str) -> Result<DatasetPorts, StepError> {
        let (client, bucket) = if location == lifecycle::migration::HOME {
            (self.client.clone(), &self.config.bucket)
        } else {
            let b = self.config.locations.get(location).ok_or_else(|| {
                StepError::Configuration(format!(
                    "system {}: no bucket for location {location}; add `locations = {{ {location} = \"<bucket>\" }}` to its catalog entry",
                    self.name
                ))
            })?;
            let client = match crate::aws::region_of(location) {
                Some(r) => aws_sdk_s3::Client::from_conf(
                    self.client.config().to_builder().region(r).build(),
                ),
                None => self.client.clone(),
            };
            (client, b)
        };
        Ok(both(S3Dataset::new(
            client,
            &self.name,
            location,
            bucket,
            &self.config.prefix,
            self.config.max_concurrency,
        )))
    }
}
