//! Ports of backup: where sealed chunks and manifests are stored ([`Archive`]) and who
//! keeps each tenant's key-encryption key ([`TenantKeys`]). Destroying a tenant's key is
//! what makes every copy of its backups unreadable, wherever the copies went.

use crate::{ErasePass, StoreError};
use async_trait::async_trait;
use lifecycle::TenantId;
use lifecycle::erasure::Window;
use std::fmt::Debug;
use std::time::Instant;

/// A backup store in one region: objects by key, every version deletable.
#[async_trait]
pub trait Archive: Send + Sync + Debug {
    /// The region it is in (`local` for a directory).
    fn region(&self) -> &str;
    /// Stores `bytes` at `key`, replacing what was there (a resumed backup rewrites a
    /// chunk it had not recorded).
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError>;
    /// The bytes at `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes the object at `key` (a delete marker where the store keeps versions).
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Every key under `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Objects (every version and delete marker) under `prefix`.
    async fn count(&self, prefix: &str) -> Result<u64, StoreError>;
    /// Deletes every object and version under `prefix` until none remain or `deadline`.
    async fn delete_prefix(&self, prefix: &str, deadline: Instant)
    -> Result<ErasePass, StoreError>;
    /// Copies every object under `prefix` from `from` (cross-region copies); returns the
    /// number copied.
    async fn copy_from(&self, from: &dyn Archive, prefix: &str) -> Result<u64, StoreError> {
        let mut n = 0;
        for key in from.list(prefix).await? {
            if let Some(b) = from.get(&key).await? {
                self.put(&key, b).await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// A fresh data key: its plaintext (zeroed on drop) and its wrapped form for the manifest.
pub struct DataKey {
    /// The 256-bit key that seals chunks.
    pub plaintext: zeroize::Zeroizing<[u8; 32]>,
    /// The key wrapped by the tenant's key-encryption key.
    pub wrapped: Vec<u8>,
    /// Which key-encryption key wrapped it.
    pub key_ref: String,
}

impl Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("key_ref", &self.key_ref)
            .finish_non_exhaustive()
    }
}

/// A tenant's key-encryption key, as its keeper sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// No key was ever made (the tenant has no backup).
    Absent,
    /// Usable.
    Active,
    /// Destroyed: nothing it wrapped opens again.
    Destroyed(Vec<Window>),
}

/// Keeps one key-encryption key per tenant (KMS on AWS, the embedded world locally).
#[async_trait]
pub trait TenantKeys: Send + Sync + Debug {
    /// A new data key for one backup, wrapped by the tenant's key (made on first use).
    /// Refused with `KeyDestroyed` once the tenant's key is destroyed.
    async fn data_key(&self, tenant: &TenantId) -> Result<DataKey, StoreError>;
    /// Unwraps a data key from a manifest; `KeyDestroyed` once the key is gone.
    async fn unwrap(
        &self,
        tenant: &TenantId,
        key_ref: &str,
        wrapped: &[u8],
    ) -> Result<zeroize::Zeroizing<[u8; 32]>, StoreError>;
    /// Destroys the tenant's key in every region (idempotent; repeats say what was done).
    async fn destroy(&self, tenant: &TenantId) -> Result<Vec<Window>, StoreError>;
    /// The key's state.
    async fn state(&self, tenant: &TenantId) -> Result<KeyState, StoreError>;
}

/// Refuses to delete anything but one tenant's backups: a prefix `tenants/<id>/...` that
/// ends with `/`, so a bug can never empty a whole archive.
pub fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    let ok = prefix.ends_with('/')
        && prefix
            .strip_prefix("tenants/")
            .and_then(|r| r.split('/').next())
            .is_some_and(|t| TenantId::parse(t).is_ok());
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "refusing to delete backup prefix {prefix:?}: only tenants/<tenant>/... may be deleted"
        )))
    }
}
