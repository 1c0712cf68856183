//! A CloudWatch Logs system's migration dataset and change feed at one location.
//!
//! A tenant's records at a location live in one stream of its own, `tenant-lifecycle`,
//! in its own group (`/app-green/tenants/{tenant_id}`) or under its own stream prefix
//! (`tenant-{tenant_id}/tenant-lifecycle`); at home it is the stream the erasure port's
//! `put` writes. Every write appends one JSON event
//! `{"tenant_id", "key", "rev", "body_b64" | "deleted": true, "seq"}`: `seq` (the feed
//! position) only on a primary write, the body always base64 so it comes back bit for bit.
//! A key's record is its event of the highest revision (of two with one revision, the
//! later timestamp), so a replica write that arrives late never hides a newer one and
//! reading the events again in any order gives the same records. Events the erasure port
//! wrote without a revision are records of revision 0. `trim` appends a marker
//! `{"tenant_id", "trim", "head"}`; the head never goes back, so positions are not reused.
//!
//! CloudWatch Logs has no conditional writes and cannot be queried by key, so this
//! process keeps an index of each stream (every key's revision and body, the feed
//! positions kept), shared by every dataset of the system: built by reading the stream
//! once, then brought up to date from the last forward token before every call, so
//! events other processes appended are seen. Within the process, calls on one stream are
//! serialized. Two processes writing one tenant's primary at once can give two writes of
//! a key one revision, or two writes one feed position (catch-up then misses one): migrate
//! a CloudWatch Logs system only while one process writes each tenant's primary (the
//! router's rule), as with S3 Vectors. The index holds the tenant's records in memory.
//!
//! Limits met here: an event is at most 256 KiB (a record whose event would be larger is
//! refused before anything is written), a PutLogEvents call at most 1,000 events and
//! 1 MB, in time order; every event is stamped now (a copy is new at its location), so the
//! 14-day and 2-hour windows hold. A group's retention must outlast its records: an
//! expired event is a lost record.

use super::config::Location;
use super::tenant_store::{CloudWatchTenantStore, Place, now_ms};
use crate::aws::sdk_error;
use async_trait::async_trait;
use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lifecycle::TenantId;
use ports::StoreError;
use ports::migrate::{Change, ChangeFeed, Dataset, Rec};
use ports::retry::with_backoff;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use tokio::sync::Mutex;

/// The largest event CloudWatch Logs takes: 256 KiB, less the 26 bytes it counts per event.
pub const MAX_EVENT_BYTES: usize = 262_144 - 26;

/// A key's record as this process knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    rev: u64,
    ts: i64,
    body: Option<Vec<u8>>,
}

/// What this process knows of one stream of records.
#[derive(Debug, Default)]
struct Index {
    /// The forward token after the last event read (none: read from the head).
    token: Option<String>,
    /// Every key's record, tombstones included.
    records: BTreeMap<String, Held>,
    /// Feed positions kept, to the key written.
    changes: BTreeMap<u64, String>,
    /// The last position given.
    head: u64,
    /// The lowest position kept after a trim.
    low: u64,
}

/// One event of a record stream as written (by this dataset, or by the erasure port's
/// `put` and `delete`, which write no revision).
#[derive(Debug, Deserialize)]
struct Event {
    tenant_id: Option<String>,
    key: Option<String>,
    #[serde(default)]
    rev: u64,
    body: Option<String>,
    body_b64: Option<String>,
    #[serde(default)]
    deleted: bool,
    seq: Option<u64>,
    trim: Option<u64>,
    head: Option<u64>,
}

impl Index {
    /// Takes one event into the index; the same event twice, or events in another
    /// order, leave the same index.
    fn absorb(&mut self, t: &TenantId, ts: i64, message: &str) -> Result<(), StoreError> {
        // Lines that are not the tool's events (an application's own) are no records.
        let Ok(e) = serde_json::from_str::<Event>(message) else {
            return Ok(());
        };
        if e.tenant_id.as_deref() != Some(t.as_str()) {
            return Ok(());
        }
        if let Some(upto) = e.trim {
            self.head = self.head.max(e.head.unwrap_or(0)).max(upto);
            self.low = self.low.max(upto);
            self.changes = self.changes.split_off(&self.low);
            return Ok(());
        }
        let Some(key) = e.key else {
            return Ok(());
        };
        let body = if e.deleted {
            None
        } else if let Some(b) = e.body_b64 {
            Some(STANDARD.decode(b.as_bytes()).map_err(|err| {
                StoreError::Corrupt(format!(
                    "tenant {t}: the log event of record {key:?} holds a body that is not base64: {err}"
                ))
            })?)
        } else {
            e.body.map(String::into_bytes)
        };
        if let Some(seq) = e.seq {
            self.head = self.head.max(seq);
            if seq >= self.low {
                self.changes.insert(seq, key.clone());
            }
        }
        let newer = self
            .records
            .get(&key)
            .is_none_or(|h| (e.rev, ts) >= (h.rev, h.ts));
        if newer {
            self.records.insert(
                key,
                Held {
                    rev: e.rev,
                    ts,
                    body,
                },
            );
        }
        Ok(())
    }
}

/// The record streams this process has read, shared by every dataset of one system.
#[derive(Debug, Clone, Default)]
pub struct SharedIndex(Arc<std::sync::Mutex<BTreeMap<Place, Arc<Mutex<Index>>>>>);

impl SharedIndex {
    fn of(&self, p: &Place) -> Arc<Mutex<Index>> {
        // A poisoned map still holds whole entries: each is replaced or read under its own lock.
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(p.clone()).or_default().clone()
    }
}

/// A system's log records at one location, with the change feed in the same stream.
#[derive(Debug, Clone)]
pub struct CloudWatchDataset {
    store: CloudWatchTenantStore,
    location: String,
    at: Location,
    shared: SharedIndex,
}

/// The home dataset and one per migration location of `store`'s system, sharing one
/// index; a configuration error when the tenant has no place of its own at home.
pub fn datasets(
    store: &CloudWatchTenantStore,
) -> Result<BTreeMap<String, CloudWatchDataset>, StoreError> {
    let config = store.config();
    let home = config.home().ok_or_else(|| {
        StoreError::Config(format!(
            "system {}: log events in shared streams are not migrated; list a group under groups or a stream prefix under stream_groups for the tenant's records",
            ports::TenantStore::name(store)
        ))
    })?;
    let shared = SharedIndex::default();
    let mut out = BTreeMap::new();
    let places = std::iter::once((lifecycle::migration::HOME.to_owned(), home))
        .chain(config.locations.clone());
    for (loc, at) in places {
        out.insert(
            loc.clone(),
            CloudWatchDataset::new(store.clone(), &loc, at, &shared),
        );
    }
    Ok(out)
}

impl CloudWatchDataset {
    /// The dataset of `store`'s system at `location`, whose records are in `at`; datasets
    /// made with one `shared` index serialize their writes to a stream together.
    pub fn new(
        store: CloudWatchTenantStore,
        location: &str,
        at: Location,
        shared: &SharedIndex,
    ) -> Self {
        Self {
            store,
            location: location.to_owned(),
            at,
            shared: shared.clone(),
        }
    }

    fn place(&self, t: &TenantId) -> Place {
        let (group, stream) = self.at.place(t);
        Place { group, stream }
    }

    /// Brings the index up to date with the stream: every event after its token. A
    /// stream that is gone (erased) leaves an empty index.
    async fn refresh(&self, t: &TenantId, p: &Place, ix: &mut Index) -> Result<(), StoreError> {
        loop {
            let token = ix.token.clone();
            let page = with_backoff(|| async {
                match self
                    .store
                    .client()
                    .get_log_events()
                    .log_group_name(&p.group)
                    .log_stream_name(&p.stream)
                    .start_from_head(true)
                    .set_next_token(token.clone())
                    .send()
                    .await
                {
                    Ok(o) => Ok(Some(o)),
                    Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
                    // A token of a stream deleted and made again: read the new one whole.
                    Err(e) if token.is_some() && e.code() == Some("InvalidParameterException") => {
                        Ok(None)
                    }
                    Err(e) => Err(sdk_error("GetLogEvents", e)),
                }
            })
            .await?;
            let Some(page) = page else {
                let stale = ix.token.is_some();
                *ix = Index::default();
                if stale {
                    continue;
                }
                return Ok(());
            };
            for e in page.events() {
                ix.absorb(
                    t,
                    e.timestamp().unwrap_or_default(),
                    e.message().unwrap_or_default(),
                )?;
            }
            let next = page.next_forward_token().map(str::to_owned);
            // The forward token repeats at the end; an empty page before it is not the end.
            if next.is_none() || next == ix.token {
                return Ok(());
            }
            ix.token = next;
        }
    }

    /// The stream's index, up to date, locked for the caller.
    async fn index(
        &self,
        t: &TenantId,
    ) -> Result<(Place, tokio::sync::OwnedMutexGuard<Index>), StoreError> {
        let p = self.place(t);
        let mut ix = self.shared.of(&p).lock_owned().await;
        self.refresh(t, &p, &mut ix).await?;
        Ok((p, ix))
    }

    /// The event that stores `rec` (at feed position `seq` for a primary write), refused
    /// when CloudWatch Logs would not take it.
    fn message(t: &TenantId, rec: &Rec, seq: Option<u64>) -> Result<String, StoreError> {
        let mut e = json!({"tenant_id": t.as_str(), "key": rec.key, "rev": rec.rev});
        match &rec.body {
            Some(b) => e["body_b64"] = json!(STANDARD.encode(b)),
            None => e["deleted"] = json!(true),
        }
        if let Some(s) = seq {
            e["seq"] = json!(s);
        }
        let m = e.to_string();
        if m.len() > MAX_EVENT_BYTES {
            return Err(StoreError::Config(format!(
                "tenant {t}: record {:?} of {} bytes would be a log event of {} bytes; CloudWatch Logs takes at most {MAX_EVENT_BYTES} per event (about {} bytes of body, base64-encoded): keep records this large in another system",
                rec.key,
                rec.body.as_ref().map_or(0, Vec::len),
                m.len(),
                MAX_EVENT_BYTES / 4 * 3 - 200
            )));
        }
        Ok(m)
    }

    /// Appends events to the stream, creating it on first use; then takes them into the
    /// index (on a failure, what did land is read back by the next call's refresh).
    async fn append(
        &self,
        t: &TenantId,
        p: &Place,
        ix: &mut Index,
        messages: Vec<String>,
    ) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        // One timestamp per call: one key appears once in it, so no tie is left to order.
        let ts = now_ms();
        let events: Vec<(i64, String)> = messages.into_iter().map(|m| (ts, m)).collect();
        match self.store.put_events(p, events.clone()).await {
            Err(StoreError::Config(m)) if m.contains("ResourceNotFoundException") => {
                self.store.ensure(p).await?;
                self.store.put_events(p, events.clone()).await?;
            }
            other => other?,
        }
        for (ts, m) in &events {
            ix.absorb(t, *ts, m)?;
        }
        Ok(())
    }

    /// Stores the records newer than what is held (or equal, with `replace_equal`).
    async fn apply_batch(
        &self,
        t: &TenantId,
        recs: &[Rec],
        replace_equal: bool,
    ) -> Result<u64, StoreError> {
        let (p, mut ix) = self.index(t).await?;
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
        let mut messages = Vec::new();
        for (k, r) in latest {
            let newer = ix
                .records
                .get(k)
                .is_none_or(|h| r.rev > h.rev || (replace_equal && r.rev == h.rev));
            if newer {
                messages.push(Self::message(t, r, None)?);
            }
        }
        let n = messages.len() as u64;
        self.append(t, &p, &mut ix, messages).await?;
        Ok(n)
    }
}

fn rec(key: &str, h: &Held) -> Rec {
    Rec {
        key: key.to_owned(),
        rev: h.rev,
        body: h.body.clone(),
    }
}

/// True when the service said the group or stream is already there.
fn exists<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ResourceAlreadyExistsException")
}

#[async_trait]
impl Dataset for CloudWatchDataset {
    fn system(&self) -> &str {
        ports::TenantStore::name(&self.store)
    }

    fn location(&self) -> &str {
        &self.location
    }

    async fn provision(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let p = self.place(tenant);
        let client = self.store.client();
        let group = with_backoff(|| async {
            match client
                .create_log_group()
                .log_group_name(&p.group)
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if exists(&e) => Ok(false),
                Err(e) => Err(sdk_error("CreateLogGroup", e)),
            }
        })
        .await?;
        let stream = with_backoff(|| async {
            match client
                .create_log_stream()
                .log_group_name(&p.group)
                .log_stream_name(&p.stream)
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if exists(&e) => Ok(false),
                Err(e) => Err(sdk_error("CreateLogStream", e)),
            }
        })
        .await?;
        Ok(group || stream)
    }

    async fn read(&self, tenant: &TenantId, key: &str) -> Result<Option<Rec>, StoreError> {
        let (_, ix) = self.index(tenant).await?;
        Ok(ix.records.get(key).map(|h| rec(key, h)))
    }

    /// One event at the next revision and the next feed position.
    async fn write(
        &self,
        tenant: &TenantId,
        key: &str,
        body: Option<&[u8]>,
    ) -> Result<u64, StoreError> {
        let (p, mut ix) = self.index(tenant).await?;
        let r = Rec {
            key: key.to_owned(),
            rev: ix.records.get(key).map_or(0, |h| h.rev) + 1,
            body: body.map(<[u8]>::to_vec),
        };
        // Checked before anything is written, so a refused body takes no position.
        let m = Self::message(tenant, &r, Some(ix.head + 1))?;
        self.append(tenant, &p, &mut ix, vec![m]).await?;
        Ok(r.rev)
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

    /// A page of the index in key order.
    async fn scan(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Rec>, StoreError> {
        let (_, ix) = self.index(tenant).await?;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(ix
            .records
            .range::<str, _>((from, Bound::Unbounded))
            .take(limit)
            .map(|(k, h)| rec(k, h))
            .collect())
    }
}

#[async_trait]
impl ChangeFeed for CloudWatchDataset {
    async fn head(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        Ok(self.index(tenant).await?.1.head)
    }

    async fn read(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let (_, ix) = self.index(tenant).await?;
        Ok(ix
            .changes
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(seq, key)| Change {
                seq: *seq,
                key: key.clone(),
            })
            .collect())
    }

    /// Appends a trim marker; the positions before `upto` are forgotten.
    async fn trim(&self, tenant: &TenantId, upto: u64) -> Result<(), StoreError> {
        let (p, mut ix) = self.index(tenant).await?;
        let upto = upto.min(ix.head);
        if upto <= ix.low {
            return Ok(());
        }
        let m = json!({"tenant_id": tenant.as_str(), "trim": upto, "head": ix.head}).to_string();
        self.append(tenant, &p, &mut ix, vec![m]).await
    }
}

#[cfg(test)]
mod tests {
    use super::Index;
    use lifecycle::TenantId;

    fn t() -> TenantId {
        TenantId::parse("t1").expect("t")
    }

    #[test]
    fn the_highest_revision_wins_in_any_order_and_twice_is_once() {
        let events = [
            (
                5,
                r#"{"tenant_id":"t1","key":"a","rev":1,"body_b64":"AA==","seq":1}"#,
            ),
            (6, r#"{"tenant_id":"t1","key":"a","rev":3,"deleted":true}"#),
            (
                7,
                r#"{"tenant_id":"t1","key":"a","rev":2,"body_b64":"AQ==","seq":2}"#,
            ),
            (8, r#"{"tenant_id":"t1","key":"b","body":"plain"}"#),
            (
                9,
                r#"{"tenant_id":"t2","key":"c","rev":9,"body_b64":"AA=="}"#,
            ),
            (10, "an application's own line"),
        ];
        let mut forward = Index::default();
        for (ts, m) in events {
            forward.absorb(&t(), ts, m).expect("absorb");
        }
        let mut backward = Index::default();
        for (ts, m) in events.iter().rev().chain(events.iter()) {
            backward.absorb(&t(), *ts, m).expect("absorb");
        }
        assert_eq!(forward.records, backward.records);
        assert_eq!(forward.changes, backward.changes);
        let a = &forward.records["a"];
        assert_eq!((a.rev, a.body.clone()), (3, None), "the tombstone of rev 3");
        assert_eq!(forward.records["b"].body.as_deref(), Some(&b"plain"[..]));
        assert!(!forward.records.contains_key("c"), "another tenant's event");
        assert_eq!(forward.head, 2);
    }

    #[test]
    fn a_trim_keeps_the_head_and_later_positions() {
        let mut ix = Index::default();
        for s in 1..=4 {
            let m = format!(r#"{{"tenant_id":"t1","key":"k","rev":{s},"body_b64":"","seq":{s}}}"#);
            ix.absorb(&t(), s as i64, &m).expect("absorb");
        }
        ix.absorb(&t(), 9, r#"{"tenant_id":"t1","trim":3,"head":4}"#)
            .expect("trim");
        assert_eq!(ix.changes.keys().copied().collect::<Vec<_>>(), [3, 4]);
        // An entry read again after the trim stays forgotten.
        ix.absorb(
            &t(),
            1,
            r#"{"tenant_id":"t1","key":"k","rev":1,"body_b64":"","seq":1}"#,
        )
        .expect("again");
        assert_eq!((ix.head, ix.low, ix.changes.len()), (4, 3, 2));
        assert_eq!(ix.records["k"].body.as_deref(), Some(&b""[..]));
    }

    #[test]
    fn a_body_that_is_not_base64_is_corrupt() {
        let e = Index::default()
            .absorb(&t(), 1, r#"{"tenant_id":"t1","key":"k","body_b64":"@@"}"#)
            .expect_err("corrupt");
        assert!(e.to_string().contains("not base64"), "{e}");
    }
}
