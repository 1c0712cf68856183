use super::{Item, get_n, get_s, n, s};
use crate::aws::sdk_error;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use lifecycle::erasure::SystemProgress;
use lifecycle::ledger::{Head, StoredEntry};
use lifecycle::tree::{Hash, NodeId};
use ports::Contended;
use ports::retry::with_backoff;
use ports::{Claim, Ledger, NewEntry, RequestLog, StoreError};

/// The ledger in one DynamoDB table: partition key `chain`, sort key `sk` holding `HEAD`,
/// `E#<seq, 20 digits>` for entries, `R#<request id>` for request markers and
/// `N#<level>#<index>` for the Merkle tree's complete nodes. Request claims and erasure
/// progress live in the partition `requests` (`C#<request id>`, `P#<request id>#<system>`).
///
/// An append is one `TransactWriteItems`: the entry (`attribute_not_exists`), the head
/// (conditioned on its seq and hash, carrying the tree's frontier), the nodes the entry
/// completes and, when unique, the request marker (`attribute_not_exists`). A lost race is a
/// `Conflict` the caller retries from the new head.
#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
    tree: bool,
}

const REQUESTS: &str = "requests";

/// Only every `TILE`-th level of the tree is stored as items of its own; a leaf rides on
/// its entry item. Any other node is folded from at most `2^(TILE-1)` stored ones below it,
/// so an append writes on average 1/16 of an extra item instead of two, and a proof of a
/// billion-entry tree still reads a few hundred small items in a few BatchGetItem calls.
const TILE: u32 = 4;

fn node_sk(id: NodeId) -> String {
    format!("N#{:02}#{:020}", id.level, id.index)
}

fn frontier_attr(f: &[String]) -> AttributeValue {
    AttributeValue::L(f.iter().map(|h| s(h.clone())).collect())
}

const HEAD: &str = "HEAD";

fn entry_sk(seq: u64) -> String {
    format!("E#{seq:020}")
}

fn request_sk(request_id: &str) -> String {
    format!("R#{request_id}")
}

impl DynamoLedger {
    /// The ledger in `table`.
    pub fn new(client: Client, table: &str) -> Self {
        Self {
            client,
            table: table.to_owned(),
            tree: true,
        }
    }

    /// The same ledger without Merkle tree maintenance: only for the benchmark that
    /// prices the tree.
    pub fn without_tree(client: Client, table: &str) -> Self {
        Self {
            tree: false,
            ..Self::new(client, table)
        }
    }

    async fn get(&self, chain: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let key = Item::from([("chain".to_owned(), s(chain)), ("sk".to_owned(), s(sk))]);
        super::get_item(&self.client, &self.table, key).await
    }
}

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("TransactWriteItems: {e}"))
}

#[async_trait]
impl Ledger for DynamoLedger {
    async fn head(&self, chain: &str) -> Result<Option<Head>, StoreError> {
        let Some(item) = self.get(chain, HEAD).await? else {
            return Ok(None);
        };
        let frontier = item
            .get("frontier")
            .and_then(|v| v.as_l().ok())
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_s().ok().cloned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        match (get_n(&item, "seq"), get_s(&item, "hash")) {
            (Some(seq), Some(hash)) => Ok(Some(Head {
                seq,
                hash: hash.to_owned(),
                frontier,
            })),
            _ => Err(StoreError::Corrupt(format!(
                "head item of chain {chain} lacks seq or hash"
            ))),
        }
    }

    async fn append(
        &self,
        chain: &str,
        expected: Option<&Head>,
        entry: NewEntry<'_>,
    ) -> Result<(), StoreError> {
        let (next, _) = Head::next(expected);
        if entry.seq != next {
            return Err(StoreError::conflict(
                Contended::LedgerHead {
                    chain: chain.to_owned(),
                    expected: expected.map(|h| h.seq),
                },
                format!("entry seq {} is not the next seq {next}", entry.seq),
            ));
        }
        let mut tree = match expected {
            None => Some(lifecycle::tree::Frontier::default()),
            Some(h) => h.tree(),
        };
        if self.tree && tree.is_none() {
            // A stale or made-up expected head is a lost race like any other.
            if self.head(chain).await?.as_ref() != expected {
                return Err(StoreError::conflict(
                    Contended::LedgerHead {
                        chain: chain.to_owned(),
                        expected: expected.map(|h| h.seq),
                    },
                    "the head moved",
                ));
            }
            return Err(StoreError::Config(format!(
                "ledger chain {chain} predates the Merkle tree (its head has no frontier); start a new ledger table"
            )));
        }
        let nodes = match (&mut tree, self.tree) {
            (Some(f), true) => f.push(entry.leaf),
            _ => Vec::new(),
        };
        let frontier: Vec<String> = match (&tree, self.tree) {
            (Some(f), true) => f.hashes().iter().map(hex::encode).collect(),
            _ => Vec::new(),
        };
        let put_entry = Put::builder()
            .table_name(&self.table)
            .item("chain", s(chain))
            .item("sk", s(entry_sk(entry.seq)))
            .item("seq", n(entry.seq))
            .item("entry_hash", s(entry.entry_hash))
            .item("body", s(entry.json))
            .item("leaf", s(hex::encode(entry.leaf)))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(build_err)?;
        let head = match expected {
            None => TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .item("chain", s(chain))
                        .item("sk", s(HEAD))
                        .item("seq", n(entry.seq))
                        .item("hash", s(entry.entry_hash))
                        .item("frontier", frontier_attr(&frontier))
                        .condition_expression("attribute_not_exists(sk)")
                        .build()
                        .map_err(build_err)?,
                )
                .build(),
            Some(h) => TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .key("chain", s(chain))
                        .key("sk", s(HEAD))
                        .update_expression(
                            "SET #seq = :new, #hash = :newhash, #frontier = :frontier",
                        )
                        .condition_expression("#seq = :old AND #hash = :oldhash")
                        .expression_attribute_names("#seq", "seq")
                        .expression_attribute_names("#hash", "hash")
                        .expression_attribute_names("#frontier", "frontier")
                        .expression_attribute_values(":frontier", frontier_attr(&frontier))
                        .expression_attribute_values(":new", n(entry.seq))
                        .expression_attribute_values(":newhash", s(entry.entry_hash))
                        .expression_attribute_values(":old", n(h.seq))
                        .expression_attribute_values(":oldhash", s(h.hash.clone()))
                        .build()
                        .map_err(build_err)?,
                )
                .build(),
        };
        let mut items = vec![TransactWriteItem::builder().put(put_entry).build(), head];
        for (id, h) in nodes
            .iter()
            .filter(|(id, _)| id.level > 0 && id.level % TILE == 0)
        {
            items.push(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .item("chain", s(chain))
                            .item("sk", s(node_sk(*id)))
                            .item("hash", s(hex::encode(h)))
                            .build()
                            .map_err(build_err)?,
                    )
                    .build(),
            );
        }
        if let Some(req) = entry.unique_request {
            items.push(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .item("chain", s(chain))
                            .item("sk", s(request_sk(req)))
                            .item("seq", n(entry.seq))
                            .condition_expression("attribute_not_exists(sk)")
                            .build()
                            .map_err(build_err)?,
                    )
                    .build(),
            );
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let cancelled = e
                    .as_service_error()
                    .is_some_and(|s| s.is_transaction_canceled_exception());
                if !cancelled {
                    return Err(sdk_error("TransactWriteItems", e));
                }
                // Which condition failed decides the answer; re-reading is exact whether or
                // not the service returned cancellation reasons.
                if self.head(chain).await?.as_ref() != expected {
                    return Err(StoreError::conflict(
                        Contended::LedgerHead {
                            chain: chain.to_owned(),
                            expected: expected.map(|h| h.seq),
                        },
                        "the head moved",
                    ));
                }
                if let Some(req) = entry.unique_request
                    && self.get(chain, &request_sk(req)).await?.is_some()
                {
                    return Err(StoreError::Duplicate(req.to_owned()));
                }
                // Cancelled for another reason (e.g. a transaction conflict): retryable.
                Err(StoreError::conflict(
                    Contended::LedgerHead {
                        chain: chain.to_owned(),
                        expected: expected.map(|h| h.seq),
                    },
                    "the append was cancelled by a concurrent transaction",
                ))
            }
        }
    }

    async fn find_request(
        &self,
        chain: &str,
        request_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some(marker) = self.get(chain, &request_sk(request_id)).await? else {
            return Ok(None);
        };
        let seq = get_n(&marker, "seq")
            .ok_or_else(|| StoreError::Corrupt(format!("request marker {request_id} lacks seq")))?;
        let entry = self.get(chain, &entry_sk(seq)).await?;
        Ok(entry.and_then(|e| get_s(&e, "body").map(str::to_owned)))
    }

    async fn entries(
        &self,
        chain: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        while out.len() < limit {
            let page = with_backoff(|| async {
                self.client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("#c = :c AND #sk BETWEEN :from AND :to")
                    .expression_attribute_names("#c", "chain")
                    .expression_attribute_names("#sk", "sk")
                    .expression_attribute_values(":c", s(chain))
                    .expression_attribute_values(":from", s(entry_sk(from_seq)))
                    .expression_attribute_values(":to", s("E#~"))
                    .limit((limit - out.len()).min(1000) as i32)
                    .consistent_read(true)
                    .set_exclusive_start_key(start.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("Query", e))
            })
            .await?;
            for item in page.items() {
                let seq = get_n(item, "seq").or_else(|| {
                    get_s(item, "sk")
                        .and_then(|k| k.strip_prefix("E#"))
                        .and_then(|d| d.parse().ok())
                });
                let (Some(seq), Some(body)) = (seq, get_s(item, "body")) else {
                    return Err(StoreError::Corrupt(format!(
                        "ledger item {:?} of chain {chain} lacks seq or body",
                        get_s(item, "sk")
                    )));
                };
                out.push(StoredEntry {
                    seq,
                    entry_hash: get_s(item, "entry_hash").unwrap_or_default().to_owned(),
                    json: body.to_owned(),
                });
            }
            match page.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(k) => start = Some(k),
                None => break,
            }
        }
        Ok(out)
    }

    async fn chains(&self) -> Result<Vec<String>, StoreError> {
        let mut chains = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = with_backoff(|| async {
                self.client
                    .scan()
                    .table_name(&self.table)
                    .filter_expression("#sk = :head")
                    .expression_attribute_names("#sk", "sk")
                    .expression_attribute_values(":head", s(HEAD))
                    .set_exclusive_start_key(start.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("Scan", e))
            })
            .await?;
            chains.extend(
                page.items()
                    .iter()
                    .filter_map(|i| get_s(i, "chain").map(str::to_owned)),
            );
            match page.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(k) => start = Some(k),
                None => break,
            }
        }
        chains.sort();
        Ok(chains)
    }

    async fn tree_nodes(
        &self,
        chain: &str,
        ids: &[NodeId],
    ) -> Result<Vec<Option<Hash>>, StoreError> {
        // Each wanted node from the stored level at or below it (leaves on entry items).
        let base = |id: &NodeId| {
            let b = id.level - id.level % TILE;
            let span = 1u64 << (id.level - b);
            (b, id.index * span, span)
        };
        let mut wanted: Vec<NodeId> = Vec::new();
        for id in ids {
            let (b, first, span) = base(id);
            wanted.extend((first..first + span).map(|index| NodeId { level: b, index }));
        }
        wanted.sort();
        wanted.dedup();
        let found = self.stored_nodes(chain, &wanted).await?;
        Ok(ids
            .iter()
            .map(|id| {
                let (b, first, span) = base(id);
                let mut row: Vec<Hash> = Vec::with_capacity(span as usize);
                for index in first..first + span {
                    row.push(*found.get(&NodeId { level: b, index })?);
                }
                while row.len() > 1 {
                    row = row
                        .chunks(2)
                        .map(|p| lifecycle::tree::node_hash(&p[0], &p[1]))
                        .collect();
                }
                row.pop()
            })
            .collect())
    }
}

impl DynamoLedger {
    /// Reads stored nodes: level 0 from the entry items' `leaf`, others from node items.
    async fn stored_nodes(
        &self,
        chain: &str,
        ids: &[NodeId],
    ) -> Result<std::collections::HashMap<NodeId, Hash>, StoreError> {
        let sk_of = |id: &NodeId| {
            if id.level == 0 {
                entry_sk(id.index)
            } else {
                node_sk(*id)
            }
        };
        let by_sk: std::collections::HashMap<String, NodeId> =
            ids.iter().map(|id| (sk_of(id), *id)).collect();
        let mut found = std::collections::HashMap::new();
        let keys_all: Vec<&String> = by_sk.keys().collect();
        for part in keys_all.chunks(100) {
            let mut keys: Vec<Item> = part
                .iter()
                .map(|sk| {
                    Item::from([
                        ("chain".to_owned(), s(chain)),
                        ("sk".to_owned(), s((*sk).clone())),
                    ])
                })
                .collect();
            let mut round = 0u32;
            while !keys.is_empty() {
                let ka = KeysAndAttributes::builder()
                    .set_keys(Some(keys.clone()))
                    .projection_expression("sk, #h, leaf")
                    .expression_attribute_names("#h", "hash")
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Unavailable(format!("BatchGetItem: {e}")))?;
                let out = with_backoff(|| async {
                    self.client
                        .batch_get_item()
                        .request_items(&self.table, ka.clone())
                        .send()
                        .await
                        .map_err(|e| sdk_error("BatchGetItem", e))
                })
                .await?;
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    let h = get_s(item, "hash").or_else(|| get_s(item, "leaf"));
                    if let (Some(sk), Some(h)) = (get_s(item, "sk"), h)
                        && let Some(id) = by_sk.get(sk)
                        && let Some(h) = hex::decode(h).ok().and_then(|b| b.try_into().ok())
                    {
                        found.insert(*id, h);
                    }
                }
                keys = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                round += 1;
                if !keys.is_empty() {
                    tokio::time::sleep(ports::retry::backoff(round.min(6))).await;
                }
            }
        }
        Ok(found)
    }
}

fn claim_sk(request_id: &str) -> String {
    format!("C#{request_id}")
}

fn progress_sk(request_id: &str, system: &str) -> String {
    format!("P#{request_id}#{system}")
}

fn progress_of(item: &Item) -> SystemProgress {
    SystemProgress {
        system: get_s(item, "system").unwrap_or_default().to_owned(),
        records_found: get_n(item, "found"),
        records_erased: get_n(item, "erased").unwrap_or(0),
        done: item
            .get("done")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
    }
}

#[async_trait]
impl RequestLog for DynamoLedger {
    async fn claim(
        &self,
        request_id: &str,
        digest: &str,
        reason: &str,
        at: &str,
    ) -> Result<Claim, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("chain", s(REQUESTS))
            .item("sk", s(claim_sk(request_id)))
            .item("digest", s(digest))
            .item("reason", s(reason))
            .item("claimed_at", s(at))
            .condition_expression("attribute_not_exists(sk)");
        match with_backoff(|| async {
            put.clone().send().await.map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception())
                {
                    StoreError::Duplicate(request_id.to_owned())
                } else {
                    sdk_error("PutItem", e)
                }
            })
        })
        .await
        {
            Ok(_) => Ok(Claim::New),
            Err(StoreError::Duplicate(_)) => {
                let item = self
                    .get(REQUESTS, &claim_sk(request_id))
                    .await?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("claim of {request_id} vanished"))
                    })?;
                let held = get_s(&item, "digest").unwrap_or_default();
                Ok(if held == digest {
                    Claim::Same
                } else {
                    Claim::Other(held.to_owned())
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn record_pass(
        &self,
        request_id: &str,
        system: &str,
        found: Option<u64>,
        erased: u64,
        done: bool,
    ) -> Result<SystemProgress, StoreError> {
        let mut expr = "SET #system = :system, #done = :done ADD #erased :erased".to_owned();
        let mut up = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("chain", s(REQUESTS))
            .key("sk", s(progress_sk(request_id, system)))
            .expression_attribute_names("#system", "system")
            .expression_attribute_names("#done", "done")
            .expression_attribute_names("#erased", "erased")
            .expression_attribute_values(":system", s(system))
            .expression_attribute_values(":done", AttributeValue::Bool(done))
            .expression_attribute_values(":erased", n(erased))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        if let Some(f) = found {
            expr = "SET #system = :system, #done = :done, #found = if_not_exists(#found, :found) ADD #erased :erased".to_owned();
            up = up
                .expression_attribute_names("#found", "found")
                .expression_attribute_values(":found", n(f));
        }
        let up = up.update_expression(expr);
        let out = with_backoff(|| async {
            up.clone()
                .send()
                .await
                .map_err(|e| sdk_error("UpdateItem", e))
        })
        .await?;
        Ok(out
            .attributes
            .as_ref()
            .map(progress_of)
            .unwrap_or(SystemProgress {
                system: system.to_owned(),
                records_found: found,
                records_erased: erased,
                done,
            }))
    }

    async fn progress(&self, request_id: &str) -> Result<Vec<SystemProgress>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = with_backoff(|| async {
                self.client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("#c = :c AND begins_with(#sk, :p)")
                    .expression_attribute_names("#c", "chain")
                    .expression_attribute_names("#sk", "sk")
                    .expression_attribute_values(":c", s(REQUESTS))
                    .expression_attribute_values(":p", s(format!("P#{request_id}#")))
                    .consistent_read(true)
                    .set_exclusive_start_key(start.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("Query", e))
            })
            .await?;
            out.extend(page.items().iter().map(progress_of));
            match page.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(k) => start = Some(k),
                None => break,
            }
        }
        out.sort_by(|a, b| a.system.cmp(&b.system));
        Ok(out)
    }
}
