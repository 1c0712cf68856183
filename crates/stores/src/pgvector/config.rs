//! A pgvector system's catalog settings.

use crate::config::settings;
use lifecycle::StepError;
use lifecycle::catalog::SystemSpec;
use serde::Deserialize;

/// The distance a table's vectors are compared by: the operator class of its ANN index
/// and what a copy must keep, since a vector means nothing under another metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distance {
    /// Cosine distance (`<=>`, `vector_cosine_ops`).
    Cosine,
    /// Euclidean distance (`<->`, `vector_l2_ops`).
    L2,
    /// Negative inner product (`<#>`, `vector_ip_ops`).
    InnerProduct,
}

impl Distance {
    /// The catalog's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cosine => "cosine",
            Self::L2 => "l2",
            Self::InnerProduct => "inner-product",
        }
    }

    /// pgvector's operator class for an index over this distance.
    pub fn opclass(self) -> &'static str {
        match self {
            Self::Cosine => "vector_cosine_ops",
            Self::L2 => "vector_l2_ops",
            Self::InnerProduct => "vector_ip_ops",
        }
    }

    /// The distance of a pgvector operator class or a catalog spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Cosine, Self::L2, Self::InnerProduct]
            .into_iter()
            .find(|d| d.opclass() == s || d.name() == s)
    }
}

/// The approximate-nearest-neighbour index kept on the embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AnnIndex {
    /// HNSW (pgvector 0.5 and later; at most 2000 dimensions).
    #[default]
    Hnsw,
    /// No index: exact scans only (any dimension up to 16000).
    None,
}

/// `backend = "pgvector"`: every tenant's vectors in one table `<schema>.vectors`, keyed
/// by (tenant, key); migration location `green` is schema `<schema>__green`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Connection string, e.g. `host=127.0.0.1 user=postgres dbname=app`.
    pub url: String,
    /// Schema holding the system's tables.
    pub schema: String,
    /// Dimensions of every vector (the column is `vector(<dimension>)`).
    pub dimension: u32,
    /// Distance metric of the embeddings.
    pub distance: Distance,
    /// ANN index on the embeddings.
    #[serde(default)]
    pub index: AnnIndex,
    /// Rows one erase statement deletes.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
}

fn default_batch() -> usize {
    1000
}

/// The largest `vector(n)` pgvector accepts, and the largest it can index with HNSW.
const MAX_DIMENSION: u32 = 16_000;
const MAX_HNSW_DIMENSION: u32 = 2_000;

impl Config {
    /// Parses and checks a catalog entry.
    pub fn parse(spec: &SystemSpec) -> Result<Self, StepError> {
        let c: Self = settings(spec)?;
        crate::postgres::config::check_schema(&spec.name, &c.schema)?;
        let bad = |m: String| {
            Err(StepError::Configuration(format!(
                "system {}: {m}",
                spec.name
            )))
        };
        if c.dimension == 0 || c.dimension > MAX_DIMENSION {
            return bad(format!(
                "dimension must be between 1 and {MAX_DIMENSION} (pgvector's limit), got {}",
                c.dimension
            ));
        }
        if c.index == AnnIndex::Hnsw && c.dimension > MAX_HNSW_DIMENSION {
            return bad(format!(
                "an hnsw index holds at most {MAX_HNSW_DIMENSION} dimensions, got {}; set index = \"none\" or reduce the dimension",
                c.dimension
            ));
        }
        if !(1..=100_000).contains(&c.batch_size) {
            return bad(format!(
                "batch_size must be between 1 and 100000, got {}",
                c.batch_size
            ));
        }
        if !c.url.contains('=') && !c.url.starts_with("postgres") {
            return bad(format!(
                "url must be a PostgreSQL connection string (host=... user=... dbname=...) or a postgresql:// URL, got {:?}",
                c.url
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::{AnnIndex, Config, Distance};
    use lifecycle::Catalog;

    fn parse(extra: &str) -> Result<Config, lifecycle::StepError> {
        let text = format!(
            "environment = \"t\"\nledger = {{ backend = \"embedded\" }}\nlegal_holds = {{ backend = \"embedded\" }}\nsigner = {{ backend = \"local\" }}\n[[systems]]\nname = \"emb\"\nkind = \"vectors\"\nbackend = \"pgvector\"\n{extra}"
        );
        Config::parse(&Catalog::from_toml(&text)?.systems[0])
    }

    const OK: &str = "url = \"host=x user=postgres\"\nschema = \"rag\"\ndimension = 768\n";

    #[test]
    fn parses_with_defaults() {
        let c = parse(&format!("{OK}distance = \"inner-product\"")).expect("valid");
        assert_eq!(
            (c.dimension, c.distance, c.index, c.batch_size),
            (768, Distance::InnerProduct, AnnIndex::Hnsw, 1000)
        );
        for d in [Distance::Cosine, Distance::L2, Distance::InnerProduct] {
            assert_eq!(Distance::parse(d.opclass()), Some(d));
            assert_eq!(Distance::parse(d.name()), Some(d));
        }
    }

    #[test]
    fn refuses_malformed_entries_saying_what_to_change() {
        for (extra, says) in [
            (format!("{OK}distance = \"dot\""), "unknown variant `dot`"),
            (OK.to_owned(), "missing field `distance`"),
            (
                "url = \"host=x\"\nschema = \"rag\"\ndistance = \"l2\"".into(),
                "missing field `dimension`",
            ),
            (
                "url = \"host=x\"\nschema = \"rag\"\ndimension = 0\ndistance = \"l2\"".into(),
                "between 1 and 16000",
            ),
            (
                "url = \"host=x\"\nschema = \"rag\"\ndimension = 3072\ndistance = \"l2\"".into(),
                "index = \"none\"",
            ),
            (
                "url = \"host=x\"\nschema = \"Rag\"\ndimension = 3\ndistance = \"l2\"".into(),
                "schema \"Rag\"",
            ),
            (
                "url = \"host=x\"\nschema = \"a__b\"\ndimension = 3\ndistance = \"l2\"".into(),
                "single '_'",
            ),
            (
                "url = \"localhost\"\nschema = \"rag\"\ndimension = 3\ndistance = \"l2\"".into(),
                "connection string",
            ),
            (
                format!("{OK}distance = \"l2\"\nbatch_size = 0"),
                "batch_size",
            ),
            (
                format!("{OK}distance = \"l2\"\ndimensions = 3"),
                "unknown field `dimensions`",
            ),
            (
                format!("{OK}distance = \"l2\"\nindex = \"ivf\""),
                "unknown variant `ivf`",
            ),
        ] {
            let e = parse(&extra).expect_err(&extra);
            assert_eq!(e.error_type(), "ConfigurationError", "{extra}");
            assert!(e.to_string().contains(says), "{extra}: {e}");
        }
        assert!(parse("url = \"host=x\"\nschema = \"rag\"\ndimension = 3072\ndistance = \"l2\"\nindex = \"none\"").is_ok());
    }
}
