//! CloudWatch Logs: a tenant's events in log groups and streams of its own, and in
//! streams shared by tenants. One event cannot be deleted, so erasure deletes the
//! tenant's own groups and streams whole and rewrites shared streams without the
//! tenant's events; verification runs the same FilterLogEvents again. Logs are not
//! migrated (a migration request naming a logs system is refused).

mod config;
pub(crate) mod discover;
mod tenant_store;

pub use config::{Config, SharedGroup, StreamGroup};
pub use tenant_store::CloudWatchTenantStore;

use crate::wiring::{Context, DatasetPorts, System};
use lifecycle::StepError;
use lifecycle::catalog::SystemSpec;
use ports::TenantStore;
use std::sync::Arc;

/// Opens a catalog entry of `backend = "cloudwatch"`.
pub async fn open(spec: &SystemSpec, ctx: &mut Context) -> Result<Arc<dyn System>, StepError> {
    let config = Config::parse(spec)?;
    let client = aws_sdk_cloudwatchlogs::Client::new(ctx.aws().await?);
    Ok(Arc::new(Opened {
        name: spec.name.to_string(),
        store: Arc::new(CloudWatchTenantStore::new(
            client,
            spec.name.as_str(),
            spec.kind,
            config,
        )),
    }))
}

#[derive(Debug)]
struct Opened {
    name: String,
    store: Arc<CloudWatchTenantStore>,
}

impl System for Opened {
    fn store(&self) -> Arc<dyn TenantStore> {
        self.store.clone()
    }

    fn dataset(&self, _location: &str) -> Result<DatasetPorts, StepError> {
        Err(StepError::Configuration(format!(
            "system {}: log events are not migrated; a new location starts its own logs",
            self.name
        )))
    }
}
