//! Discovery in DynamoDB: every table the credentials list, every string in its items.

use super::Item;
use crate::aws::sdk_error;
use crate::discovery::{Finding, capped, names_tenant, tally};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use lifecycle::{DiscoverySpec, TenantId};
use ports::StoreError;
use ports::retry::with_backoff;

fn names(v: &AttributeValue, t: &str) -> bool {
    match v {
        AttributeValue::S(s) => names_tenant(s, t),
        AttributeValue::Ss(ss) => ss.iter().any(|s| names_tenant(s, t)),
        AttributeValue::L(l) => l.iter().any(|v| names(v, t)),
        AttributeValue::M(m) => m.iter().any(|(k, v)| names_tenant(k, t) || names(v, t)),
        AttributeValue::B(b) => names_tenant(&String::from_utf8_lossy(b.as_ref()), t),
        _ => false,
    }
}

/// Tables holding items that name the tenant, except the catalog's partitions of it
/// (`known`: table, partition key, value) and the tool's own `control` tables.
pub(crate) async fn scan(
    aws: &aws_config::SdkConfig,
    t: &TenantId,
    known: &[(String, String, String)],
    control: &[String],
    spec: &DiscoverySpec,
) -> Result<Vec<Finding>, StoreError> {
    let client = aws_sdk_dynamodb::Client::new(aws);
    let mut tables = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let page = with_backoff(|| async {
            client
                .list_tables()
                .set_exclusive_start_table_name(start.clone())
                .send()
                .await
                .map_err(|e| sdk_error("ListTables", e))
        })
        .await?;
        tables.extend(page.table_names().iter().cloned());
        start = page.last_evaluated_table_name().map(str::to_owned);
        if start.is_none() {
            break;
        }
    }
    let mut places = Vec::new();
    for table in tables.iter().filter(|tb| !control.contains(tb)) {
        let covered = |item: &Item| {
            known.iter().any(|(kt, pk, value)| {
                kt == table && item.get(pk).and_then(|v| v.as_s().ok()) == Some(value)
            })
        };
        let mut start: Option<Item> = None;
        let mut seen = 0;
        loop {
            let page = with_backoff(|| async {
                match client
                    .scan()
                    .table_name(table)
                    .set_exclusive_start_key(start.clone())
                    .send()
                    .await
                {
                    Ok(p) => Ok(Some(p)),
                    // Deleted since it was listed.
                    Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
                    Err(e) => Err(sdk_error("Scan", e)),
                }
            })
            .await?;
            let Some(page) = page else { break };
            for item in page.items() {
                seen += 1;
                if !covered(item) && item.values().any(|v| names(v, t.as_str())) {
                    places.push(format!("dynamodb://{table}"));
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
            if seen >= spec.max_per_place {
                return Err(capped(&format!("dynamodb://{table}"), spec.max_per_place));
            }
        }
    }
    Ok(tally(places))
}
