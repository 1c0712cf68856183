//! This tool's own backups as a catalog system (`kind = "backups"`, `backend =
//! "archive"`): erasure deletes every backup object of the tenant in every region and
//! destroys its key. Backups are written by the backup pipe (`steps::backup`), not
//! migrated, so the system has no dataset.

mod config;
mod tenant_store;

pub use config::Config;
pub use tenant_store::ArchiveTenantStore;

use crate::wiring::{Context, DatasetPorts, System};
use lifecycle::StepError;
use lifecycle::catalog::SystemSpec;
use ports::TenantStore;
use std::sync::Arc;

/// Opens a catalog entry of `backend = "archive"`.
pub async fn open(spec: &SystemSpec, ctx: &mut Context) -> Result<Arc<dyn System>, StepError> {
    Config::parse(spec)?;
    let (archive, replicas, keys) = ctx.backup_ports().await?;
    let mut archives = vec![archive];
    archives.extend(replicas);
    Ok(Arc::new(Opened {
        name: spec.name.to_string(),
        store: Arc::new(ArchiveTenantStore::new(spec.name.as_str(), archives, keys)),
    }))
}

#[derive(Debug)]
struct Opened {
    name: String,
    store: Arc<ArchiveTenantStore>,
}

impl System for Opened {
    fn store(&self) -> Arc<dyn TenantStore> {
        self.store.clone()
    }

    fn dataset(&self, _location: &str) -> Result<DatasetPorts, StepError> {
        Err(StepError::Configuration(format!(
            "system {}: backups are not migrated record by record; the backup pipe writes them",
            self.name
        )))
    }
}
