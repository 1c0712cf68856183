//! A DynamoDB system's catalog settings.

use crate::config::{
    check_concurrency, check_locations, check_template, default_concurrency, settings,
};
use lifecycle::StepError;
use lifecycle::catalog::{SystemSpec, TENANT_PLACEHOLDER};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `backend = "dynamodb"`: a tenant's items share one partition key value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Table name.
    pub table: String,
    /// Partition key attribute name.
    pub partition_key: String,
    /// Sort key attribute name.
    pub sort_key: String,
    /// Partition key value template, e.g. `{tenant_id}` or `TENANT#{tenant_id}`.
    #[serde(default = "default_pk_template")]
    pub partition_value: String,
    /// Concurrent BatchWriteItem calls.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Tables of the migration locations (location name to table), same keys as `table`.
    #[serde(default)]
    pub locations: BTreeMap<String, String>,
    /// Where a migration's catch-up learns of changes: a journal the writes keep, or the
    /// table's DynamoDB Stream.
    #[serde(default)]
    pub change_feed: ChangeFeedKind,
}

/// Where a DynamoDB system's migration catch-up reads its changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeFeedKind {
    /// Each write also appends to a journal in the tenant's partition (one
    /// `TransactWriteItems`); positions follow commit order.
    #[default]
    Journal,
    /// Each write is one conditional `PutItem`; catch-up reads the table's stream (view
    /// `NEW_IMAGE` or `NEW_AND_OLD_IMAGES`), which keeps 24 hours.
    Streams,
}

fn default_pk_template() -> String {
    TENANT_PLACEHOLDER.to_owned()
}

impl Config {
    /// Parses and checks a catalog entry.
    pub fn parse(spec: &SystemSpec) -> Result<Self, StepError> {
        let c: Self = settings(spec)?;
        check_locations(&spec.name, &c.table, &c.locations, "table")?;
        check_template(&spec.name, "partition_value", &c.partition_value)?;
        check_concurrency(&spec.name, c.max_concurrency)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::{ChangeFeedKind, Config};
    use lifecycle::Catalog;

    fn feed(extra: &str) -> Result<ChangeFeedKind, lifecycle::StepError> {
        let pv = if extra.contains("partition_value") {
            ""
        } else {
            "partition_value = \"T#{tenant_id}\""
        };
        let text = format!(
            "environment = \"t\"\nledger = {{ backend = \"embedded\" }}\nlegal_holds = {{ backend = \"embedded\" }}\nsigner = {{ backend = \"local\" }}\n[[systems]]\nname = \"events\"\nkind = \"analytics\"\nbackend = \"dynamodb\"\ntable = \"ev\"\npartition_key = \"pk\"\nsort_key = \"sk\"\n{extra}\n{pv}"
        );
        Ok(Config::parse(&Catalog::from_toml(&text)?.systems[0])?.change_feed)
    }

    #[test]
    fn a_change_feed_is_a_journal_unless_it_says_streams() {
        assert_eq!(feed("").expect("default"), ChangeFeedKind::Journal);
        assert_eq!(
            feed("change_feed = \"streams\"").expect("streams"),
            ChangeFeedKind::Streams
        );
        let e = feed("change_feed = \"stream\"").expect_err("typo");
        assert_eq!(e.error_type(), "ConfigurationError");
        assert!(e.to_string().contains("streams"), "{e}");
    }

    #[test]
    fn refuses_a_partition_value_without_the_tenant() {
        let e = feed("partition_value = \"ALL\"").expect_err("no tenant");
        assert!(e.to_string().contains("{tenant_id}"), "{e}");
    }
}
