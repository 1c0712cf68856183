//! A DynamoDB system's change feed read from the table's DynamoDB Stream.
//!
//! Writes are one conditional `PutItem` each, marked `origin = "w"` (a replica's copies are
//! marked `"c"` and never enter the feed). Catch-up positions must survive between Lambda
//! calls as plain numbers, so the stream is pumped into the same per-tenant journal the
//! journal mode keeps (`~feed/<position>`): each pump step reads up to 96 records of one
//! shard, and appends the tenant's primary-write keys and saves the stream cursor on the
//! feed head item in one `TransactWriteItems` (a `PutItem` when only the cursor moves),
//! conditioned on the head's version, so two pumps never append the same record twice.
//! Within one call a shard is read on from the iterator `GetRecords` returned, so a step
//! costs three requests.
//!
//! A stream is asynchronous, so "drained" is not "everything written": before a catch-up
//! (and so before the flip) the feed writes a barrier item into the tenant's partition and
//! pumps until the stream delivers it. All of a tenant's items share one partition key, so
//! they share one shard lineage, whose records keep the partition's write order.

use super::dataset::HEAD;
use super::{Item, conditional_put, get_item, get_n, n, put_if, put_item_of, s};
use crate::aws::sdk_error;
use aws_sdk_dynamodb::types::TransactWriteItem;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use lifecycle::TenantId;
use lifecycle::catalog::locate;
use ports::StoreError;
use ports::retry::with_backoff;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The barrier item a settle writes.
pub(super) const BARRIER: &str = "~feed-barrier";
/// Marks a primary write (enters the feed) ...
pub(super) const ORIGIN_WRITE: &str = "w";
/// ... a replica's copy (does not) ...
pub(super) const ORIGIN_COPY: &str = "c";
/// ... and a barrier.
const ORIGIN_BARRIER: &str = "b";
/// Stream records per pump step: with the head and the cursor, a transaction stays
/// within DynamoDB's 100 items.
const STEP: i32 = 96;
/// How long a settle waits for the stream to deliver its barrier.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A DynamoDB Streams client, with each table's stream ARN looked up once.
#[derive(Debug, Clone)]
pub struct StreamSource {
    client: aws_sdk_dynamodbstreams::Client,
    arns: Arc<std::sync::Mutex<BTreeMap<String, String>>>,
}

impl StreamSource {
    /// Reads streams with `client`.
    pub fn new(client: aws_sdk_dynamodbstreams::Client) -> Self {
        Self {
            client,
            arns: Arc::new(std::sync::Mutex::new(BTreeMap::new())),
        }
    }

    /// The same source in another region.
    pub fn in_region(&self, region: aws_config::Region) -> Self {
        Self::new(aws_sdk_dynamodbstreams::Client::from_conf(
            self.client.config().to_builder().region(region).build(),
        ))
    }
}

/// Where one tenant's pump stands in each shard.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cursor {
    /// Shard id to the last sequence number consumed; absent = from the shard's start.
    after: BTreeMap<String, String>,
    /// Shards read to their end (closed and drained).
    done: Vec<String>,
    /// The latest barrier tokens that went by (a settle may find its barrier taken by
    /// another pump).
    #[serde(default)]
    barriers: std::collections::VecDeque<String>,
}

/// The head item as one pump read it.
#[derive(Debug, Default)]
struct Saved {
    cursor: Cursor,
    /// The head item's version; `None` before any pump wrote it.
    version: Option<u64>,
    /// The journal's last position.
    head: u64,
}

/// One stream record, as far as the pump cares.
struct StreamRecord {
    seq: String,
    pk: String,
    sk: String,
    origin: Option<String>,
    token: Option<String>,
}

/// What one GetRecords returned.
struct ShardRead {
    records: Vec<StreamRecord>,
    /// Where the next read of the shard starts.
    next: Option<String>,
    /// The shard is closed and was read to its end.
    closed: bool,
}

/// Barrier tokens a cursor remembers.
const BARRIERS_KEPT: usize = 32;
/// Pump steps per call, so a pump keeps up with a busy stream without running forever.
const MAX_STEPS: usize = 64;

/// What the pump needs of the dataset.
pub(super) struct Target<'a> {
    pub ddb: &'a aws_sdk_dynamodb::Client,
    pub table: &'a str,
    pub pk: &'a str,
    pub sk: &'a str,
    pub pk_template: &'a str,
    pub system: &'a str,
}

impl Target<'_> {
    fn key(&self, tenant: &TenantId, sk: &str) -> Item {
        Item::from([
            (self.pk.to_owned(), s(locate(self.pk_template, tenant))),
            (self.sk.to_owned(), s(sk)),
        ])
    }

    async fn arn(&self, src: &StreamSource) -> Result<String, StoreError> {
        if let Some(a) = src
            .arns
            .lock()
            .ok()
            .and_then(|m| m.get(self.table).cloned())
        {
            return Ok(a);
        }
        let arn = async {
                let t = with_backoff(|| async {
                    self.ddb
                        .describe_table()
                        .table_name(self.table)
                        .send()
                        .await
                        .map_err(|e| sdk_error("DescribeTable", e))
                })
                .await?;
                let t = t.table.ok_or_else(|| {
                    StoreError::Config(format!("table {} not described", self.table))
                })?;
                let view = t
                    .stream_specification()
                    .filter(|s| s.stream_enabled())
                    .and_then(|s| s.stream_view_type())
                    .map(|v| v.as_str().to_owned());
                match (view.as_deref(), t.latest_stream_arn()) {
                    (Some("NEW_IMAGE" | "NEW_AND_OLD_IMAGES"), Some(arn)) => Ok(arn.to_owned()),
                    _ => Err(StoreError::Config(format!(
                        "system {}: change_feed = \"streams\" needs a stream on table {} with view NEW_IMAGE or NEW_AND_OLD_IMAGES (found {view:?})",
                        self.system, self.table
                    ))),
                }
            }
            .await?;
        if let Ok(mut m) = src.arns.lock() {
            m.insert(self.table.to_owned(), arn.clone());
        }
        Ok(arn)
    }

    /// The tenant's feed head item: journal head, stream cursor and the item's version.
    async fn load(&self, tenant: &TenantId) -> Result<Saved, StoreError> {
        let Some(item) = get_item(self.ddb, self.table, self.key(tenant, HEAD)).await? else {
            return Ok(Saved::default());
        };
        let cursor = item
            .get("cursor")
            .and_then(|v| v.as_s().ok())
            .map(|t| serde_json::from_str(t))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("stream cursor: {e}")))?
            .unwrap_or_default();
        Ok(Saved {
            cursor,
            version: get_n(&item, "v"),
            head: get_n(&item, "seq").unwrap_or(0),
        })
    }

    /// Appends `keys` to the journal after `saved.head` and saves `cursor` on the head
    /// item, if nobody moved it since `saved` was read; `None` when someone did (their
    /// pump made the progress).
    async fn commit(
        &self,
        tenant: &TenantId,
        saved: &Saved,
        cursor: Cursor,
        keys: &[String],
    ) -> Result<Option<Saved>, StoreError> {
        let next = Saved {
            cursor,
            version: Some(saved.version.unwrap_or(0) + 1),
            head: saved.head + keys.len() as u64,
        };
        let mut head = self.key(tenant, HEAD);
        let text = serde_json::to_string(&next.cursor)
            .map_err(|e| StoreError::Corrupt(format!("stream cursor: {e}")))?;
        head.insert("cursor".into(), s(text));
        head.insert("seq".into(), n(next.head));
        head.insert("v".into(), n(next.version.unwrap_or(1)));
        // A head written by journal mode before the switch has no version: it is taken
        // over as long as its position is still the one read.
        let (cond, vals) = match saved.version {
            Some(v) => ("v = :v", vec![(":v", n(v))]),
            None if saved.head > 0 => (
                "attribute_not_exists(v) AND seq = :h",
                vec![(":h", n(saved.head))],
            ),
            None => ("attribute_not_exists(#sk)", vec![]),
        };
        let head = conditional_put(self.table, self.sk, head, cond, vals)?;
        if keys.is_empty() {
            // Only the cursor moves: one conditional PutItem.
            return Ok(put_if(put_item_of(self.ddb, head)).await?.then_some(next));
        }
        let mut items = vec![TransactWriteItem::builder().put(head).build()];
        for (i, k) in keys.iter().enumerate() {
            let mut e = self.key(tenant, &super::dataset::feed_sk(saved.head + 1 + i as u64));
            e.insert("key".into(), s(k.as_str()));
            let entry =
                conditional_put(self.table, self.sk, e, "attribute_not_exists(#sk)", vec![])?;
            items.push(TransactWriteItem::builder().put(entry).build());
        }
        match self
            .ddb
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Some(next)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|x| x.is_transaction_canceled_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(sdk_error("TransactWriteItems", e)),
        }
    }

    /// Moves the tenant's journal up to what the stream holds now (or `MAX_STEPS` steps).
    /// Returns whether a barrier with `token` has gone by, in this pump or another.
    pub async fn pump(
        &self,
        src: &StreamSource,
        tenant: &TenantId,
        token: Option<&str>,
    ) -> Result<bool, StoreError> {
        let arn = self.arn(src).await?;
        let pk_value = locate(self.pk_template, tenant);
        // One shard listing per call: a shard that appears meanwhile is read by the next.
        let shards = self.shards(src, &arn).await?;
        let mut saved = self.load(tenant).await?;
        // Where each shard's next read starts, within this call: the iterator GetRecords
        // returned saves a GetShardIterator per step.
        let mut iterators: BTreeMap<String, String> = BTreeMap::new();
        for _ in 0..MAX_STEPS {
            let cursor = &saved.cursor;
            for known in cursor.after.keys() {
                if !shards.iter().any(|(id, _)| id == known) && !cursor.done.contains(known) {
                    return Err(StoreError::Config(format!(
                        "system {}: the stream of table {} no longer holds shard {known} (24-hour retention), so changes may be missing; roll back and start the migration again",
                        self.system, self.table
                    )));
                }
            }
            // The first shard with something to read whose parent is finished (a child's
            // records come after its parent's).
            let mut step = None;
            for (id, parent) in &shards {
                if cursor.done.contains(id) {
                    continue;
                }
                let parent_open = parent.as_ref().is_some_and(|p| {
                    shards.iter().any(|(x, _)| x == p) && !cursor.done.contains(p)
                });
                if parent_open {
                    continue;
                }
                let read = self
                    .read_shard(src, &arn, id, iterators.get(id), cursor.after.get(id))
                    .await?;
                // The pumps' own bookkeeping (heads and journal entries of any tenant) is
                // in the stream too; saving the cursor past nothing else would write
                // another such record for the next pump to find, forever. A short run of
                // it is left to be re-read (and skipped) next time.
                let bookkeeping = read
                    .records
                    .iter()
                    .all(|r| r.sk.starts_with("~feed") && r.origin.is_none());
                if bookkeeping && read.records.len() < STEP as usize && !read.closed {
                    continue;
                }
                step = Some((id.clone(), read));
                break;
            }
            let Some((id, read)) = step else {
                break;
            };
            let mut next = saved.cursor.clone();
            let mut keys = Vec::new();
            for r in &read.records {
                next.after.insert(id.clone(), r.seq.clone());
                if r.pk != pk_value {
                    continue;
                }
                match (r.origin.as_deref(), &r.token) {
                    (Some(ORIGIN_WRITE), _) => keys.push(r.sk.clone()),
                    (Some(ORIGIN_BARRIER), Some(t)) => {
                        next.barriers.push_back(t.clone());
                        if next.barriers.len() > BARRIERS_KEPT {
                            next.barriers.pop_front();
                        }
                    }
                    _ => {}
                }
            }
            if read.closed && read.records.len() < STEP as usize {
                next.done.push(id.clone());
            }
            match self.commit(tenant, &saved, next, &keys).await? {
                Some(now) => {
                    saved = now;
                    match read.next {
                        Some(it) => iterators.insert(id, it),
                        None => iterators.remove(&id),
                    };
                }
                // Another pump took these records: start again from its cursor.
                None => {
                    saved = self.load(tenant).await?;
                    iterators.clear();
                }
            }
        }
        Ok(token.is_some_and(|t| saved.cursor.barriers.iter().any(|b| b == t)))
    }

    async fn shards(
        &self,
        src: &StreamSource,
        arn: &str,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let d = with_backoff(|| async {
                src.client
                    .describe_stream()
                    .stream_arn(arn)
                    .set_exclusive_start_shard_id(start.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("DescribeStream", e))
            })
            .await?;
            let Some(desc) = d.stream_description else {
                return Ok(out);
            };
            for sh in desc.shards() {
                if let Some(id) = sh.shard_id() {
                    out.push((id.to_owned(), sh.parent_shard_id().map(str::to_owned)));
                }
            }
            match desc.last_evaluated_shard_id {
                Some(l) => start = Some(l),
                None => return Ok(out),
            }
        }
    }

    /// Up to `STEP` records of a shard, from `iterator` if this call has one, else after
    /// `after`.
    async fn read_shard(
        &self,
        src: &StreamSource,
        arn: &str,
        shard: &str,
        iterator: Option<&String>,
        after: Option<&String>,
    ) -> Result<ShardRead, StoreError> {
        let iterator = match iterator {
            Some(i) => i.clone(),
            None => {
                let it = with_backoff(|| async {
                    let mut q = src
                        .client
                        .get_shard_iterator()
                        .stream_arn(arn)
                        .shard_id(shard);
                    q = match after {
                        Some(seq) => q
                            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                            .sequence_number(seq),
                        None => q.shard_iterator_type(ShardIteratorType::TrimHorizon),
                    };
                    q.send().await.map_err(|e| sdk_error("GetShardIterator", e))
                })
                .await?;
                match it.shard_iterator {
                    Some(i) => i,
                    None => {
                        return Ok(ShardRead {
                            records: Vec::new(),
                            next: None,
                            closed: true,
                        });
                    }
                }
            }
        };
        let out = with_backoff(|| async {
            src.client
                .get_records()
                .shard_iterator(&iterator)
                .limit(STEP)
                .send()
                .await
                .map_err(|e| sdk_error("GetRecords", e))
        })
        .await?;
        let attr = |m: Option<
            &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
        >,
                    k: &str| {
            m.and_then(|m| m.get(k))
                .and_then(|v| v.as_s().ok())
                .cloned()
        };
        let mut records = Vec::new();
        for r in out.records() {
            let Some(d) = r.dynamodb() else { continue };
            let Some(seq) = d.sequence_number() else {
                continue;
            };
            let keys = d.keys();
            records.push(StreamRecord {
                seq: seq.to_owned(),
                pk: attr(keys, self.pk).unwrap_or_default(),
                sk: attr(keys, self.sk).unwrap_or_default(),
                origin: attr(d.new_image(), "origin"),
                token: attr(d.new_image(), "token"),
            });
        }
        let closed = out.next_shard_iterator.is_none();
        Ok(ShardRead {
            records,
            next: out.next_shard_iterator,
            closed,
        })
    }

    /// Writes a barrier into the tenant's partition and pumps until the stream delivers it.
    pub async fn settle(&self, src: &StreamSource, tenant: &TenantId) -> Result<(), StoreError> {
        let token = format!(
            "{:x}",
            ports::migrate::unix_ms() ^ u64::from(std::process::id()) << 40
        );
        let mut item = self.key(tenant, BARRIER);
        item.insert("origin".into(), s(ORIGIN_BARRIER));
        item.insert("token".into(), s(token.as_str()));
        with_backoff(|| async {
            self.ddb
                .put_item()
                .table_name(self.table)
                .set_item(Some(item.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_error("PutItem", e))
        })
        .await?;
        let started = Instant::now();
        loop {
            if self.pump(src, tenant, Some(&token)).await? {
                return Ok(());
            }
            if started.elapsed() > SETTLE_TIMEOUT {
                return Err(StoreError::Throttled(format!(
                    "system {}: the stream of table {} did not deliver a barrier within {} s",
                    self.system,
                    self.table,
                    SETTLE_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
