use super::{Item, get_item, get_n, get_s, n, put_if, s};
use crate::aws::sdk_error;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use lifecycle::TenantId;
use lifecycle::migration::{Env, MigrationRecord, Routing, Window};
use ports::Contended;
use ports::StoreError;
use ports::migrate::{Ack, Migrations, RoutingStore};
use ports::retry::with_backoff;

/// Routing records, acknowledgements and health windows in one DynamoDB table: partition
/// key `tenant_id`, sort key `sk` (`routing`, `ack#<router>`, `health#<epoch>#<env>#<router>`).
#[derive(Debug, Clone)]
pub struct DynamoRouting {
    client: Client,
    table: String,
}

impl DynamoRouting {
    /// The routing table `table`.
    pub fn new(client: Client, table: &str) -> Self {
        Self {
            client,
            table: table.to_owned(),
        }
    }

    async fn query_prefix(&self, tenant: &TenantId, prefix: &str) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = with_backoff(|| async {
                self.client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("tenant_id = :t AND begins_with(sk, :p)")
                    .expression_attribute_values(":t", s(tenant.as_str()))
                    .expression_attribute_values(":p", s(prefix))
                    .consistent_read(true)
                    .set_exclusive_start_key(start.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("Query", e))
            })
            .await?;
            out.extend(page.items().iter().cloned());
            match page.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }
}

fn env_name(env: Env) -> &'static str {
    match env {
        Env::Source => "source",
        Env::Target => "target",
    }
}

fn parse<T: serde::de::DeserializeOwned>(item: &Item, what: &str) -> Result<T, StoreError> {
    let body =
        get_s(item, "body").ok_or_else(|| StoreError::Corrupt(format!("{what} has no body")))?;
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

async fn conditional_put(
    client: &Client,
    table: &str,
    item: Item,
    version_attr: &str,
    expected: Option<u64>,
    what: Contended,
) -> Result<(), StoreError> {
    let mut req = client.put_item().table_name(table).set_item(Some(item));
    req = match expected {
        None => req.condition_expression("attribute_not_exists(tenant_id)"),
        Some(e) => req
            .condition_expression("#v = :e")
            .expression_attribute_names("#v", version_attr)
            .expression_attribute_values(":e", n(e)),
    };
    if put_if(req).await? {
        Ok(())
    } else {
        Err(StoreError::conflict(
            what,
            "the conditional put found another value",
        ))
    }
}

#[async_trait]
impl RoutingStore for DynamoRouting {
    async fn get(&self, tenant: &TenantId) -> Result<Option<Routing>, StoreError> {
        let key = Item::from([
            ("tenant_id".to_owned(), s(tenant.as_str())),
            ("sk".to_owned(), s("routing")),
        ]);
        get_item(&self.client, &self.table, key)
            .await?
            .as_ref()
            .map(|i| parse(i, "routing record"))
            .transpose()
    }

    async fn put(&self, routing: &Routing, expected: Option<u64>) -> Result<(), StoreError> {
        if expected.is_some_and(|e| routing.epoch <= e) {
            return Err(StoreError::conflict(
                Contended::RoutingEpoch {
                    tenant: routing.tenant_id.clone(),
                    expected,
                },
                format!("epoch {} does not follow it", routing.epoch),
            ));
        }
        let item: Item = [
            ("tenant_id".to_owned(), s(&routing.tenant_id)),
            ("sk".to_owned(), s("routing")),
            ("epoch".to_owned(), n(routing.epoch)),
            ("body".to_owned(), s(json(routing)?)),
        ]
        .into();
        conditional_put(
            &self.client,
            &self.table,
            item,
            "epoch",
            expected,
            Contended::RoutingEpoch {
                tenant: routing.tenant_id.clone(),
                expected,
            },
        )
        .await
    }

    async fn ack(&self, tenant: &TenantId, ack: &Ack) -> Result<(), StoreError> {
        with_backoff(|| async {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("tenant_id", s(tenant.as_str()))
                .item("sk", s(format!("ack#{}", ack.router_id)))
                .item("router_id", s(&ack.router_id))
                .item("epoch", n(ack.epoch))
                .item("at_ms", n(ack.at_ms))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_error("PutItem", e))
        })
        .await
    }

    async fn acks(&self, tenant: &TenantId) -> Result<Vec<Ack>, StoreError> {
        Ok(self
            .query_prefix(tenant, "ack#")
            .await?
            .iter()
            .map(|i| Ack {
                router_id: get_s(i, "router_id").unwrap_or_default().to_owned(),
                epoch: get_n(i, "epoch").unwrap_or(0),
                at_ms: get_n(i, "at_ms").unwrap_or(0),
            })
            .collect())
    }

    async fn leave(&self, tenant: &TenantId, router_id: &str) -> Result<(), StoreError> {
        with_backoff(|| async {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("tenant_id", s(tenant.as_str()))
                .key("sk", s(format!("ack#{router_id}")))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_error("DeleteItem", e))
        })
        .await
    }

    async fn report(
        &self,
        tenant: &TenantId,
        epoch: u64,
        env: Env,
        router_id: &str,
        window: &Window,
    ) -> Result<(), StoreError> {
        let body = json(window)?;
        with_backoff(|| async {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("tenant_id", s(tenant.as_str()))
                .item(
                    "sk",
                    s(format!("health#{epoch}#{}#{router_id}", env_name(env))),
                )
                .item("body", s(&body))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_error("PutItem", e))
        })
        .await
    }

    async fn health(&self, tenant: &TenantId, epoch: u64, env: Env) -> Result<Window, StoreError> {
        let mut all = Window::default();
        for i in self
            .query_prefix(tenant, &format!("health#{epoch}#{}#", env_name(env)))
            .await?
        {
            all.merge(&parse(&i, "health window")?);
        }
        Ok(all)
    }
}

/// The migrations table in DynamoDB: partition key `tenant_id`; writes conditional on
/// the `version` attribute.
#[derive(Debug, Clone)]
pub struct DynamoMigrations {
    client: Client,
    table: String,
}

impl DynamoMigrations {
    /// The migrations table `table`.
    pub fn new(client: Client, table: &str) -> Self {
        Self {
            client,
            table: table.to_owned(),
        }
    }
}

#[async_trait]
impl Migrations for DynamoMigrations {
    async fn get(&self, tenant: &TenantId) -> Result<Option<MigrationRecord>, StoreError> {
        let key = Item::from([("tenant_id".to_owned(), s(tenant.as_str()))]);
        get_item(&self.client, &self.table, key)
            .await?
            .as_ref()
            .map(|i| parse(i, "migration record"))
            .transpose()
    }

    async fn put(&self, rec: &MigrationRecord, expected: Option<u64>) -> Result<(), StoreError> {
        let item: Item = [
            ("tenant_id".to_owned(), s(&rec.tenant_id)),
            ("version".to_owned(), n(rec.version)),
            ("phase".to_owned(), s(json(&rec.phase)?)),
            ("body".to_owned(), s(json(rec)?)),
        ]
        .into();
        conditional_put(
            &self.client,
            &self.table,
            item,
            "version",
            expected,
            Contended::MigrationVersion {
                tenant: rec.tenant_id.to_string(),
                expected,
            },
        )
        .await
    }
}
