use super::{Item, get_n, get_s, n, s};
use crate::error::sdk_error;
use crate::retry::with_backoff;
use crate::{Ledger, NewEntry, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use lifecycle::ledger::Head;

/// The ledger in one DynamoDB table: partition key `chain`, sort key `sk` holding `HEAD`,
/// `E#<seq, 20 digits>` for entries, and `R#<request id>` for request markers.
///
/// An append is one `TransactWriteItems`: the entry (`attribute_not_exists`), the head
/// (conditioned on its seq and hash) and, when unique, the request marker
/// (`attribute_not_exists`). A lost race is a `Conflict` the caller retries from the new head.
#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
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
        match (get_n(&item, "seq"), get_s(&item, "hash")) {
            (Some(seq), Some(hash)) => Ok(Some(Head {
                seq,
                hash: hash.to_owned(),
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
            return Err(StoreError::Conflict(chain.to_owned()));
        }
        let put_entry = Put::builder()
            .table_name(&self.table)
            .item("chain", s(chain))
            .item("sk", s(entry_sk(entry.seq)))
            .item("seq", n(entry.seq))
            .item("entry_hash", s(entry.entry_hash))
            .item("body", s(entry.json))
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
                        .update_expression("SET #seq = :new, #hash = :newhash")
                        .condition_expression("#seq = :old AND #hash = :oldhash")
                        .expression_attribute_names("#seq", "seq")
                        .expression_attribute_names("#hash", "hash")
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
                    return Err(StoreError::Conflict(chain.to_owned()));
                }
                if let Some(req) = entry.unique_request
                    && self.get(chain, &request_sk(req)).await?.is_some()
                {
                    return Err(StoreError::Duplicate(req.to_owned()));
                }
                // Cancelled for another reason (e.g. a transaction conflict): retryable.
                Err(StoreError::Conflict(chain.to_owned()))
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
    ) -> Result<Vec<(u64, String)>, StoreError> {
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
                out.push((seq, body.to_owned()));
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
}
