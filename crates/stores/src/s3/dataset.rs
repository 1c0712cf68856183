//! A system's objects at one migration location in S3, with a change feed beside them.
//!
//! Records are the tenant's objects, unchanged, so applications read a migrated bucket
//! directly. The revision rides in user metadata (`x-amz-meta-tl-rev`, absent = 0 for
//! objects written before any migration); a deletion is a zero-byte object flagged
//! `x-amz-meta-tl-deleted`, so a late copy cannot revive it. Every write is conditional
//! (`If-None-Match: *` or `If-Match: <etag>` on what was read), so a replica never takes
//! an older revision over a newer one.
//!
//! S3 has no transaction that could write an object and a feed entry together. The feed is
//! a dense run of objects `<tenant prefix>~feed/<position>`, each created with
//! `If-None-Match: *` *after* its object was stored: a position is taken by exactly one
//! writer, position n+1 is only tried once n exists (so a reader never sees a gap it must
//! wait for), and an entry is visible only after the object it names, so catch-up, which
//! re-reads the object, always reads that write or a newer one. A writer that dies between
//! the two requests has not been acknowledged; its object may reach the target only
//! through verify's repair.

use super::S3TenantStore;
use super::tenant_store::Batch;
use crate::aws::sdk_error;
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use futures::{StreamExt, TryStreamExt, stream};
use lifecycle::catalog::locate;
use lifecycle::{SystemKind, TenantId};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use ports::StoreError;
use ports::migrate::{Change, ChangeFeed, CopiedPage, Dataset, Rec};
use ports::retry::with_backoff;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// Keys from here on hold the feed, under the tenant's prefix, so erasing the tenant
/// erases its feed too. Record keys may not start with it.
const FEED: &str = "~feed/";
/// Every feed key is `~feed/<digits>`; listing after this skips them all ('0' > '/').
const AFTER_FEED: &str = "~feed0";
const META_REV: &str = "tl-rev";
const META_DELETED: &str = "tl-deleted";
/// Lost races a write survives before it reports `Throttled`.
const MAX_RACES: u32 = 64;
/// A copy source is `bucket/key`, the key URL-encoded except for its slashes.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn feed_suffix(seq: u64) -> String {
    format!("{FEED}{seq:020}")
}

/// What a HEAD (or GET) says of an object.
#[derive(Debug, Clone)]
struct Meta {
    rev: u64,
    etag: String,
    deleted: bool,
}

/// The condition a PUT carries.
enum Expect<'a> {
    /// No object at the key.
    Absent,
    /// The object with this ETag.
    Etag(&'a str),
}

/// A system's objects at one location: `bucket`, under the system's tenant prefix.
#[derive(Debug, Clone)]
pub struct S3Dataset {
    client: Client,
    system: String,
    location: String,
    bucket: String,
    prefix: String,
    concurrency: usize,
    /// The last feed position this process saw per tenant: where appends start probing.
    heads: Arc<Mutex<HashMap<String, u64>>>,
    /// Version listing and deletion, shared with erasure (the feed's trim uses them).
    versions: S3TenantStore,
}

impl S3Dataset {
    /// The dataset of `system` at `location`, stored in `bucket` under `prefix` (a tenant
    /// template such as `tenants/{tenant_id}/`); `concurrency` bounds parallel requests.
    pub fn new(
        client: Client,
        system: &str,
        location: &str,
        bucket: &str,
        prefix: &str,
        concurrency: usize,
    ) -> Self {
        Self {
            versions: S3TenantStore::new(
                client.clone(),
                system,
                SystemKind::Objects,
                bucket,
                prefix,
                concurrency,
            ),
            client,
            system: system.to_owned(),
            location: location.to_owned(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            concurrency: concurrency.max(1),
            heads: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn object(&self, tenant: &TenantId, key: &str) -> String {
        format!("{}{key}", locate(&self.prefix, tenant))
    }

    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        if key.starts_with(FEED) || key.is_empty() {
            return Err(StoreError::Config(format!(
                "system {}: record key {key:?} is empty or starts with {FEED}, which holds the change feed",
                self.system
            )));
        }
        Ok(())
    }

    async fn head_object(&self, object: &str) -> Result<Option<Meta>, StoreError> {
        with_backoff(|| async {
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(object)
                .send()
                .await
            {
                Ok(out) => Ok(Some(meta(
                    out.metadata(),
                    out.e_tag(),
                    out.content_length(),
                )?)),
                Err(e) if status(&e) == Some(404) => Ok(None),
                Err(e) => Err(sdk_error("HeadObject", e)),
            }
        })
        .await
    }

    async fn get_object(&self, object: &str) -> Result<Option<(Meta, Vec<u8>)>, StoreError> {
        with_backoff(|| async {
            match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(object)
                .send()
                .await
            {
                Ok(out) => {
                    let m = meta(out.metadata(), out.e_tag(), out.content_length())?;
                    let body = out
                        .body
                        .collect()
                        .await
                        .map_err(|e| StoreError::Unavailable(format!("GetObject body: {e}")))?;
                    Ok(Some((m, body.into_bytes().to_vec())))
                }
                Err(e) if status(&e) == Some(404) => Ok(None),
                Err(e) => Err(sdk_error("GetObject", e)),
            }
        })
        .await
    }

    /// A conditional PUT; false when the condition no longer held (someone wrote first).
    async fn put_if(
        &self,
        object: &str,
        body: &[u8],
        metadata: &[(&str, String)],
        expect: Expect<'_>,
    ) -> Result<bool, StoreError> {
        with_backoff(|| async {
            let mut req = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(object)
                .body(ByteStream::from(body.to_vec()));
            for (k, v) in metadata {
                req = req.metadata(*k, v);
            }
            req = match expect {
                Expect::Absent => req.if_none_match("*"),
                Expect::Etag(e) => req.if_match(e),
            };
            match req.send().await {
                Ok(_) => Ok(true),
                // 412: the condition failed; 409: a concurrent conditional write won;
                // 404: the object If-Match named is gone.
                Err(e) if matches!(status(&e), Some(412 | 409 | 404)) => Ok(false),
                Err(e) => Err(sdk_error("PutObject", e)),
            }
        })
        .await
    }

    async fn put_rec(
        &self,
        object: &str,
        rec: &Rec,
        expect: Expect<'_>,
    ) -> Result<bool, StoreError> {
        let mut md = vec![(META_REV, rec.rev.to_string())];
        if rec.body.is_none() {
            md.push((META_DELETED, "1".to_owned()));
        }
        self.put_if(object, rec.body.as_deref().unwrap_or_default(), &md, expect)
            .await
    }

    /// Up to `limit` record keys (relative to the tenant prefix) after `after` and, when
    /// `until` is set, not after it; the feed is skipped.
    async fn list_keys(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        until: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let prefix = locate(&self.prefix, tenant);
        let mut keys = Vec::new();
        let mut start = after.map(|a| format!("{prefix}{a}"));
        while keys.len() < limit {
            let out = with_backoff(|| async {
                self.client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(&prefix)
                    .set_start_after(start.clone())
                    .max_keys((limit - keys.len()).min(1000) as i32)
                    .send()
                    .await
                    .map_err(|e| sdk_error("ListObjectsV2", e))
            })
            .await?;
            let mut last = None;
            for o in out.contents() {
                let Some(k) = o.key() else { continue };
                last = Some(k.to_owned());
                let rel = &k[prefix.len().min(k.len())..];
                if until.is_some_and(|u| rel > u) {
                    return Ok(keys);
                }
                if rel.starts_with(FEED) {
                    last = Some(format!("{prefix}{AFTER_FEED}"));
                    break;
                }
                keys.push(rel.to_owned());
            }
            match last {
                Some(l) if out.is_truncated() == Some(true) || l.ends_with(AFTER_FEED) => {
                    start = Some(l)
                }
                _ => break,
            }
        }
        Ok(keys)
    }

    fn feed_object(&self, tenant: &TenantId, seq: u64) -> String {
        self.object(tenant, &feed_suffix(seq))
    }

    async fn feed_exists(&self, tenant: &TenantId, seq: u64) -> Result<bool, StoreError> {
        Ok(self
            .head_object(&self.feed_object(tenant, seq))
            .await?
            .is_some())
    }

    fn hint(&self, tenant: &TenantId) -> u64 {
        self.heads
            .lock()
            .map(|h| h.get(tenant.as_str()).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn remember(&self, tenant: &TenantId, seq: u64) {
        if let Ok(mut h) = self.heads.lock() {
            let e = h.entry(tenant.as_str().to_owned()).or_insert(0);
            *e = (*e).max(seq);
        }
    }

    /// The first position still on the feed (trim removes the ones before), 0 when empty.
    async fn feed_floor(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let prefix = self.object(tenant, FEED);
        let out = with_backoff(|| async {
            self.client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .max_keys(1)
                .send()
                .await
                .map_err(|e| sdk_error("ListObjectsV2", e))
        })
        .await?;
        Ok(out
            .contents()
            .first()
            .and_then(|o| o.key())
            .and_then(|k| k.strip_prefix(&prefix))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    }

    /// The last position of the dense run that starts at `from` (which exists, or is 0):
    /// gallop forward with HEADs, then bisect, so a far-behind hint costs O(log n).
    async fn gallop(&self, tenant: &TenantId, from: u64) -> Result<u64, StoreError> {
        let (mut lo, mut step) = (from, 1u64);
        let hi = loop {
            let probe = lo + step;
            if self.feed_exists(tenant, probe).await? {
                lo = probe;
                step = step.saturating_mul(2);
            } else {
                break probe;
            }
        };
        let mut hi = hi;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.feed_exists(tenant, mid).await? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    async fn find_head(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let hint = self.hint(tenant);
        let from = if hint > 0 && self.feed_exists(tenant, hint).await? {
            hint
        } else {
            self.feed_floor(tenant).await?
        };
        let head = self.gallop(tenant, from).await?;
        self.remember(tenant, head);
        Ok(head)
    }

    /// Takes the next feed position for `key`, after its object was stored.
    async fn append(&self, tenant: &TenantId, key: &str) -> Result<u64, StoreError> {
        let mut seq = self.hint(tenant) + 1;
        if seq == 1 {
            seq = self.find_head(tenant).await? + 1;
        }
        for race in 0..MAX_RACES {
            if self
                .put_if(
                    &self.feed_object(tenant, seq),
                    key.as_bytes(),
                    &[],
                    Expect::Absent,
                )
                .await?
            {
                self.remember(tenant, seq);
                return Ok(seq);
            }
            // Taken: the head moved on; step by one at first, then look it up.
            seq = if race < 2 {
                seq + 1
            } else {
                self.gallop(tenant, seq).await? + 1
            };
        }
        Err(StoreError::Throttled(format!(
            "system {}: feed append lost {MAX_RACES} races",
            self.system
        )))
    }

    /// Copies `key` from `src` by CopyObject when `src` holds a newer revision (or this
    /// location holds nothing and `absent` says so); true when copied.
    async fn copy_one(
        &self,
        src: &S3Dataset,
        tenant: &TenantId,
        key: &str,
        absent: bool,
    ) -> Result<bool, StoreError> {
        let (from, to) = (src.object(tenant, key), self.object(tenant, key));
        if !absent {
            let (Some(s), Some(t)) = (src.head_object(&from).await?, self.head_object(&to).await?)
            else {
                return Ok(false);
            };
            if s.rev <= t.rev {
                return Ok(false);
            }
        }
        let source = format!("{}/{}", src.bucket, utf8_percent_encode(&from, COPY_SOURCE));
        with_backoff(|| async {
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(&to)
                .copy_source(&source)
                .send()
                .await
                .map(|_| true)
                .map_err(|e| sdk_error("CopyObject", e))
        })
        .await
    }
}

fn status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

fn meta(
    md: Option<&HashMap<String, String>>,
    etag: Option<&str>,
    len: Option<i64>,
) -> Result<Meta, StoreError> {
    let rev = match md.and_then(|m| m.get(META_REV)) {
        Some(v) => v
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("object revision {v:?} is not a number")))?,
        None => 0,
    };
    let deleted = md.is_some_and(|m| m.contains_key(META_DELETED)) && len.unwrap_or(0) == 0;
    Ok(Meta {
        rev,
        etag: etag.unwrap_or_default().to_owned(),
        deleted,
    })
}

#[async_trait]
impl Dataset for S3Dataset {
    fn system(&self) -> &str {
        &self.system
    }

    fn location(&self) -> &str {
        &self.location
    }

    async fn provision(&self, _tenant: &TenantId) -> Result<bool, StoreError> {
        // Buckets are infrastructure (infra/template.yaml, versioned there): check, never
        // create. A tenant prefix needs nothing made.
        with_backoff(|| async {
            match self.client.head_bucket().bucket(&self.bucket).send().await {
                Ok(_) => Ok(false),
                Err(e) if status(&e) == Some(404) => Err(StoreError::Config(format!(
                    "system {}: bucket {} for location {} does not exist; create it (versioned) beside the home bucket",
                    self.system, self.bucket, self.location
                ))),
                Err(e) => Err(sdk_error("HeadBucket", e)),
            }
        })
        .await
    }

    async fn provision_like(
        &self,
        tenant: &TenantId,
        source: &dyn Dataset,
        tags: &[(String, String)],
    ) -> Result<bool, StoreError> {
        let src = source.as_any().and_then(|a| a.downcast_ref::<S3Dataset>());
        let Some(src) = src.filter(|s| s.bucket != self.bucket) else {
            return self.provision(tenant).await;
        };
        let want = super::provision::shape(&src.client, &src.bucket)
            .await?
            .ok_or_else(|| {
                StoreError::Config(format!(
                    "system {}: the source bucket {} does not exist",
                    self.system, src.bucket
                ))
            })?;
        let region = self.client.config().region().map(|r| r.as_ref().to_owned());
        super::provision::ensure(&self.client, region.as_deref(), &self.bucket, &want, tags).await
    }

    async fn read(&self, tenant: &TenantId, key: &str) -> Result<Option<Rec>, StoreError> {
        self.check_key(key)?;
        Ok(self
            .get_object(&self.object(tenant, key))
            .await?
            .map(|(m, body)| Rec {
                key: key.to_owned(),
                rev: m.rev,
                body: (!m.deleted).then_some(body),
            }))
    }

    async fn write(
        &self,
        tenant: &TenantId,
        key: &str,
        body: Option<&[u8]>,
    ) -> Result<u64, StoreError> {
        self.check_key(key)?;
        let object = self.object(tenant, key);
        for _ in 0..MAX_RACES {
            let held = self.head_object(&object).await?;
            let rec = Rec {
                key: key.to_owned(),
                rev: held.as_ref().map_or(0, |m| m.rev) + 1,
                body: body.map(<[u8]>::to_vec),
            };
            let expect = match &held {
                Some(m) => Expect::Etag(&m.etag),
                None => Expect::Absent,
            };
            if self.put_rec(&object, &rec, expect).await? {
                self.append(tenant, key).await?;
                return Ok(rec.rev);
            }
        }
        Err(StoreError::Throttled(format!(
            "system {}: a write lost {MAX_RACES} races",
            self.system
        )))
    }

    async fn apply(
        &self,
        tenant: &TenantId,
        rec: &Rec,
        replace_equal: bool,
    ) -> Result<bool, StoreError> {
        self.check_key(&rec.key)?;
        let object = self.object(tenant, &rec.key);
        for _ in 0..MAX_RACES {
            let held = self.head_object(&object).await?;
            let expect = match &held {
                Some(m) if rec.rev < m.rev || (rec.rev == m.rev && !replace_equal) => {
                    return Ok(false);
                }
                Some(m) => Expect::Etag(&m.etag),
                None => Expect::Absent,
            };
            if self.put_rec(&object, rec, expect).await? {
                return Ok(true);
            }
        }
        Err(StoreError::Throttled(format!(
            "system {}: a replica write lost {MAX_RACES} races",
            self.system
        )))
    }

    async fn apply_many(&self, tenant: &TenantId, recs: &[Rec]) -> Result<u64, StoreError> {
        let applied: Vec<bool> = stream::iter(recs.iter().cloned())
            .map(|r| async move { self.apply(tenant, &r, false).await })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        Ok(applied.into_iter().filter(|a| *a).count() as u64)
    }

    async fn scan(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Rec>, StoreError> {
        let keys = self.list_keys(tenant, after, None, limit).await?;
        let recs: Vec<Option<Rec>> = stream::iter(keys)
            .map(|k| async move { Dataset::read(self, tenant, &k).await })
            .buffered(self.concurrency)
            .try_collect()
            .await?;
        // A key deleted between the list and the read has nothing to copy.
        Ok(recs.into_iter().flatten().collect())
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    async fn copy_page_from(
        &self,
        tenant: &TenantId,
        source: &dyn Dataset,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Option<CopiedPage>, StoreError> {
        let Some(src) = source.as_any().and_then(|a| a.downcast_ref::<S3Dataset>()) else {
            return Ok(None);
        };
        let keys = src.list_keys(tenant, after, None, limit).await?;
        let Some(last) = keys.last().cloned() else {
            return Ok(Some(CopiedPage::default()));
        };
        // One listing of the same key range here tells which keys are absent (the common
        // case: one CopyObject each, no HEAD); the rest compare revisions first.
        let present: BTreeSet<String> = self
            .list_keys(tenant, after, Some(&last), usize::MAX)
            .await?
            .into_iter()
            .collect();
        let copied: Vec<bool> = stream::iter(keys.iter().cloned())
            .map(|k| {
                let absent = !present.contains(&k);
                async move { self.copy_one(src, tenant, &k, absent).await }
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        Ok(Some(CopiedPage {
            listed: keys.len(),
            copied: copied.into_iter().filter(|c| *c).count() as u64,
            last: Some(last),
        }))
    }
}

#[async_trait]
impl ChangeFeed for S3Dataset {
    async fn head(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        self.find_head(tenant).await
    }

    async fn read(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let prefix = self.object(tenant, FEED);
        let out = with_backoff(|| async {
            self.client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .start_after(self.feed_object(tenant, after))
                .max_keys(limit.clamp(1, 1000) as i32)
                .send()
                .await
                .map_err(|e| sdk_error("ListObjectsV2", e))
        })
        .await?;
        let mut seqs = Vec::new();
        for o in out.contents() {
            let Some(seq) = o
                .key()
                .and_then(|k| k.strip_prefix(&prefix))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            // Positions are dense; stop at a gap rather than pass a position being taken.
            if seqs.last().is_some_and(|p: &u64| seq != p + 1) {
                break;
            }
            seqs.push(seq);
        }
        let changes: Vec<Option<Change>> = stream::iter(seqs)
            .map(|seq| async move {
                Ok::<_, StoreError>(self.get_object(&self.feed_object(tenant, seq)).await?.map(
                    |(_, key)| Change {
                        seq,
                        key: String::from_utf8_lossy(&key).into_owned(),
                    },
                ))
            })
            .buffered(self.concurrency)
            .try_collect()
            .await?;
        // An entry trimmed between the list and the read ends the page there.
        Ok(changes.into_iter().map_while(|c| c).collect())
    }

    async fn trim(&self, tenant: &TenantId, upto: u64) -> Result<(), StoreError> {
        let prefix = self.object(tenant, FEED);
        let mut markers = (None, None);
        loop {
            let (page, next) = self
                .versions
                .list_page(&prefix, markers.0, markers.1)
                .await?;
            let old: Batch = page
                .into_iter()
                .filter(|(k, _)| {
                    k.strip_prefix(&prefix)
                        .and_then(|s| s.parse::<u64>().ok())
                        .is_some_and(|s| s < upto)
                })
                .collect();
            if !old.is_empty() {
                self.versions.delete_batch(old).await?;
            }
            match next {
                Some(m) => markers = m,
                None => return Ok(()),
            }
        }
    }
}
