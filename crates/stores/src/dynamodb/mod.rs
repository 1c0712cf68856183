//! DynamoDB backends: tenant items by partition key, legal holds, the ledger, and the
//! routing and migrations tables.

mod dataset;
mod holds;
mod ledger;
mod routing;
mod streams;
mod tenant_store;

pub use dataset::DynamoDataset;
pub use holds::DynamoHolds;
pub use ledger::DynamoLedger;
pub use routing::{DynamoMigrations, DynamoRouting};
pub use streams::StreamSource;
pub use tenant_store::DynamoTenantStore;

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn get_s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

pub(crate) fn get_n(item: &Item, k: &str) -> Option<u64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|s| s.parse().ok())
}

/// A strongly consistent GetItem, retried with backoff on throttling.
pub(crate) async fn get_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: Item,
) -> Result<Option<Item>, crate::StoreError> {
    let out = crate::retry::with_backoff(|| async {
        client
            .get_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| crate::error::sdk_error("GetItem", e))
    })
    .await?;
    Ok(out.item)
}

/// A conditional PutItem: `true` when it wrote, `false` when its condition did not hold.
pub(crate) async fn put_if(
    req: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
) -> Result<bool, crate::StoreError> {
    match req.send().await {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(crate::error::sdk_error("PutItem", e)),
    }
}

/// A `Put` of `item` into `table` under `condition`, naming the sort key `#sk` only when
/// the condition uses it (DynamoDB refuses names an expression does not use).
pub(crate) fn conditional_put(
    table: &str,
    sk: &str,
    item: Item,
    condition: &str,
    values: Vec<(&str, AttributeValue)>,
) -> Result<aws_sdk_dynamodb::types::Put, crate::StoreError> {
    let mut p = aws_sdk_dynamodb::types::Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(condition);
    if condition.contains("#sk") {
        p = p.expression_attribute_names("#sk", sk);
    }
    for (k, v) in values {
        p = p.expression_attribute_values(k, v);
    }
    p.build()
        .map_err(|e| crate::StoreError::Unavailable(format!("conditional put: {e}")))
}

/// The same `Put` sent alone, as one `PutItem`.
pub(crate) fn put_item_of(
    client: &aws_sdk_dynamodb::Client,
    put: aws_sdk_dynamodb::types::Put,
) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
    client
        .put_item()
        .table_name(put.table_name)
        .set_item(Some(put.item))
        .set_condition_expression(put.condition_expression)
        .set_expression_attribute_names(put.expression_attribute_names)
        .set_expression_attribute_values(put.expression_attribute_values)
}
