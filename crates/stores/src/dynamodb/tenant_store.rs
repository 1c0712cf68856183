use super::{Item, s};
use crate::aws::sdk_error;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{DeleteRequest, Select, WriteRequest};
use lifecycle::catalog::locate;
use lifecycle::{SystemKind, TenantId};
use ports::retry::{MAX_ATTEMPTS, backoff, with_backoff};
use ports::{ErasePass, StoreError, TenantStore};
use std::time::Instant;
use tokio::task::JoinSet;

/// BatchWriteItem takes at most this many requests.
const MAX_WRITE_BATCH: usize = 25;

/// One catalog system stored in a DynamoDB table, a tenant's items under one partition key.
#[derive(Debug, Clone)]
pub struct DynamoTenantStore {
    client: Client,
    name: String,
    kind: SystemKind,
    table: String,
    pk: String,
    sk: String,
    pk_template: String,
    concurrency: usize,
    page: i32,
    location_tables: Vec<(Option<aws_config::Region>, String)>,
}

impl DynamoTenantStore {
    /// A system named `name` in `table`, keyed by `pk` (value from `pk_template`) and `sk`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        name: &str,
        kind: SystemKind,
        table: &str,
        pk: &str,
        sk: &str,
        pk_template: &str,
        concurrency: usize,
    ) -> Self {
        Self {
            client,
            name: name.to_owned(),
            kind,
            table: table.to_owned(),
            pk: pk.to_owned(),
            sk: sk.to_owned(),
            pk_template: pk_template.to_owned(),
            concurrency: concurrency.max(1),
            page: 1000,
            location_tables: Vec::new(),
        }
    }

    /// Also counts and erases the tenant in these tables (a migration's locations), each
    /// in its region when the location is named after one.
    pub fn with_location_tables(
        mut self,
        tables: Vec<(Option<aws_config::Region>, String)>,
    ) -> Self {
        self.location_tables = tables;
        self
    }

    /// This store, pointed at each location table.
    fn at_locations(&self) -> Vec<Self> {
        self.location_tables
            .iter()
            .map(|(region, t)| Self {
                client: match region {
                    Some(r) => Client::from_conf(
                        self.client.config().to_builder().region(r.clone()).build(),
                    ),
                    None => self.client.clone(),
                },
                table: t.clone(),
                location_tables: Vec::new(),
                ..self.clone()
            })
            .collect()
    }

    /// Sets the Query page size (tests use small pages).
    pub fn with_page_size(mut self, page: usize) -> Self {
        self.page = page.clamp(1, 10_000) as i32;
        self
    }

    fn key(&self, tenant: &TenantId, key: &str) -> Item {
        Item::from([
            (self.pk.clone(), s(locate(&self.pk_template, tenant))),
            (self.sk.clone(), s(key)),
        ])
    }

    /// A consistent Query over the tenant's partition.
    fn tenant_query(
        &self,
        tenant: &TenantId,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", &self.pk)
            .expression_attribute_values(":pk", s(locate(&self.pk_template, tenant)))
            .consistent_read(true)
    }

    async fn query_keys(
        &self,
        tenant: &TenantId,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), StoreError> {
        let out = with_backoff(|| async {
            self.tenant_query(tenant)
                .expression_attribute_names("#sk", &self.sk)
                .projection_expression("#pk, #sk")
                .limit(self.page)
                .set_exclusive_start_key(start.clone())
                .send()
                .await
                .map_err(|e| sdk_error("Query", e))
        })
        .await?;
        let next = out.last_evaluated_key().filter(|k| !k.is_empty()).cloned();
        Ok((out.items.unwrap_or_default(), next))
    }

    /// Deletes up to 25 items, retrying UnprocessedItems with backoff.
    async fn delete_chunk(&self, keys: Vec<Item>) -> Result<u64, StoreError> {
        let total = keys.len() as u64;
        let mut pending = keys
            .into_iter()
            .map(|k| {
                DeleteRequest::builder()
                    .set_key(Some(k))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build())
                    .map_err(|e| StoreError::Unavailable(format!("BatchWriteItem: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let res = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending.clone())
                .send()
                .await
                .map_err(|e| sdk_error("BatchWriteItem", e));
            match res {
                Ok(out) => {
                    pending = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(&self.table))
                        .unwrap_or_default();
                }
                Err(StoreError::Throttled(_) | StoreError::Unavailable(_))
                    if attempt < MAX_ATTEMPTS => {}
                Err(e) => return Err(e),
            }
            if !pending.is_empty() {
                if attempt >= MAX_ATTEMPTS {
                    return Err(StoreError::Throttled(format!(
                        "BatchWriteItem on {}: {} items still unprocessed",
                        self.table,
                        pending.len()
                    )));
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        Ok(total)
    }

    /// One pass over the tenant's records from the start: (erased, listed to the end).
    async fn erase_pass(
        &self,
        tenant: &TenantId,
        deadline: Instant,
    ) -> Result<(u64, bool), StoreError> {
        // Query the next page while up to `concurrency` BatchWriteItem calls of 25 run.
        let mut running: JoinSet<Result<u64, StoreError>> = JoinSet::new();
        let mut start: Option<Item> = None;
        let mut listed_all = false;
        let mut erased = 0u64;
        let mut first = true;
        while !listed_all && (first || Instant::now() < deadline) {
            let (keys, next) = self.query_keys(tenant, start.take()).await?;
            first = false;
            listed_all = next.is_none();
            start = next;
            for chunk in keys.chunks(MAX_WRITE_BATCH) {
                while running.len() >= self.concurrency {
                    if let Some(done) = running.join_next().await {
                        erased += done
                            .map_err(|e| StoreError::Unavailable(format!("delete task: {e}")))??;
                    }
                }
                let (me, chunk) = (self.clone(), chunk.to_vec());
                running.spawn(async move { me.delete_chunk(chunk).await });
            }
        }
        while let Some(done) = running.join_next().await {
            erased += done.map_err(|e| StoreError::Unavailable(format!("delete task: {e}")))??;
        }
        Ok((erased, listed_all))
    }
}

#[async_trait]
impl TenantStore for DynamoTenantStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SystemKind {
        self.kind
    }

    async fn put(&self, tenant: &TenantId, key: &str, body: &[u8]) -> Result<(), StoreError> {
        let mut item = self.key(tenant, key);
        item.insert(
            "body".into(),
            aws_sdk_dynamodb::types::AttributeValue::B(Blob::new(body)),
        );
        with_backoff(|| async {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_error("PutItem", e))
        })
        .await
    }

    async fn delete(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        let k = self.key(tenant, key);
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
        .await
    }

    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let item = super::get_item(&self.client, &self.table, self.key(tenant, key)).await?;
        Ok(item.and_then(|i| {
            i.get("body")
                .and_then(|b| b.as_b().ok())
                .map(|b| b.as_ref().to_vec())
        }))
    }

    async fn count(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let mut total = 0u64;
        for other in self.at_locations() {
            total += other.count(tenant).await?;
        }
        let mut start: Option<Item> = None;
        loop {
            let out = with_backoff(|| async {
                self.tenant_query(tenant)
                    .select(Select::Count)
                    .set_exclusive_start_key(start.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("Query", e))
            })
            .await?;
            total += out.count.max(0) as u64;
            match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(k) => start = Some(k),
                None => return Ok(total),
            }
        }
    }

    async fn erase(&self, tenant: &TenantId, deadline: Instant) -> Result<ErasePass, StoreError> {
        ports::erase_locations_then(self.at_locations(), tenant, deadline, || {
            ports::erase_until_clean(deadline, || self.erase_pass(tenant, deadline))
        })
        .await
    }
}
