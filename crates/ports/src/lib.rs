//! Ports of the tenant lifecycle: the traits every backend implements and every step uses.
//!
//! Ports are named by role ([`TenantStore`], [`LegalHolds`], [`Ledger`], [`RequestLog`],
//! [`CheckpointStore`], [`Signer`], [`Clock`], and for migration [`migrate::Dataset`],
//! [`migrate::ChangeFeed`], [`migrate::RoutingStore`], [`migrate::Migrations`]); the
//! products that implement them live in the `stores` crate, the logic that drives them
//! in `steps`. Nothing here talks to a network or a file.

pub mod backup;
mod error;
pub mod migrate;
pub mod retry;

pub use error::{Contended, Source, StoreError};

use async_trait::async_trait;
use lifecycle::erasure::SystemProgress;
use lifecycle::ledger::{Head, StoredEntry};
use lifecycle::tree::{Hash, NodeId};
use lifecycle::{Capabilities, SystemKind, TenantId};
use p256::ecdsa::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::time::Instant;

/// What one `erase` call achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErasePass {
    /// Records erased (versions and delete markers count one each).
    pub erased: u64,
    /// True when nothing of the tenant was left when the pass ended.
    pub complete: bool,
}

/// A system that holds tenant data.
#[async_trait]
pub trait TenantStore: Send + Sync + Debug {
    /// The system's catalog name.
    fn name(&self) -> &str;
    /// The system's kind; its capabilities follow from it.
    fn kind(&self) -> SystemKind;
    /// What this system can do.
    fn capabilities(&self) -> Capabilities {
        self.kind().capabilities()
    }
    /// Writes a record (a new version where the store keeps versions).
    async fn put(&self, tenant: &TenantId, key: &str, body: &[u8]) -> Result<(), StoreError>;
    /// Deletes a record the way an application would (a delete marker where versioned).
    async fn delete(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError>;
    /// Reads the current version of a record.
    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Counts every recoverable record of the tenant: versions and delete markers included.
    async fn count(&self, tenant: &TenantId) -> Result<u64, StoreError>;
    /// Erases the tenant's records until none remain or `deadline` passes. Always erases
    /// at least one batch when any remain, so a loop of calls terminates; idempotent, so a
    /// call retried after partial progress simply continues.
    async fn erase(&self, tenant: &TenantId, deadline: Instant) -> Result<ErasePass, StoreError>;
    /// What the erasure closed that is only gone for good later (stated on the
    /// certificate); none for most stores.
    async fn windows(
        &self,
        _tenant: &TenantId,
    ) -> Result<Vec<lifecycle::erasure::Window>, StoreError> {
        Ok(Vec::new())
    }
}

/// A legal hold on a tenant: while active, nothing of the tenant may be erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalHold {
    /// The held tenant.
    pub tenant_id: String,
    /// Hold identifier (e.g. a case number); goes into certificates.
    pub hold_id: String,
    /// Free text; may name people, so it is never logged nor certified.
    pub reason: String,
    /// When it was placed.
    pub placed_at: String,
    /// When it was released, if it was.
    pub released_at: Option<String>,
}

/// Where legal holds are kept.
#[async_trait]
pub trait LegalHolds: Send + Sync + Debug {
    /// Places (or re-activates) a hold.
    async fn place(&self, hold: &LegalHold) -> Result<(), StoreError>;
    /// Releases an active hold; `NotFound` if there is no such active hold.
    async fn release(&self, tenant: &TenantId, hold_id: &str, at: &str) -> Result<(), StoreError>;
    /// The tenant's active holds.
    async fn active(&self, tenant: &TenantId) -> Result<Vec<LegalHold>, StoreError>;
}

/// An entry to append, already sealed.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a> {
    /// Its seq (head + 1).
    pub seq: u64,
    /// Its `entry_hash`.
    pub entry_hash: &'a str,
    /// The exact JSON text to store.
    pub json: &'a str,
    /// When set, the append fails with `Duplicate` if this request id is already recorded.
    pub unique_request: Option<&'a str>,
    /// Its RFC 6962 leaf hash ([`lifecycle::ledger::leaf_of`]); the backend extends the
    /// chain's Merkle tree with it in the same transaction.
    pub leaf: Hash,
}

/// The append-only ledger: one hash chain per kind of certificate.
#[async_trait]
pub trait Ledger: Send + Sync + Debug {
    /// The chain's head, `None` while empty.
    async fn head(&self, chain: &str) -> Result<Option<Head>, StoreError>;
    /// Appends if and only if the head is still `expected`: otherwise `Conflict`.
    async fn append(
        &self,
        chain: &str,
        expected: Option<&Head>,
        entry: NewEntry<'_>,
    ) -> Result<(), StoreError>;
    /// The stored entry that recorded `request_id` as unique, if any.
    async fn find_request(
        &self,
        chain: &str,
        request_id: &str,
    ) -> Result<Option<String>, StoreError>;
    /// Up to `limit` stored entries from `from_seq` on, in order.
    async fn entries(
        &self,
        chain: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError>;
    /// Every chain that has a head.
    async fn chains(&self) -> Result<Vec<String>, StoreError>;
    /// Stored nodes of the chain's Merkle tree (`None` where a node is not stored).
    async fn tree_nodes(
        &self,
        chain: &str,
        ids: &[NodeId],
    ) -> Result<Vec<Option<Hash>>, StoreError>;
}

/// How a request id's claim went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use of the id: it is now bound to the digest.
    New,
    /// The id is already bound to this same digest: a replay or a resume.
    Same,
    /// The id is bound to another digest (returned): a different request.
    Other(String),
}

/// Requests in flight: the claim that binds a request id to what it asks, written
/// atomically at validation, and the erasure progress per system that survives a kill.
/// Unlike the ledger this is erasable: it holds the request's free-text reason.
#[async_trait]
pub trait RequestLog: Send + Sync + Debug {
    /// Binds `request_id` to `digest` unless it is bound already (atomic check-and-claim).
    async fn claim(
        &self,
        request_id: &str,
        digest: &str,
        reason: &str,
        at: &str,
    ) -> Result<Claim, StoreError>;
    /// Adds one pass's result to a system's progress; `found` is kept from the first call
    /// that gives it.
    async fn record_pass(
        &self,
        request_id: &str,
        system: &str,
        found: Option<u64>,
        erased: u64,
        done: bool,
    ) -> Result<SystemProgress, StoreError>;
    /// Every system's progress for the request.
    async fn progress(&self, request_id: &str) -> Result<Vec<SystemProgress>, StoreError>;
}

/// Where signed checkpoints are published: outside the ledger's own store, write-once
/// (a directory locally, an S3 bucket with Object Lock on AWS).
#[async_trait]
pub trait CheckpointStore: Send + Sync + Debug {
    /// Publishes the checkpoint of `chain` at `size`; publishing the same text again is a
    /// no-op, a different text for a published size is `Conflict`.
    async fn publish(&self, chain: &str, size: u64, note: &str) -> Result<String, StoreError>;
    /// The checkpoint of the largest size published for `chain`.
    async fn latest(&self, chain: &str) -> Result<Option<String>, StoreError>;
    /// Chains that have a published checkpoint.
    async fn chains(&self) -> Result<Vec<String>, StoreError>;
}

/// Signs certificate bodies with a P-256 key.
#[async_trait]
pub trait Signer: Send + Sync + Debug {
    /// `p256:` and 16 hex digits of the SHA-256 of the public key's SPKI DER.
    fn key_id(&self) -> &str;
    /// The public key.
    fn public_key(&self) -> &VerifyingKey;
    /// ECDSA P-256 / SHA-256 signature over `message`, ASN.1 DER.
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, StoreError>;
}

/// Chain names become file names and object keys: lowercase letters, digits, '-'.
pub fn check_chain_name(chain: &str) -> Result<(), StoreError> {
    let ok = !chain.is_empty()
        && chain.len() <= 64
        && chain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "chain name {chain:?} must be 1-64 of a-z, 0-9 and '-'"
        )))
    }
}

/// The time source, so tests and the simulator can pin it.
pub trait Clock: Send + Sync + Debug {
    /// Now, UTC.
    fn now(&self) -> time::OffsetDateTime;
    /// Now as RFC 3339 with second precision.
    fn now_rfc3339(&self) -> String {
        rfc3339(self.now())
    }
}

/// Formats a time as RFC 3339, UTC, whole seconds.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&f)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }
}

/// Erases the tenant from each migration location's copy of a store, then runs `home`
/// (the store's own erasure); stops at the first location left incomplete.
pub async fn erase_locations_then<S, F, Fut>(
    locations: Vec<S>,
    tenant: &TenantId,
    deadline: Instant,
    home: F,
) -> Result<ErasePass, StoreError>
where
    S: TenantStore,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<ErasePass, StoreError>>,
{
    let mut erased = 0;
    for other in locations {
        let pass = other.erase(tenant, deadline).await?;
        erased += pass.erased;
        if !pass.complete {
            return Ok(ErasePass {
                erased,
                complete: false,
            });
        }
    }
    let mut pass = home().await?;
    pass.erased += erased;
    Ok(pass)
}

/// Repeats erase passes until one that reached the end found nothing, or the deadline
/// passes. A pass from the start that finds nothing is what proves completion: it also
/// catches records written meanwhile, and listings that page by position rather than by
/// marker while deletes run (moto does). `pass` returns (erased, listed to the end).
pub async fn erase_until_clean<F, Fut>(
    deadline: Instant,
    mut pass: F,
) -> Result<ErasePass, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(u64, bool), StoreError>>,
{
    let mut erased = 0;
    loop {
        let (n, listed_all) = pass().await?;
        erased += n;
        if listed_all && n == 0 {
            return Ok(ErasePass {
                erased,
                complete: true,
            });
        }
        if Instant::now() >= deadline {
            return Ok(ErasePass {
                erased,
                complete: false,
            });
        }
    }
}

/// Everything the shared step logic needs from a process's wiring: the control tables,
/// the ledger and its signer, the clock, and each system's datasets.
#[async_trait]
pub trait Services: migrate::Locator {
    /// The routing store, or a configuration error naming the catalog key to set.
    fn routing(&self) -> Result<&std::sync::Arc<dyn migrate::RoutingStore>, lifecycle::StepError>;
    /// The migrations table, or a configuration error naming the catalog key to set.
    fn migrations(&self) -> Result<&std::sync::Arc<dyn migrate::Migrations>, lifecycle::StepError>;
    /// The certificate ledger.
    fn ledger(&self) -> &std::sync::Arc<dyn Ledger>;
    /// The certificate signer.
    async fn signer(&self) -> Result<std::sync::Arc<dyn Signer>, lifecycle::StepError>;
    /// The time source.
    fn clock(&self) -> &std::sync::Arc<dyn Clock>;
    /// The catalog the process runs under.
    fn catalog(&self) -> &lifecycle::Catalog;
    /// Legal holds.
    fn holds(&self) -> &std::sync::Arc<dyn LegalHolds>;
    /// Request claims.
    fn requests(&self) -> &std::sync::Arc<dyn RequestLog>;
    /// The backup archive of the primary region.
    fn archive(&self) -> Result<&std::sync::Arc<dyn backup::Archive>, lifecycle::StepError>;
    /// Archives in other regions that cross-region tiers copy to.
    fn replicas(&self) -> &[std::sync::Arc<dyn backup::Archive>];
    /// The keeper of tenants' keys.
    fn keys(&self) -> Result<&std::sync::Arc<dyn backup::TenantKeys>, lifecycle::StepError>;
}
