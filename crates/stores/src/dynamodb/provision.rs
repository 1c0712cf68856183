//! Provisioning a migration's target table in the shape of the source's: key schema,
//! secondary indexes, billing mode, stream view and point-in-time recovery. A missing
//! table is created (tagged, in the same request, with the tenant and migration that
//! made it) and waited for; an existing one of another shape is refused with what
//! differs, unless it carries this migration's tags: then a call that died half-way
//! made it, and it is finished (waited for, point-in-time recovery turned on).

use crate::aws::sdk_error;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, LocalSecondaryIndex,
    PointInTimeRecoverySpecification, PointInTimeRecoveryStatus, Projection, ProvisionedThroughput,
    StreamSpecification, StreamViewType, TableDescription, TableStatus, Tag,
};
use ports::StoreError;
use std::time::Duration;

/// An index's name and keys (`name:HASH,name:RANGE`).
type Index = (String, String);

/// The settings of a table a target must share with its source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableShape {
    /// Key attributes with their types and roles, `pk:S:HASH,sk:S:RANGE`.
    pub keys: String,
    /// Global secondary indexes, sorted by name.
    pub global: Vec<Index>,
    /// Local secondary indexes, sorted by name.
    pub local: Vec<Index>,
    /// `PAY_PER_REQUEST` or `PROVISIONED`.
    pub billing: String,
    /// The stream's view type when a stream is enabled.
    pub stream: Option<String>,
    /// Point-in-time recovery is enabled.
    pub pitr: bool,
}

fn keys_of(k: &[KeySchemaElement], defs: &[AttributeDefinition]) -> String {
    k.iter()
        .map(|e| {
            let ty = defs
                .iter()
                .find(|d| d.attribute_name() == e.attribute_name())
                .map_or("?", |d| d.attribute_type().as_str());
            format!("{}:{ty}:{}", e.attribute_name(), e.key_type().as_str())
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl TableShape {
    fn of(t: &TableDescription, pitr: bool) -> Self {
        let defs = t.attribute_definitions();
        let mut global: Vec<Index> = t
            .global_secondary_indexes()
            .iter()
            .map(|g| {
                (
                    g.index_name().unwrap_or_default().to_owned(),
                    keys_of(g.key_schema(), defs),
                )
            })
            .collect();
        let mut local: Vec<Index> = t
            .local_secondary_indexes()
            .iter()
            .map(|g| {
                (
                    g.index_name().unwrap_or_default().to_owned(),
                    keys_of(g.key_schema(), defs),
                )
            })
            .collect();
        global.sort();
        local.sort();
        Self {
            keys: keys_of(t.key_schema(), defs),
            global,
            local,
            billing: t
                .billing_mode_summary()
                .and_then(|b| b.billing_mode())
                .map_or("PROVISIONED", BillingMode::as_str)
                .to_owned(),
            stream: t
                .stream_specification()
                .filter(|s| s.stream_enabled())
                .and_then(|s| s.stream_view_type())
                .map(|v| v.as_str().to_owned()),
            pitr,
        }
    }

    /// What differs from `want`, one phrase each (empty when equal).
    pub fn differences(&self, want: &Self) -> Vec<String> {
        let mut out = Vec::new();
        let mut differ = |what: &str, have: String, want: String| {
            if have != want {
                out.push(format!("{what} {have} where the source's is {want}"));
            }
        };
        let list = |v: &[Index]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.iter()
                    .map(|(n, k)| format!("{n}({k})"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        differ("keys", self.keys.clone(), want.keys.clone());
        differ("global indexes", list(&self.global), list(&want.global));
        differ("local indexes", list(&self.local), list(&want.local));
        differ("billing", self.billing.clone(), want.billing.clone());
        let stream = |s: &Option<String>| s.clone().unwrap_or_else(|| "off".into());
        differ("stream", stream(&self.stream), stream(&want.stream));
        let on = |b: bool| if b { "enabled" } else { "off" }.to_owned();
        differ("point-in-time recovery", on(self.pitr), on(want.pitr));
        out
    }
}

async fn describe(client: &Client, table: &str) -> Result<Option<TableDescription>, StoreError> {
    match client.describe_table().table_name(table).send().await {
        Ok(o) => Ok(o.table),
        Err(e)
            if e.as_service_error()
                .is_some_and(|x| x.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(sdk_error("DescribeTable", e)),
    }
}

async fn pitr(client: &Client, table: &str) -> Result<bool, StoreError> {
    let o = client
        .describe_continuous_backups()
        .table_name(table)
        .send()
        .await
        .map_err(|e| sdk_error("DescribeContinuousBackups", e))?;
    Ok(o.continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status())
        == Some(&PointInTimeRecoveryStatus::Enabled))
}

/// The source table's description and shape, or `None` when it does not exist.
pub async fn shape(
    client: &Client,
    table: &str,
) -> Result<Option<(TableDescription, TableShape)>, StoreError> {
    let Some(t) = describe(client, table).await? else {
        return Ok(None);
    };
    let p = pitr(client, table).await?;
    let s = TableShape::of(&t, p);
    Ok(Some((t, s)))
}

/// Makes `table` like the source table `like` (described with its shape), tagged with
/// `tags`, unless it exists: then it must have that shape. True when it was created.
pub async fn ensure(
    client: &Client,
    table: &str,
    like: &(TableDescription, TableShape),
    tags: &[(String, String)],
) -> Result<bool, StoreError> {
    let (src, want) = like;
    if let Some(t) = describe(client, table).await? {
        let have = TableShape::of(&t, pitr(client, table).await?);
        let d = have.differences(want);
        if d.is_empty() {
            return Ok(false);
        }
        let arn = t.table_arn().unwrap_or_default();
        if !ours(client, arn, tags).await? {
            return Err(StoreError::Config(format!(
                "table {table} exists with another shape than the source's: {}; remove it or name another table for the location",
                d.join("; ")
            )));
        }
        // Made by this migration in a call that died before it was finished.
        finish(client, table, want).await?;
        return Ok(true);
    }
    let provisioned = want.billing == "PROVISIONED";
    let throughput = |p: Option<&aws_sdk_dynamodb::types::ProvisionedThroughputDescription>| {
        ProvisionedThroughput::builder()
            .read_capacity_units(p.and_then(|p| p.read_capacity_units()).unwrap_or(5).max(1))
            .write_capacity_units(p.and_then(|p| p.write_capacity_units()).unwrap_or(5).max(1))
            .build()
            .ok()
    };
    let bad =
        |e: aws_sdk_dynamodb::error::BuildError| StoreError::Config(format!("table {table}: {e}"));
    let mut req = client
        .create_table()
        .table_name(table)
        .set_attribute_definitions(Some(src.attribute_definitions().to_vec()))
        .set_key_schema(Some(src.key_schema().to_vec()))
        .billing_mode(if provisioned {
            BillingMode::Provisioned
        } else {
            BillingMode::PayPerRequest
        });
    if provisioned {
        req = req.set_provisioned_throughput(throughput(src.provisioned_throughput()));
    }
    for g in src.global_secondary_indexes() {
        let mut b = GlobalSecondaryIndex::builder()
            .set_index_name(g.index_name().map(str::to_owned))
            .set_key_schema(Some(g.key_schema().to_vec()))
            .set_projection(
                g.projection()
                    .cloned()
                    .or_else(|| Some(Projection::builder().build())),
            );
        if provisioned {
            b = b.set_provisioned_throughput(throughput(g.provisioned_throughput()));
        }
        req = req.global_secondary_indexes(b.build().map_err(bad)?);
    }
    for l in src.local_secondary_indexes() {
        req = req.local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .set_index_name(l.index_name().map(str::to_owned))
                .set_key_schema(Some(l.key_schema().to_vec()))
                .set_projection(l.projection().cloned())
                .build()
                .map_err(bad)?,
        );
    }
    if let Some(view) = &want.stream {
        req = req.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view.as_str()))
                .build()
                .map_err(bad)?,
        );
    }
    for (k, v) in tags {
        req = req.tags(Tag::builder().key(k).value(v).build().map_err(bad)?);
    }
    match req.send().await {
        Ok(_) => {}
        // Two provisions at once: the other is creating it; it is waited for below.
        Err(e)
            if e.as_service_error()
                .is_some_and(|x| x.is_resource_in_use_exception()) => {}
        Err(e) => return Err(sdk_error("CreateTable", e)),
    }
    finish(client, table, want).await?;
    Ok(true)
}

/// True when the table `arn` carries every one of `tags` (this migration made it).
async fn ours(client: &Client, arn: &str, tags: &[(String, String)]) -> Result<bool, StoreError> {
    let have = client
        .list_tags_of_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| sdk_error("ListTagsOfResource", e))?;
    Ok(!tags.is_empty()
        && tags
            .iter()
            .all(|(k, v)| have.tags().iter().any(|t| t.key() == k && t.value() == v)))
}

/// Waits for the table to be ACTIVE, turns point-in-time recovery on where the source
/// has it, and checks the shape.
async fn finish(client: &Client, table: &str, want: &TableShape) -> Result<(), StoreError> {
    // A new table takes writes, and continuous backups, only once it is ACTIVE; the wait
    // stays inside a one-minute Lambda, and the next call goes on from here.
    let mut active = false;
    for _ in 0..80 {
        if describe(client, table)
            .await?
            .is_some_and(|t| t.table_status() == Some(&TableStatus::Active))
        {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if !active {
        return Err(StoreError::Unavailable(format!(
            "table {table} is not ACTIVE yet after 40 s; provision again to go on"
        )));
    }
    if want.pitr && !pitr(client, table).await? {
        let spec = PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(true)
            .build()
            .map_err(|e| StoreError::Config(format!("table {table}: {e}")))?;
        // Continuous backups are refused for a while after a table turns ACTIVE.
        let mut tries = 0;
        loop {
            match client
                .update_continuous_backups()
                .table_name(table)
                .point_in_time_recovery_specification(spec.clone())
                .send()
                .await
            {
                Ok(_) => break,
                Err(e)
                    if tries < 10
                        && e.as_service_error()
                            .is_some_and(|x| x.is_continuous_backups_unavailable_exception()) =>
                {
                    tries += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(sdk_error("UpdateContinuousBackups", e)),
            }
        }
    }
    let t = describe(client, table).await?.ok_or_else(|| {
        StoreError::Unavailable(format!(
            "table {table} disappeared while it was provisioned"
        ))
    })?;
    let d = TableShape::of(&t, pitr(client, table).await?).differences(want);
    if !d.is_empty() {
        return Err(StoreError::Config(format!(
            "table {table} was created but differs from the source's: {}",
            d.join("; ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_setting() {
        let src = TableShape {
            keys: "pk:S:HASH,sk:S:RANGE".into(),
            global: vec![("by_user".into(), "user:S:HASH".into())],
            local: vec![],
            billing: "PAY_PER_REQUEST".into(),
            stream: Some("NEW_AND_OLD_IMAGES".into()),
            pitr: true,
        };
        assert!(src.differences(&src).is_empty());
        let other = TableShape {
            keys: "id:S:HASH".into(),
            billing: "PROVISIONED".into(),
            ..TableShape::default()
        };
        let d = other.differences(&src);
        assert_eq!(d.len(), 5, "{d:?}");
        assert!(
            d[0].starts_with("keys id:S:HASH where the source's is pk:S:HASH"),
            "{d:?}"
        );
        assert!(d[1].contains("by_user(user:S:HASH)"), "{d:?}");
    }
}
