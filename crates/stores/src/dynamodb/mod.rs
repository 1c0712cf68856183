//! DynamoDB backends: tenant items by partition key, legal holds, the ledger, and the
//! routing and migrations tables.

pub mod config;
mod dataset;
pub(crate) mod discover;
mod feed;
mod holds;
mod ledger;
pub mod provision;
mod routing;
mod tenant_store;

pub use config::{ChangeFeedKind, Config};
pub use dataset::DynamoDataset;
pub use feed::StreamSource;
pub use holds::DynamoHolds;
pub use ledger::DynamoLedger;
pub use routing::{DynamoMigrations, DynamoRouting};
pub use tenant_store::DynamoTenantStore;

use crate::wiring::{Context, DatasetPorts, System, both};
use lifecycle::StepError;
use lifecycle::catalog::SystemSpec;
use ports::TenantStore;
use std::sync::Arc;

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
) -> Result<Option<Item>, ports::StoreError> {
    let out = ports::retry::with_backoff(|| async {
        client
            .get_item()
            .table_name(table)
            .set_key(Some(key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| crate::aws::sdk_error("GetItem", e))
    })
    .await?;
    Ok(out.item)
}

/// A conditional PutItem: `true` when it wrote, `false` when its condition did not hold.
pub(crate) async fn put_if(
    req: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
) -> Result<bool, ports::StoreError> {
    match req.send().await {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(crate::aws::sdk_error("PutItem", e)),
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
) -> Result<aws_sdk_dynamodb::types::Put, ports::StoreError> {
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
        .map_err(|e| ports::StoreError::Unavailable(format!("conditional put: {e}")))
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

/// Opens a catalog entry of `backend = "dynamodb"`.
pub async fn open(spec: &SystemSpec, ctx: &mut Context) -> Result<Arc<dyn System>, StepError> {
    let config = Config::parse(spec)?;
    let aws = ctx.aws().await?;
    let client = aws_sdk_dynamodb::Client::new(aws);
    let streams = (config.change_feed == ChangeFeedKind::Streams)
        .then(|| StreamSource::new(aws_sdk_dynamodbstreams::Client::new(aws)));
    // Erasure reaches every location a migration may have copied to.
    let store = DynamoTenantStore::new(
        client.clone(),
        spec.name.as_str(),
        spec.kind,
        &config.table,
        &config.partition_key,
        &config.sort_key,
        &config.partition_value,
        config.max_concurrency,
    )
    .with_location_tables(
        config
            .locations
            .iter()
            .map(|(loc, t)| (crate::aws::region_of(loc), t.clone()))
            .collect(),
    );
    Ok(Arc::new(Opened {
        name: spec.name.to_string(),
        config,
        client,
        streams,
        store: Arc::new(store),
    }))
}

#[derive(Debug)]
struct Opened {
    name: String,
    config: Config,
    client: aws_sdk_dynamodb::Client,
    /// The stream source shared by the system's datasets (its ARN is looked up once).
    streams: Option<StreamSource>,
    store: Arc<DynamoTenantStore>,
}

impl System for Opened {
    fn store(&self) -> Arc<dyn TenantStore> {
        self.store.clone()
    }

    /// The home table, or the table the catalog names for `location` (a location named
    /// after an AWS region is reached there).
    fn dataset(&self, location: &str) -> Result<DatasetPorts, StepError> {
        let table = if location == lifecycle::migration::HOME {
            &self.config.table
        } else {
            self.config.locations.get(location).ok_or_else(|| {
                StepError::Configuration(format!(
                    "system {}: no table for location {location}; add `locations = {{ {location} = \"<table>\" }}` to its catalog entry",
                    self.name
                ))
            })?
        };
        let region = crate::aws::region_of(location);
        let client = match &region {
            Some(r) => aws_sdk_dynamodb::Client::from_conf(
                self.client.config().to_builder().region(r.clone()).build(),
            ),
            None => self.client.clone(),
        };
        let ds = DynamoDataset::new(
            client,
            &self.name,
            location,
            table,
            &self.config.partition_key,
            &self.config.sort_key,
            &self.config.partition_value,
            self.config.max_concurrency,
        );
        Ok(both(match &self.streams {
            Some(src) => ds.with_streams(match region {
                Some(r) => src.in_region(r),
                None => src.clone(),
            }),
            None => ds,
        }))
    }
}
