//! CloudWatch Logs: a tenant's events in log groups and streams of its own, and in
//! streams shared by tenants. One event cannot be deleted, so erasure deletes the
//! tenant's own groups and streams whole (at home and at every migration location) and
//! rewrites shared streams without the tenant's events; verification runs the same
//! FilterLogEvents again.
//!
//! Migration moves the tenant's records, kept as events of one stream of its own per
//! location (`tenant-lifecycle` in its own group, or under its own stream prefix), to the
//! same stream at another location named by `locations` (a group template, or a group
//! and stream prefix); see [`dataset`] for the event format, the per-process index and
//! the one-writer-process rule. Events in shared streams and in the tenant's other
//! streams are logs, not records: they are not migrated, and a new location starts its
//! own.

mod config;
pub mod dataset;
pub(crate) mod discover;
mod tenant_store;

pub use config::{Config, Location, OWN_STREAM, SharedGroup, StreamGroup};
pub use dataset::{CloudWatchDataset, SharedIndex};
pub use tenant_store::CloudWatchTenantStore;

use crate::wiring::{Context, DatasetPorts, System, both};
use lifecycle::StepError;
use lifecycle::catalog::SystemSpec;
use ports::TenantStore;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Opens a catalog entry of `backend = "cloudwatch"`.
pub async fn open(spec: &SystemSpec, ctx: &mut Context) -> Result<Arc<dyn System>, StepError> {
    let config = Config::parse(spec)?;
    let client = aws_sdk_cloudwatchlogs::Client::new(ctx.aws().await?);
    let store = CloudWatchTenantStore::new(client, spec.name.as_str(), spec.kind, config);
    // One dataset per location, made once, so this process's writes share one index.
    let datasets = match dataset::datasets(&store) {
        Ok(d) => Ok(d.into_iter().map(|(loc, ds)| (loc, both(ds))).collect()),
        Err(e) => Err(e.to_string()),
    };
    Ok(Arc::new(Opened {
        name: spec.name.to_string(),
        store: Arc::new(store),
        datasets,
    }))
}

#[derive(Debug)]
struct Opened {
    name: String,
    store: Arc<CloudWatchTenantStore>,
    /// The datasets by location, or why the system has none (shared streams only).
    datasets: Result<BTreeMap<String, DatasetPorts>, String>,
}

impl System for Opened {
    fn store(&self) -> Arc<dyn TenantStore> {
        self.store.clone()
    }

    fn dataset(&self, location: &str) -> Result<DatasetPorts, StepError> {
        let datasets = self
            .datasets
            .as_ref()
            .map_err(|e| StepError::Configuration(e.clone()))?;
        datasets.get(location).cloned().ok_or_else(|| {
            StepError::Configuration(format!(
                "system {}: no log group for location {location}; add `locations = {{ {location} = \"/app-{location}/tenants/{{tenant_id}}\" }}` to its catalog entry",
                self.name
            ))
        })
    }
}
