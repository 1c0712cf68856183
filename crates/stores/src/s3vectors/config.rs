//! An S3 Vectors system's catalog settings.

use crate::config::{check_locations, check_template, settings};
use lifecycle::catalog::{SystemSpec, TENANT_PLACEHOLDER};
use lifecycle::{StepError, SystemName};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The distance an index compares its vectors by; a copy must keep it, since a vector
/// means nothing under another metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distance {
    /// Cosine distance.
    Cosine,
    /// Euclidean distance.
    Euclidean,
}

impl Distance {
    /// The catalog's (and the service's) spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cosine => "cosine",
            Self::Euclidean => "euclidean",
        }
    }
}

/// `backend = "s3vectors"`: one index per tenant (`index = "emb-{tenant_id}"`) in a
/// vector bucket; migration location `green` is the same index name in another bucket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The vector bucket holding the tenants' indexes.
    pub vector_bucket: String,
    /// Index name template; must hold `{tenant_id}`.
    pub index: String,
    /// Dimensions of every vector.
    pub dimension: u32,
    /// Distance metric of the indexes.
    pub distance: Distance,
    /// Keys one DeleteVectors (and one PutVectors of a copy) carries, at most 500.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Vector buckets of the migration locations (location name to bucket name).
    #[serde(default)]
    pub locations: BTreeMap<String, String>,
}

fn default_batch() -> usize {
    500
}

/// S3 Vectors' largest dimension and largest batch of keys per call.
const MAX_DIMENSION: u32 = 4096;
const MAX_BATCH: usize = 500;

impl Config {
    /// Parses and checks a catalog entry.
    pub fn parse(spec: &SystemSpec) -> Result<Self, StepError> {
        let c: Self = settings(spec)?;
        let bad = |m: String| {
            Err(StepError::Configuration(format!(
                "system {}: {m}",
                spec.name
            )))
        };
        check_template(&spec.name, "index", &c.index)?;
        let literal = c.index.replace(TENANT_PLACEHOLDER, "");
        // The template's own text is limited to what index names allow minus '.', since
        // the product spends '.' on escaping tenant ids and naming each tenant's feed.
        if c.index.matches(TENANT_PLACEHOLDER).count() != 1
            || !literal
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            || !c
                .index
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
        {
            return bad(format!(
                "index {:?} must start with a-z or 0-9, hold {TENANT_PLACEHOLDER} once and otherwise only a-z, 0-9 and '-' (e.g. \"emb-{TENANT_PLACEHOLDER}\")",
                c.index
            ));
        }
        if literal.len() > 40 {
            return bad(format!(
                "index {:?} leaves too little of the 63 characters of an index name for the tenant id; shorten it",
                c.index
            ));
        }
        if c.dimension == 0 || c.dimension > MAX_DIMENSION {
            return bad(format!(
                "dimension must be between 1 and {MAX_DIMENSION} (S3 Vectors' limit), got {}",
                c.dimension
            ));
        }
        if !(1..=MAX_BATCH).contains(&c.batch_size) {
            return bad(format!(
                "batch_size must be between 1 and {MAX_BATCH} (keys per DeleteVectors), got {}",
                c.batch_size
            ));
        }
        check_bucket(&spec.name, &c.vector_bucket)?;
        for b in c.locations.values() {
            check_bucket(&spec.name, b)?;
        }
        check_locations(&spec.name, &c.vector_bucket, &c.locations, "vector bucket")?;
        Ok(c)
    }
}

/// A vector bucket name as the service accepts it: 3-63 of a-z, 0-9 and '-', starting
/// and ending with a letter or digit.
fn check_bucket(name: &SystemName, bucket: &str) -> Result<(), StepError> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && edge(bucket.chars().next())
        && edge(bucket.chars().last());
    if ok {
        Ok(())
    } else {
        Err(StepError::Configuration(format!(
            "system {name}: vector bucket {bucket:?} must be 3-63 of a-z, 0-9 and '-', starting and ending with a letter or digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::{Config, Distance};
    use lifecycle::Catalog;

    fn parse(extra: &str) -> Result<Config, lifecycle::StepError> {
        let text = format!(
            "environment = \"t\"\nledger = {{ backend = \"embedded\" }}\nlegal_holds = {{ backend = \"embedded\" }}\nsigner = {{ backend = \"local\" }}\n[[systems]]\nname = \"emb\"\nkind = \"vectors\"\nbackend = \"s3vectors\"\n{extra}"
        );
        Config::parse(&Catalog::from_toml(&text)?.systems[0])
    }

    const OK: &str =
        "vector_bucket = \"rag-vectors\"\nindex = \"emb-{tenant_id}\"\ndimension = 768\n";

    #[test]
    fn parses_with_defaults() {
        let c = parse(&format!(
            "{OK}distance = \"euclidean\"\nlocations = {{ green = \"rag-green\" }}"
        ))
        .expect("valid");
        assert_eq!(
            (c.dimension, c.distance, c.batch_size, c.locations.len()),
            (768, Distance::Euclidean, 500, 1)
        );
    }

    #[test]
    fn refuses_malformed_entries_saying_what_to_change() {
        for (extra, says) in [
            (format!("{OK}distance = \"dot\""), "unknown variant `dot`"),
            (OK.to_owned(), "missing field `distance`"),
            (
                format!("{OK}distance = \"cosine\"\ndimensions = 3"),
                "unknown field `dimensions`",
            ),
            (
                "vector_bucket = \"rag\"\nindex = \"emb\"\ndimension = 3\ndistance = \"cosine\""
                    .into(),
                "must contain {tenant_id}",
            ),
            (
                "vector_bucket = \"rag\"\nindex = \"Emb_{tenant_id}\"\ndimension = 3\ndistance = \"cosine\"".into(),
                "only a-z, 0-9 and '-'",
            ),
            (
                "vector_bucket = \"rag\"\nindex = \"{tenant_id}-x\"\ndimension = 3\ndistance = \"cosine\"".into(),
                "must start with a-z",
            ),
            (
                "vector_bucket = \"rag\"\nindex = \"e.{tenant_id}\"\ndimension = 3\ndistance = \"cosine\"".into(),
                "only a-z, 0-9 and '-'",
            ),
            (
                "vector_bucket = \"rag\"\nindex = \"e-{tenant_id}\"\ndimension = 0\ndistance = \"cosine\"".into(),
                "between 1 and 4096",
            ),
            (
                "vector_bucket = \"Rag_1\"\nindex = \"e-{tenant_id}\"\ndimension = 3\ndistance = \"cosine\"".into(),
                "vector bucket \"Rag_1\"",
            ),
            (
                format!("{OK}distance = \"cosine\"\nbatch_size = 501"),
                "batch_size",
            ),
            (
                format!("{OK}distance = \"cosine\"\nlocations = {{ green = \"rag-vectors\" }}"),
                "give each location its own vector bucket",
            ),
            (
                format!("{OK}distance = \"cosine\"\nlocations = {{ home = \"rag-other\" }}"),
                "reserved",
            ),
            ("index = \"e-{tenant_id}\"\ndimension = 3\ndistance = \"cosine\"".into(), "missing field `vector_bucket`"),
        ] {
            let e = parse(&extra).expect_err(&extra);
            assert_eq!(e.error_type(), "ConfigurationError", "{extra}");
            assert!(e.to_string().contains(says), "{extra}: {e}");
        }
    }
}
