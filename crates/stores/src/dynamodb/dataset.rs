use super::feed::{ORIGIN_COPY, ORIGIN_WRITE, StreamSource, Target};
use super::{Item, conditional_put, get_item, get_n, get_s, n, put_if, put_item_of, s};
use crate::aws::sdk_error;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use lifecycle::TenantId;
use lifecycle::catalog::locate;
use ports::StoreError;
use ports::migrate::{Change, ChangeFeed, Dataset, Rec};
use ports::retry::{backoff, with_backoff};

/// Sort keys from here on hold the location's change feed, in the tenant's partition, so
/// erasing the partition erases the feed too. Record keys may not use the prefix.
const FEED: &str = "~feed/";
pub(super) const HEAD: &str = "~feed-head";
/// Lost races a primary write survives before it reports `Throttled`.
const MAX_RACES: u32 = 32;

pub(super) fn feed_sk(seq: u64) -> String {
    format!("{FEED}{seq:020}")
}

/// A system's records at one location in DynamoDB: the table the catalog names for that
/// location, the tenant's partition. The change feed is a journal in the same partition:
/// a primary write is one `TransactWriteItems` (the record at the next revision, the feed
/// head moved on by one, the feed entry), each conditioned on what was read, so feed
/// positions follow commit order.
#[derive(Debug, Clone)]
pub struct DynamoDataset {
    client: Client,
    system: String,
    location: String,
    table: String,
    pk: String,
    sk: String,
    pk_template: String,
    concurrency: usize,
    streams: Option<StreamSource>,
}

impl DynamoDataset {
    /// The dataset of `system` at `location`, stored in `table`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        system: &str,
        location: &str,
        table: &str,
        pk: &str,
        sk: &str,
        pk_template: &str,
        concurrency: usize,
    ) -> Self {
        Self {
            client,
            system: system.to_owned(),
            location: location.to_owned(),
            table: table.to_owned(),
            pk: pk.to_owned(),
            sk: sk.to_owned(),
            pk_template: pk_template.to_owned(),
            concurrency: concurrency.max(1),
            streams: None,
        }
    }

    /// Reads changes from the table's DynamoDB Stream instead of keeping a journal on
    /// every write (`change_feed = "streams"`).
    pub fn with_streams(mut self, source: StreamSource) -> Self {
        self.streams = Some(source);
        self
    }

    fn pump_target(&self) -> Target<'_> {
        Target {
            ddb: &self.client,
            table: &self.table,
            pk: &self.pk,
            sk: &self.sk,
            pk_template: &self.pk_template,
            system: &self.system,
        }
    }

    /// With a stream: pumps it into the journal, so head and read see what it holds.
    async fn pump(&self, tenant: &TenantId) -> Result<(), StoreError> {
        if let Some(src) = &self.streams {
            self.pump_target().pump(src, tenant, None).await?;
        }
        Ok(())
    }

    /// A primary write in stream mode: one conditional PutItem, marked as a write.
    async fn write_streamed(
        &self,
        tenant: &TenantId,
        rec: Rec,
        prev: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut item = self.rec_item(tenant, &rec);
        item.insert("origin".into(), s(ORIGIN_WRITE));
        let (cond, vals) = match prev {
            Some(r) => ("attribute_exists(#sk) AND rev = :r", vec![(":r", n(r))]),
            None => (
                "attribute_not_exists(#sk) OR attribute_not_exists(rev)",
                vec![],
            ),
        };
        let put = conditional_put(&self.table, &self.sk, item, cond, vals)?;
        put_if(put_item_of(&self.client, put)).await
    }

    fn key(&self, tenant: &TenantId, sk: &str) -> Item {
        Item::from([
            (self.pk.clone(), s(locate(&self.pk_template, tenant))),
            (self.sk.clone(), s(sk)),
        ])
    }

    async fn get(&self, tenant: &TenantId, sk: &str) -> Result<Option<Item>, StoreError> {
        get_item(&self.client, &self.table, self.key(tenant, sk)).await
    }

    fn rec_item(&self, tenant: &TenantId, r: &Rec) -> Item {
        let mut item = self.key(tenant, &r.key);
        item.insert("rev".into(), n(r.rev));
        if self.streams.is_some() {
            // A copy: the stream pump leaves it out of the feed.
            item.insert("origin".into(), s(ORIGIN_COPY));
        }
        match &r.body {
            Some(b) => item.insert("body".into(), AttributeValue::B(Blob::new(b.clone()))),
            None => item.insert("deleted".into(), AttributeValue::Bool(true)),
        };
        item
    }

    fn put(
        &self,
        item: Item,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let p = conditional_put(&self.table, &self.sk, item, condition, values)?;
        Ok(TransactWriteItem::builder().put(p).build())
    }

    /// Queries the tenant's partition from `after` (exclusive), collecting up to `limit`
    /// items that pass `keep`; DynamoDB applies Limit before filtering, so it pages on.
    async fn query_from(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        until: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = after.map(|a| self.key(tenant, a));
        loop {
            let page = with_backoff(|| async {
                let mut q = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .consistent_read(true)
                    .expression_attribute_names("#pk", &self.pk)
                    .expression_attribute_values(":pk", s(locate(&self.pk_template, tenant)))
                    .set_exclusive_start_key(start.clone())
                    .limit(limit.saturating_sub(out.len()).clamp(1, 1000) as i32);
                q = match until {
                    Some(u) => q
                        .key_condition_expression("#pk = :pk AND #sk < :until")
                        .expression_attribute_names("#sk", &self.sk)
                        .expression_attribute_values(":until", s(u)),
                    None => q.key_condition_expression("#pk = :pk"),
                };
                q.send().await.map_err(|e| sdk_error("Query", e))
            })
            .await?;
            out.extend(page.items().iter().cloned());
            match page.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(k) if out.len() < limit => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

fn to_rec(key: String, i: &Item) -> Rec {
    Rec {
        key,
        rev: get_n(i, "rev").unwrap_or(0),
        body: if i
            .get("deleted")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false)
        {
            None
        } else {
            i.get("body")
                .and_then(|b| b.as_b().ok())
                .map(|b| b.as_ref().to_vec())
        },
    }
}

#[async_trait]
impl Dataset for DynamoDataset {
    fn system(&self) -> &str {
        &self.system
    }

    fn location(&self) -> &str {
        &self.location
    }

    async fn provision(&self, _tenant: &TenantId) -> Result<bool, StoreError> {
        // Tables are infrastructure (infra/template.yaml): check, never create.
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => Ok(false),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|x| x.is_resource_not_found_exception()) =>
            {
                Err(StoreError::Config(format!(
                    "system {}: table {} for location {} does not exist; create it with the home table's keys",
                    self.system, self.table, self.location
                )))
            }
            Err(e) => Err(sdk_error("DescribeTable", e)),
        }
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    async fn provision_like(
        &self,
        tenant: &TenantId,
        source: &dyn Dataset,
        tags: &[(String, String)],
    ) -> Result<bool, StoreError> {
        let src = source
            .as_any()
            .and_then(|a| a.downcast_ref::<DynamoDataset>());
        let Some(src) = src.filter(|s| s.table != self.table) else {
            return self.provision(tenant).await;
        };
        let like = super::provision::shape(&src.client, &src.table)
            .await?
            .ok_or_else(|| {
                StoreError::Config(format!(
                    "system {}: the source table {} does not exist",
                    self.system, src.table
                ))
            })?;
        super::provision::ensure(&self.client, &self.table, &like, tags).await
    }

    async fn read(&self, tenant: &TenantId, key: &str) -> Result<Option<Rec>, StoreError> {
        Ok(self
            .get(tenant, key)
            .await?
            .map(|i| to_rec(key.to_owned(), &i)))
    }

    async fn write(
        &self,
        tenant: &TenantId,
        key: &str,
        body: Option<&[u8]>,
    ) -> Result<u64, StoreError> {
        if key >= "~feed" {
            return Err(StoreError::Config(format!(
                "record keys must sort below \"~feed\" (the change feed's sort keys) in system {}",
                self.system
            )));
        }
        for attempt in 1..=MAX_RACES {
            let cur = self.get(tenant, key).await?;
            if self.streams.is_some() {
                let prev = cur.as_ref().and_then(|i| get_n(i, "rev"));
                let rec = Rec {
                    key: key.to_owned(),
                    rev: prev.unwrap_or(0) + 1,
                    body: body.map(<[u8]>::to_vec),
                };
                let rev = rec.rev;
                if self.write_streamed(tenant, rec, prev).await? {
                    return Ok(rev);
                }
                tokio::time::sleep(backoff(attempt.min(5))).await;
                continue;
            }
            let head = self
                .get(tenant, HEAD)
                .await?
                .and_then(|h| get_n(&h, "seq"))
                .unwrap_or(0);
            let prev = cur.as_ref().and_then(|i| get_n(i, "rev"));
            let rec = Rec {
                key: key.to_owned(),
                rev: prev.unwrap_or(0) + 1,
                body: body.map(<[u8]>::to_vec),
            };
            let record = match prev {
                Some(r) => self.put(self.rec_item(tenant, &rec), "rev = :r", vec![(":r", n(r))])?,
                None => self.put(
                    self.rec_item(tenant, &rec),
                    "attribute_not_exists(rev)",
                    vec![],
                )?,
            };
            let mut head_item = self.key(tenant, HEAD);
            head_item.insert("seq".into(), n(head + 1));
            let head_put = if head == 0 {
                self.put(head_item, "attribute_not_exists(#sk)", vec![])?
            } else {
                self.put(head_item, "seq = :h", vec![(":h", n(head))])?
            };
            let mut entry = self.key(tenant, &feed_sk(head + 1));
            entry.insert("key".into(), s(key));
            let entry_put = self.put(entry, "attribute_not_exists(#sk)", vec![])?;
            let res = self
                .client
                .transact_write_items()
                .transact_items(record)
                .transact_items(head_put)
                .transact_items(entry_put)
                .send()
                .await;
            match res {
                Ok(_) => return Ok(rec.rev),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|x| x.is_transaction_canceled_exception()) =>
                {
                    tokio::time::sleep(backoff(attempt.min(5))).await;
                }
                Err(e) => return Err(sdk_error("TransactWriteItems", e)),
            }
        }
        Err(StoreError::Throttled(format!(
            "write to {} kept losing races",
            self.system
        )))
    }

    async fn apply(
        &self,
        tenant: &TenantId,
        rec: &Rec,
        replace_equal: bool,
    ) -> Result<bool, StoreError> {
        let cond = if replace_equal {
            "attribute_not_exists(#sk) OR attribute_not_exists(rev) OR rev <= :r"
        } else {
            "attribute_not_exists(#sk) OR attribute_not_exists(rev) OR rev < :r"
        };
        let item = self.rec_item(tenant, rec);
        let put = conditional_put(&self.table, &self.sk, item, cond, vec![(":r", n(rec.rev))])?;
        put_if(put_item_of(&self.client, put)).await
    }

    async fn apply_many(&self, tenant: &TenantId, recs: &[Rec]) -> Result<u64, StoreError> {
        // BatchWriteItem takes no conditions; conditional puts run side by side instead.
        let mut n = 0;
        for chunk in recs.chunks(self.concurrency) {
            let mut set = tokio::task::JoinSet::new();
            for r in chunk {
                let (me, t, r) = (self.clone(), tenant.clone(), r.clone());
                set.spawn(async move { me.apply(&t, &r, false).await });
            }
            while let Some(done) = set.join_next().await {
                let applied =
                    done.map_err(|e| StoreError::Unavailable(format!("apply task: {e}")))??;
                n += u64::from(applied);
            }
        }
        Ok(n)
    }

    async fn apply_many_exclusive(
        &self,
        tenant: &TenantId,
        recs: &[Rec],
    ) -> Result<u64, StoreError> {
        use aws_sdk_dynamodb::types::{KeysAndAttributes, PutRequest, WriteRequest};
        // Read the target's revisions 100 keys a call, then write what is newer 25 a call:
        // safe only because nothing else writes this location during the bulk copy.
        let mut held: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        for chunk in recs.chunks(100) {
            let mut keys = KeysAndAttributes::builder()
                .consistent_read(true)
                .projection_expression("#sk, rev")
                .expression_attribute_names("#sk", &self.sk);
            for r in chunk {
                keys = keys.keys(self.key(tenant, &r.key));
            }
            let mut pending = Some(
                keys.build()
                    .map_err(|e| StoreError::Unavailable(format!("BatchGetItem: {e}")))?,
            );
            let mut attempt = 0;
            while let Some(req) = pending.take() {
                attempt += 1;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, req)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetItem", e))?;
                for i in out
                    .responses
                    .as_ref()
                    .and_then(|m| m.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    if let Some(k) = get_s(i, &self.sk) {
                        held.insert(k.to_owned(), get_n(i, "rev").unwrap_or(0));
                    }
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut m| m.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
                if pending.is_some() {
                    tokio::time::sleep(backoff(attempt.min(5))).await;
                }
            }
        }
        let newer: Vec<&Rec> = recs
            .iter()
            .filter(|r| held.get(&r.key).is_none_or(|h| *h < r.rev))
            .collect();
        let mut set = tokio::task::JoinSet::new();
        for chunk in newer.chunks(25) {
            let writes = chunk
                .iter()
                .map(|r| {
                    PutRequest::builder()
                        .set_item(Some(self.rec_item(tenant, r)))
                        .build()
                        .map(|p| WriteRequest::builder().put_request(p).build())
                        .map_err(|e| StoreError::Unavailable(format!("BatchWriteItem: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let (client, table) = (self.client.clone(), self.table.clone());
            set.spawn(async move {
                let mut pending = writes;
                let mut attempt = 0;
                while !pending.is_empty() {
                    attempt += 1;
                    let out = client
                        .batch_write_item()
                        .request_items(&table, pending.clone())
                        .send()
                        .await
                        .map_err(|e| sdk_error("BatchWriteItem", e))?;
                    pending = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(&table))
                        .unwrap_or_default();
                    if !pending.is_empty() {
                        tokio::time::sleep(backoff(attempt.min(5))).await;
                    }
                }
                Ok::<_, StoreError>(())
            });
            if set.len() >= self.concurrency
                && let Some(done) = set.join_next().await
            {
                done.map_err(|e| StoreError::Unavailable(format!("batch task: {e}")))??;
            }
        }
        while let Some(done) = set.join_next().await {
            done.map_err(|e| StoreError::Unavailable(format!("batch task: {e}")))??;
        }
        Ok(newer.len() as u64)
    }

    async fn scan(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Rec>, StoreError> {
        let items = self
            .query_from(tenant, after, Some(FEED.trim_end_matches('/')), limit)
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| get_s(i, &self.sk).map(|k| to_rec(k.to_owned(), i)))
            .filter(|r| !r.key.starts_with(FEED.trim_end_matches('/')))
            .take(limit)
            .collect())
    }
}

#[async_trait]
impl ChangeFeed for DynamoDataset {
    async fn head(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        self.pump(tenant).await?;
        Ok(self
            .get(tenant, HEAD)
            .await?
            .and_then(|h| get_n(&h, "seq"))
            .unwrap_or(0))
    }

    async fn read(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let (from, to) = (feed_sk(after), format!("{FEED}~"));
        let query = || self.query_from(tenant, Some(&from), Some(&to), limit);
        let mut items = query().await?;
        // The journal is pumped from the stream only when it runs dry, so a reader below
        // the head costs one Query, as in journal mode.
        if items.is_empty() && self.streams.is_some() {
            self.pump(tenant).await?;
            items = query().await?;
        }
        Ok(items
            .iter()
            .filter_map(|i| {
                let sk = get_s(i, &self.sk)?;
                let seq = sk.strip_prefix(FEED)?.parse().ok()?;
                Some(Change {
                    seq,
                    key: get_s(i, "key")?.to_owned(),
                })
            })
            .collect())
    }

    async fn settle(&self, tenant: &TenantId) -> Result<(), StoreError> {
        match &self.streams {
            Some(src) => self.pump_target().settle(src, tenant).await,
            None => Ok(()),
        }
    }

    async fn trim(&self, tenant: &TenantId, upto: u64) -> Result<(), StoreError> {
        loop {
            let old = self
                .query_from(tenant, Some(FEED), Some(&feed_sk(upto)), 25)
                .await?;
            if old.is_empty() {
                return Ok(());
            }
            for i in old {
                let Some(sk) = get_s(&i, &self.sk) else {
                    continue;
                };
                let k = self.key(tenant, sk);
                with_backoff(|| async {
                    self.client
                        .delete_item()
                        .table_name(&self.table)
                        .set_key(Some(k.clone()))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| sdk_error("DeleteItem", e))
                })
                .await?;
            }
        }
    }
}
