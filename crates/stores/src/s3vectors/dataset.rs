//! An S3 Vectors system's migration dataset and change feed at one location.
//!
//! A record is the vector of its key in the tenant's index; its revision and, for a
//! deletion, a tombstone mark are reserved keys of the vector's metadata. The change feed
//! is a second index per tenant (`<index>.feed`): one placeholder vector per change, keyed
//! by its zero-padded position and naming the key written, and a counter vector `head`
//! holding the last position given and the lowest one kept after a trim.
//!
//! S3 Vectors has no transactions and no conditional writes, so a write is three calls
//! (counter, feed entry, record: in that order, so a feed entry never lacks the change
//! it announces; catch-up reads the record as it is then) and a replica write is a read
//! then a put. Within one process, writes to a dataset are serialized. Two processes
//! writing the same tenant's primary at once can: give two writes of one key the same
//! revision (the later put wins, the feed holds both), or take the same feed position for
//! writes of two keys (one feed entry overwrites the other, so catch-up misses that
//! change). The router's single-writer-per-key discipline rules out the first, not the
//! second: migrate an S3 Vectors system only while one process writes each tenant's
//! primary. A replica's revision check can likewise lose to a concurrent replica write.
//! Scans are in key order, but ListVectors is not, so a scan page lists every key of the
//! tenant: a bulk copy costs a listing per page.

use super::S3VectorsTenantStore;
use super::body::{
    REV_KEY, TOMBSTONE_KEY, from_vector, number, placeholder, string, to_vector, with_reserved,
};
use async_trait::async_trait;
use aws_sdk_s3vectors::types::{GetOutputVector, PutInputVector};
use aws_smithy_types::{Document, Number};
use lifecycle::TenantId;
use ports::StoreError;
use ports::migrate::{Change, ChangeFeed, Dataset, Rec};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::Mutex;

/// The feed index's counter vector.
const HEAD: &str = "head";
/// The counter's metadata keys: the last position given, the lowest one kept.
const HEAD_KEY: &str = "tenant-lifecycle:head";
const LOW_KEY: &str = "tenant-lifecycle:low";
/// A feed entry's metadata key naming the record key written.
const KEY_KEY: &str = "tenant-lifecycle:key";

/// A system's vectors at one location, with the change feed in a second index.
#[derive(Debug, Clone)]
pub struct S3VectorsDataset {
    store: S3VectorsTenantStore,
    location: String,
    /// Serializes this process's writes, which S3 Vectors cannot make atomic.
    lock: Arc<Mutex<BTreeSet<TenantId>>>,
}

fn pos(n: u64) -> Document {
    Document::Number(Number::PosInt(n))
}

impl S3VectorsDataset {
    /// The dataset of `store`'s system at `location` (`store` writes that location's bucket).
    pub fn new(store: S3VectorsTenantStore, location: &str) -> Self {
        Self {
            store,
            location: location.to_owned(),
            lock: Arc::new(Mutex::new(BTreeSet::new())),
        }
    }

    /// Creates the tenant's indexes, or refuses ones of another dimension or metric (a
    /// vector means nothing under another); true when one was created. `checked` holds
    /// the tenants already seen by this dataset.
    async fn ensure(
        &self,
        t: &TenantId,
        checked: &mut BTreeSet<TenantId>,
    ) -> Result<bool, StoreError> {
        if checked.contains(t) {
            return Ok(false);
        }
        let layout = self.store.layout();
        let mut created = false;
        for index in [layout.index(t)?, layout.feed(t)?] {
            match self.store.shape(&index).await? {
                None => {
                    self.store.create_index(&index).await?;
                    created = true;
                }
                Some((dim, metric)) => {
                    if dim != layout.dimension as i32 || metric != layout.distance.name() {
                        return Err(StoreError::Config(format!(
                            "index {}/{index} holds {dim} dimensions by {metric}, the catalog says {} by {}; copy into an index of the same shape",
                            self.store.bucket(),
                            layout.dimension,
                            layout.distance.name()
                        )));
                    }
                }
            }
        }
        checked.insert(t.clone());
        Ok(created)
    }

    async fn records(&self, t: &TenantId, keys: &[String]) -> Result<Vec<Rec>, StoreError> {
        let got = self
            .store
            .get_many(&self.store.layout().index(t)?, keys)
            .await?;
        got.iter().map(rec).collect()
    }

    /// The vector stored for `rec`.
    fn vector(&self, rec: &Rec) -> Result<PutInputVector, StoreError> {
        let dim = self.store.layout().dimension;
        let rev = (REV_KEY, pos(rec.rev));
        match &rec.body {
            Some(b) => with_reserved(to_vector(&rec.key, b, dim)?, &[rev]),
            None => placeholder(&rec.key, dim, &[rev, (TOMBSTONE_KEY, Document::Bool(true))]),
        }
    }

    /// The feed's counter: (last position given, lowest kept).
    async fn counter(&self, t: &TenantId) -> Result<(u64, u64), StoreError> {
        let got = self
            .store
            .get_many(&self.store.layout().feed(t)?, &[HEAD.to_owned()])
            .await?;
        Ok(got.first().map_or((0, 0), |v| {
            (
                number(v.metadata(), HEAD_KEY),
                number(v.metadata(), LOW_KEY),
            )
        }))
    }

    async fn set_counter(&self, t: &TenantId, head: u64, low: u64) -> Result<(), StoreError> {
        let v = placeholder(
            HEAD,
            self.store.layout().dimension,
            &[(HEAD_KEY, pos(head)), (LOW_KEY, pos(low))],
        )?;
        self.store
            .put_all(&self.store.layout().feed(t)?, &[v])
            .await
    }

    /// Applies the records newer than what is held (or equal, with `replace_equal`), in
    /// batches of reads then puts.
    async fn apply_batch(
        &self,
        t: &TenantId,
        recs: &[Rec],
        replace_equal: bool,
    ) -> Result<u64, StoreError> {
        let mut checked = self.lock.lock().await;
        self.ensure(t, &mut checked).await?;
        // The last record of a key wins within one call, as applying them in turn would.
        let mut latest: BTreeMap<&str, &Rec> = BTreeMap::new();
        for r in recs {
            latest
                .entry(r.key.as_str())
                .and_modify(|held| {
                    if r.rev > held.rev || (replace_equal && r.rev == held.rev) {
                        *held = r;
                    }
                })
                .or_insert(r);
        }
        let keys: Vec<String> = latest.keys().map(|k| (*k).to_owned()).collect();
        let held: BTreeMap<String, u64> = self
            .records(t, &keys)
            .await?
            .into_iter()
            .map(|r| (r.key, r.rev))
            .collect();
        let mut puts = Vec::new();
        for (k, r) in &latest {
            let newer = match held.get(*k) {
                None => true,
                Some(h) => r.rev > *h || (replace_equal && r.rev == *h),
            };
            if newer {
                puts.push(self.vector(r)?);
            }
        }
        self.store
            .put_all(&self.store.layout().index(t)?, &puts)
            .await?;
        Ok(puts.len() as u64)
    }
}

/// A stored vector as a record: revision 0 for vectors written before migration.
fn rec(v: &GetOutputVector) -> Result<Rec, StoreError> {
    Ok(Rec {
        key: v.key().to_owned(),
        rev: number(v.metadata(), REV_KEY),
        body: from_vector(v.data(), v.metadata())?,
    })
}

#[async_trait]
impl Dataset for S3VectorsDataset {
    fn system(&self) -> &str {
        ports::TenantStore::name(&self.store)
    }

    fn location(&self) -> &str {
        &self.location
    }

    async fn provision(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let mut checked = self.lock.lock().await;
        checked.remove(tenant);
        self.ensure(tenant, &mut checked).await
    }

    async fn read(&self, tenant: &TenantId, key: &str) -> Result<Option<Rec>, StoreError> {
        Ok(self.records(tenant, &[key.to_owned()]).await?.pop())
    }

    /// Counter, feed entry, then the record (see the module's note on concurrency).
    async fn write(
        &self,
        tenant: &TenantId,
        key: &str,
        body: Option<&[u8]>,
    ) -> Result<u64, StoreError> {
        let mut checked = self.lock.lock().await;
        self.ensure(tenant, &mut checked).await?;
        let rec = Rec {
            key: key.to_owned(),
            rev: self
                .records(tenant, &[key.to_owned()])
                .await?
                .pop()
                .map_or(0, |r| r.rev)
                + 1,
            body: body.map(<[u8]>::to_vec),
        };
        // Checked before anything is written, so a refused body leaves no feed entry.
        let vector = self.vector(&rec)?;
        let (head, low) = self.counter(tenant).await?;
        let seq = head + 1;
        self.set_counter(tenant, seq, low).await?;
        let entry = placeholder(
            &format!("{seq:020}"),
            self.store.layout().dimension,
            &[(KEY_KEY, Document::String(key.to_owned()))],
        )?;
        let feed = self.store.layout().feed(tenant)?;
        self.store.put_all(&feed, &[entry]).await?;
        self.store
            .put_all(&self.store.layout().index(tenant)?, &[vector])
            .await?;
        Ok(rec.rev)
    }

    async fn apply(
        &self,
        tenant: &TenantId,
        rec: &Rec,
        replace_equal: bool,
    ) -> Result<bool, StoreError> {
        Ok(self
            .apply_batch(tenant, std::slice::from_ref(rec), replace_equal)
            .await?
            > 0)
    }

    async fn apply_many(&self, tenant: &TenantId, recs: &[Rec]) -> Result<u64, StoreError> {
        self.apply_batch(tenant, recs, false).await
    }

    async fn apply_many_exclusive(
        &self,
        tenant: &TenantId,
        recs: &[Rec],
    ) -> Result<u64, StoreError> {
        self.apply_batch(tenant, recs, false).await
    }

    /// Lists every key (ListVectors is unordered), then reads one page in key order.
    async fn scan(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Rec>, StoreError> {
        let mut keys = self
            .store
            .all_keys(&self.store.layout().index(tenant)?)
            .await?;
        keys.sort();
        let page: Vec<String> = keys
            .into_iter()
            .filter(|k| after.is_none_or(|a| k.as_str() > a))
            .take(limit)
            .collect();
        let mut recs = self.records(tenant, &page).await?;
        recs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(recs)
    }
}

#[async_trait]
impl ChangeFeed for S3VectorsDataset {
    async fn head(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        Ok(self.counter(tenant).await?.0)
    }

    /// Reads positions after `after` (from the lowest kept) up to the head by key.
    async fn read(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let (head, low) = self.counter(tenant).await?;
        let feed = self.store.layout().feed(tenant)?;
        let mut out = Vec::new();
        let mut from = after.max(low.saturating_sub(1)) + 1;
        // A position given but never written (a writer failed between the counter and
        // its entry) is a gap: read on until the page is full or the head is reached.
        while out.len() < limit && from <= head {
            let to = head.min(from + (limit - out.len()) as u64 - 1);
            let keys: Vec<String> = (from..=to).map(|s| format!("{s:020}")).collect();
            for v in self.store.get_many(&feed, &keys).await? {
                let (Ok(seq), Some(key)) = (v.key().parse::<u64>(), string(v.metadata(), KEY_KEY))
                else {
                    continue;
                };
                out.push(Change { seq, key });
            }
            from = to + 1;
        }
        out.sort_by_key(|c| c.seq);
        Ok(out)
    }

    async fn trim(&self, tenant: &TenantId, upto: u64) -> Result<(), StoreError> {
        let _held = self.lock.lock().await;
        let (head, low) = self.counter(tenant).await?;
        let upto = upto.min(head);
        if upto <= low.max(1) {
            return Ok(());
        }
        let keys: Vec<String> = (low.max(1)..upto).map(|s| format!("{s:020}")).collect();
        let feed = self.store.layout().feed(tenant)?;
        for chunk in keys.chunks(500) {
            self.store.delete_keys(&feed, chunk).await?;
        }
        self.set_counter(tenant, head, upto).await
    }
}
