use super::{get_s, s};
use crate::aws::sdk_error;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use lifecycle::TenantId;
use ports::retry::with_backoff;
use ports::{LegalHold, LegalHolds, StoreError};

/// Legal holds in a DynamoDB table: partition key `tenant_id`, sort key `hold_id`.
#[derive(Debug, Clone)]
pub struct DynamoHolds {
    client: Client,
    table: String,
}

impl DynamoHolds {
    /// Legal holds in `table`.
    pub fn new(client: Client, table: &str) -> Self {
        Self {
            client,
            table: table.to_owned(),
        }
    }
}

#[async_trait]
impl LegalHolds for DynamoHolds {
    async fn place(&self, hold: &LegalHold) -> Result<(), StoreError> {
        with_backoff(|| async {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("tenant_id", s(&hold.tenant_id))
                .item("hold_id", s(&hold.hold_id))
                .item("reason", s(&hold.reason))
                .item("placed_at", s(&hold.placed_at))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_error("PutItem", e))
        })
        .await
    }

    async fn release(&self, tenant: &TenantId, hold_id: &str, at: &str) -> Result<(), StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("tenant_id", s(tenant.as_str()))
            .key("hold_id", s(hold_id))
            .update_expression("SET released_at = :at")
            .condition_expression("attribute_exists(hold_id) AND attribute_not_exists(released_at)")
            .expression_attribute_values(":at", s(at))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::NotFound(format!(
                    "no active hold {hold_id} on tenant {tenant}"
                )))
            }
            Err(e) => Err(sdk_error("UpdateItem", e)),
        }
    }

    async fn active(&self, tenant: &TenantId) -> Result<Vec<LegalHold>, StoreError> {
        let mut holds = Vec::new();
        let mut start = None;
        loop {
            let page = with_backoff(|| async {
                self.client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("tenant_id = :t")
                    .expression_attribute_values(":t", s(tenant.as_str()))
                    .consistent_read(true)
                    .set_exclusive_start_key(start.clone())
                    .send()
                    .await
                    .map_err(|e| sdk_error("Query", e))
            })
            .await?;
            for i in page.items() {
                if i.contains_key("released_at") {
                    continue;
                }
                holds.push(LegalHold {
                    tenant_id: tenant.to_string(),
                    hold_id: get_s(i, "hold_id").unwrap_or_default().to_owned(),
                    reason: get_s(i, "reason").unwrap_or_default().to_owned(),
                    placed_at: get_s(i, "placed_at").unwrap_or_default().to_owned(),
                    released_at: None,
                });
            }
            match page.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(k) => start = Some(k),
                None => break,
            }
        }
        holds.sort_by(|a, b| a.hold_id.cmp(&b.hold_id));
        Ok(holds)
    }
}
