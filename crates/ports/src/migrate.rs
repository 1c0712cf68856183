//! Ports of zero-downtime migration: a tenant's records in one location of one system
//! ([`Dataset`]), the changes made there ([`ChangeFeed`]), the routing record the router
//! caches ([`RoutingStore`]) and the migrations table ([`Migrations`]).

use crate::StoreError;
use async_trait::async_trait;
use lifecycle::migration::{Env, MigrationRecord, Routing, Window};
use lifecycle::{StepError, TenantId};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// A record as migration moves it. `rev` grows by one on every write at the primary and
/// is copied as is, so a replica can refuse anything older than what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rec {
    /// The record's key.
    pub key: String,
    /// Its revision (1 for the first write; 0 for records written before migration).
    pub rev: u64,
    /// Its body; `None` is a deletion (a tombstone, kept so a late copy cannot revive it).
    pub body: Option<Vec<u8>>,
}

/// One tenant's records of one system in one location (home, green, eu-west-1, v2...).
#[async_trait]
pub trait Dataset: Send + Sync + Debug {
    /// The catalog system.
    fn system(&self) -> &str;
    /// The location.
    fn location(&self) -> &str;
    /// Creates whatever the location needs for the tenant (table, prefix, schema);
    /// idempotent. True when something was created.
    async fn provision(&self, tenant: &TenantId) -> Result<bool, StoreError>;
    /// The current record, tombstones included.
    async fn read(&self, tenant: &TenantId, key: &str) -> Result<Option<Rec>, StoreError>;
    /// A write at the primary: stores `body` at the next revision and records the change
    /// on the location's feed, atomically. Returns the revision.
    async fn write(
        &self,
        tenant: &TenantId,
        key: &str,
        body: Option<&[u8]>,
    ) -> Result<u64, StoreError>;
    /// A write at a replica: stores `rec` only if what is held is older (or, with
    /// `replace_equal`, not newer). True when it was stored.
    async fn apply(
        &self,
        tenant: &TenantId,
        rec: &Rec,
        replace_equal: bool,
    ) -> Result<bool, StoreError>;
    /// Applies many records (one round trip or transaction where the product allows).
    async fn apply_many(&self, tenant: &TenantId, recs: &[Rec]) -> Result<u64, StoreError> {
        let mut n = 0;
        for r in recs {
            n += u64::from(self.apply(tenant, r, false).await?);
        }
        Ok(n)
    }
    /// Makes this location ready for `tenant` in the shape of `source`, the location the
    /// tenant moves from: a backend whose location is a resource of its own (an S3
    /// bucket, a DynamoDB table) creates it with the source's settings, tagged with
    /// `tags`, when it is missing, and refuses one of another shape, saying what
    /// differs; true when something was made. Others provision as `provision` does.
    async fn provision_like(
        &self,
        tenant: &TenantId,
        source: &dyn Dataset,
        tags: &[(String, String)],
    ) -> Result<bool, StoreError> {
        let _ = (source, tags);
        self.provision(tenant).await
    }
    /// Applies many records while the caller is the only writer of this location for the
    /// tenant (the bulk copy, before dual-write begins), so a backend may check revisions
    /// first and then write unconditionally in batches. Same result as `apply_many`.
    async fn apply_many_exclusive(
        &self,
        tenant: &TenantId,
        recs: &[Rec],
    ) -> Result<u64, StoreError> {
        self.apply_many(tenant, recs).await
    }
    /// Up to `limit` current records with keys after `after`, in key order.
    async fn scan(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Rec>, StoreError>;
    /// A full export of every current record with a key after `after`, in key order and
    /// pages of up to `page`, read in one statement where the product has a bulk read
    /// (PostgreSQL's COPY); `None` when the backend has none and [`ScanExport`] pages
    /// through [`Dataset::scan`] instead.
    async fn export(
        &self,
        _tenant: &TenantId,
        _after: Option<&str>,
        _page: usize,
    ) -> Result<Option<Box<dyn Export>>, StoreError> {
        Ok(None)
    }
    /// This dataset as `Any`, for a backend that can copy from its own kind server-side.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
    /// One bulk-copy page from `source` into this location without moving bodies through
    /// the caller (S3 CopyObject), under the same exclusive-writer rule as
    /// `apply_many_exclusive`; `None` when this backend cannot copy from that source.
    async fn copy_page_from(
        &self,
        _tenant: &TenantId,
        _source: &dyn Dataset,
        _after: Option<&str>,
        _limit: usize,
    ) -> Result<Option<CopiedPage>, StoreError> {
        Ok(None)
    }
}

/// A full export under way: pages of current records in key order.
#[async_trait]
pub trait Export: Send {
    /// The next page; shorter than the page size only at the end, empty after it.
    async fn next_page(&mut self) -> Result<Vec<Rec>, StoreError>;
}

/// The export of a backend without a bulk read: one [`Dataset::scan`] per page.
#[derive(Debug)]
pub struct ScanExport<'a> {
    dataset: &'a dyn Dataset,
    tenant: &'a TenantId,
    cursor: Option<String>,
    page: usize,
    done: bool,
}

impl<'a> ScanExport<'a> {
    /// Pages of `dataset` after `after`.
    pub fn new(
        dataset: &'a dyn Dataset,
        tenant: &'a TenantId,
        after: Option<&str>,
        page: usize,
    ) -> Self {
        Self {
            dataset,
            tenant,
            cursor: after.map(str::to_owned),
            page: page.max(1),
            done: false,
        }
    }
}

#[async_trait]
impl Export for ScanExport<'_> {
    async fn next_page(&mut self) -> Result<Vec<Rec>, StoreError> {
        if self.done {
            return Ok(Vec::new());
        }
        let recs = self
            .dataset
            .scan(self.tenant, self.cursor.as_deref(), self.page)
            .await?;
        self.done = recs.len() < self.page;
        if let Some(r) = recs.last() {
            self.cursor = Some(r.key.clone());
        }
        Ok(recs)
    }
}

/// What a server-side bulk-copy page did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopiedPage {
    /// Records listed at the source.
    pub listed: usize,
    /// Records copied (the rest were already as new at the target).
    pub copied: u64,
    /// The last key listed.
    pub last: Option<String>,
}

/// One change on a location's feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Position on the feed; grows.
    pub seq: u64,
    /// The key written.
    pub key: String,
}

/// The changes written at a location, in order: what catch-up replays.
#[async_trait]
pub trait ChangeFeed: Send + Sync + Debug {
    /// The position of the last change (0 when none).
    async fn head(&self, tenant: &TenantId) -> Result<u64, StoreError>;
    /// Up to `limit` changes after position `after`.
    async fn read(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError>;
    /// Makes sure every write acknowledged before this call is on the feed (a backend
    /// whose feed lags its writes, such as a DynamoDB Stream, waits for a barrier).
    async fn settle(&self, _tenant: &TenantId) -> Result<(), StoreError> {
        Ok(())
    }
    /// Drops the changes before `upto` (after a migration ends); the head stays, so
    /// positions are never reused.
    async fn trim(&self, tenant: &TenantId, upto: u64) -> Result<(), StoreError>;
}

/// A router's acknowledgement that it routes by `epoch` and has no write of an older
/// epoch in flight; `at_ms` (Unix milliseconds) doubles as its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The router instance.
    pub router_id: String,
    /// The epoch it routes by.
    pub epoch: u64,
    /// When it said so.
    pub at_ms: u64,
}

/// Where routing records, router acknowledgements and health windows live.
#[async_trait]
pub trait RoutingStore: Send + Sync + Debug {
    /// The tenant's routing record, if it has one.
    async fn get(&self, tenant: &TenantId) -> Result<Option<Routing>, StoreError>;
    /// Stores `routing` if the stored epoch is still `expected` (`None`: no record yet)
    /// and `routing.epoch` is greater; otherwise `Conflict`.
    async fn put(&self, routing: &Routing, expected: Option<u64>) -> Result<(), StoreError>;
    /// Records a router's acknowledgement (and heartbeat).
    async fn ack(&self, tenant: &TenantId, ack: &Ack) -> Result<(), StoreError>;
    /// Every router's latest acknowledgement.
    async fn acks(&self, tenant: &TenantId) -> Result<Vec<Ack>, StoreError>;
    /// Forgets a router that shut down.
    async fn leave(&self, tenant: &TenantId, router_id: &str) -> Result<(), StoreError>;
    /// Replaces a router's cumulative window for one epoch and environment.
    async fn report(
        &self,
        tenant: &TenantId,
        epoch: u64,
        env: Env,
        router_id: &str,
        window: &Window,
    ) -> Result<(), StoreError>;
    /// Every router's windows for one epoch and environment, merged.
    async fn health(&self, tenant: &TenantId, epoch: u64, env: Env) -> Result<Window, StoreError>;
    /// A channel that ticks when the tenant's routing changes, where the backend can push
    /// (the embedded world, within one process); routers poll otherwise.
    fn watch(&self, _tenant: &TenantId) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// The migrations table: one current migration record per tenant.
#[async_trait]
pub trait Migrations: Send + Sync + Debug {
    /// The tenant's latest migration.
    async fn get(&self, tenant: &TenantId) -> Result<Option<MigrationRecord>, StoreError>;
    /// Stores `rec` if the stored version is still `expected` (`None`: no record), else
    /// `Conflict`. The caller sets `rec.version` to `expected + 1`.
    async fn put(&self, rec: &MigrationRecord, expected: Option<u64>) -> Result<(), StoreError>;
}

/// Finds a system's dataset and feed at a location.
pub trait Locator: Send + Sync + Debug {
    /// The dataset of `system` at `location`.
    fn dataset(&self, system: &str, location: &str) -> Result<Arc<dyn Dataset>, StepError>;
    /// The change feed of `system` at `location`.
    fn feed(&self, system: &str, location: &str) -> Result<Arc<dyn ChangeFeed>, StepError>;
    /// The catalog kind of `system` (which decides whether a schema transform applies).
    fn kind(&self, system: &str) -> Result<lifecycle::SystemKind, StepError>;
}

/// How long a router may go without a heartbeat before it is presumed gone.
pub const ROUTER_LIVENESS: Duration = Duration::from_secs(3);

/// Unix milliseconds now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
