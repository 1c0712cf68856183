//! Erasure of a tenant's backups: every object under its prefix in every region's
//! archive (every version), then its key destroyed, so a copy nobody can delete (Object
//! Lock, a replica, a download) can no longer be read.

use async_trait::async_trait;
use lifecycle::backup::manifest::tenant_prefix;
use lifecycle::erasure::Window;
use lifecycle::{Capabilities, EraseMethod, SystemKind, TenantId};
use ports::backup::{Archive, KeyState, TenantKeys};
use ports::{ErasePass, StoreError, TenantStore};
use std::sync::Arc;
use std::time::Instant;

/// The backups system of a catalog.
#[derive(Debug, Clone)]
pub struct ArchiveTenantStore {
    name: String,
    archives: Vec<Arc<dyn Archive>>,
    keys: Arc<dyn TenantKeys>,
}

impl ArchiveTenantStore {
    /// The system `name` over `archives` (the primary first) and `keys`.
    pub fn new(name: &str, archives: Vec<Arc<dyn Archive>>, keys: Arc<dyn TenantKeys>) -> Self {
        Self {
            name: name.to_owned(),
            archives,
            keys,
        }
    }

    fn object(tenant: &TenantId, key: &str) -> Result<String, StoreError> {
        let ok = !key.is_empty()
            && key.len() <= 512
            && key.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
            });
        if !ok {
            return Err(StoreError::Config(format!(
                "an archive object name {key:?} may hold only letters, digits, '_', '-', '.' and '/' between non-empty segments"
            )));
        }
        Ok(format!("{}objects/{key}", tenant_prefix(tenant)))
    }
}

#[async_trait]
impl TenantStore for ArchiveTenantStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SystemKind {
        SystemKind::Backups
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            erase_method: EraseMethod::DeleteBackupsAndDestroyKey,
            ..SystemKind::Backups.capabilities()
        }
    }

    async fn put(&self, tenant: &TenantId, key: &str, body: &[u8]) -> Result<(), StoreError> {
        self.archives[0]
            .put(&Self::object(tenant, key)?, body.to_vec())
            .await
    }

    async fn delete(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        self.archives[0].delete(&Self::object(tenant, key)?).await
    }

    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.archives[0].get(&Self::object(tenant, key)?).await
    }

    async fn count(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let mut n = 0;
        for a in &self.archives {
            n += a.count(&tenant_prefix(tenant)).await?;
        }
        if self.keys.state(tenant).await? == KeyState::Active {
            n += 1;
        }
        Ok(n)
    }

    async fn erase(&self, tenant: &TenantId, deadline: Instant) -> Result<ErasePass, StoreError> {
        let mut erased = 0;
        for a in &self.archives {
            let pass = a.delete_prefix(&tenant_prefix(tenant), deadline).await?;
            erased += pass.erased;
            if !pass.complete {
                return Ok(ErasePass {
                    erased,
                    complete: false,
                });
            }
        }
        // Only once no object remains anywhere: the key is the last thing to go.
        if self.keys.state(tenant).await? == KeyState::Active {
            erased += 1;
        }
        self.keys.destroy(tenant).await?;
        Ok(ErasePass {
            erased,
            complete: true,
        })
    }

    async fn windows(&self, tenant: &TenantId) -> Result<Vec<Window>, StoreError> {
        Ok(match self.keys.state(tenant).await? {
            KeyState::Destroyed(w) => w,
            _ => Vec::new(),
        })
    }
}
