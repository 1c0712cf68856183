//! The system catalog: which systems hold tenant data, of which kind, on which backend and
//! where a tenant's records live. Erasure (and later migration, backup, clone) is driven by
//! it; a request naming a system that is not in the catalog is refused.

use crate::{StepError, SystemName, TenantId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The placeholder every location template must contain.
pub const TENANT_PLACEHOLDER: &str = "{tenant_id}";

/// What sort of data a system holds; it decides how erasure is done and described.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SystemKind {
    /// Rows in a relational database.
    Relational,
    /// Keys in a key-value store.
    KeyValue,
    /// Embeddings in a vector store.
    Vectors,
    /// Objects in an object store, every version.
    Objects,
    /// Log events; a single event cannot be deleted.
    Logs,
    /// Snapshots; immutable until their retention ends.
    Backups,
    /// Usage events in an analytics store.
    Analytics,
}

/// How a system's data is made unrecoverable; written into the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EraseMethod {
    /// Each record is deleted.
    DeleteRecords,
    /// Every object version and delete marker is deleted.
    DeleteAllVersions,
    /// The tenant's log streams are deleted whole (events cannot be deleted one by one).
    DeleteLogStreams,
    /// Snapshots are excluded from every restore and their purge is scheduled.
    ExcludeFromRestoreAndPurge,
}

/// What a system can and cannot do, declared as data so shared logic can read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// The store keeps old versions (and delete markers) of a record.
    pub versioned: bool,
    /// A single record can be deleted on its own.
    pub single_record_delete: bool,
    /// How erasure is carried out.
    pub erase_method: EraseMethod,
    /// Records erased per backend call.
    pub batch_size: usize,
}

impl SystemKind {
    /// The capabilities a system of this kind has.
    pub fn capabilities(self) -> Capabilities {
        let (versioned, single, method, batch) = match self {
            Self::Objects => (true, true, EraseMethod::DeleteAllVersions, 1000),
            Self::Logs => (false, false, EraseMethod::DeleteLogStreams, 100),
            Self::Backups => (false, false, EraseMethod::ExcludeFromRestoreAndPurge, 500),
            Self::KeyValue => (false, true, EraseMethod::DeleteRecords, 1000),
            Self::Relational | Self::Vectors | Self::Analytics => {
                (false, true, EraseMethod::DeleteRecords, 1000)
            }
        };
        Capabilities {
            versioned,
            single_record_delete: single,
            erase_method: method,
            batch_size: batch,
        }
    }
}

/// Where and how a system's tenant data is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum Backend {
    /// The embedded local world (one SQLite file).
    Embedded,
    /// An S3 bucket; a tenant's objects live under `prefix` (which holds `{tenant_id}`).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix template, e.g. `tenants/{tenant_id}/`.
        prefix: String,
        /// Concurrent DeleteObjects calls.
        #[serde(default = "default_concurrency")]
        max_concurrency: usize,
        /// Buckets of the migration locations (location name to bucket), same prefix.
        #[serde(default)]
        locations: std::collections::BTreeMap<String, String>,
    },
    /// A DynamoDB table; a tenant's items share one partition key value.
    Dynamodb {
        /// Table name.
        table: String,
        /// Partition key attribute name.
        partition_key: String,
        /// Sort key attribute name.
        sort_key: String,
        /// Partition key value template, e.g. `{tenant_id}` or `TENANT#{tenant_id}`.
        #[serde(default = "default_pk_template")]
        partition_value: String,
        /// Concurrent BatchWriteItem calls.
        #[serde(default = "default_concurrency")]
        max_concurrency: usize,
        /// Tables of the migration locations (location name to table), same keys as `table`.
        #[serde(default)]
        locations: std::collections::BTreeMap<String, String>,
        /// Where a migration's catch-up learns of changes: a journal the writes keep, or
        /// the table's DynamoDB Stream.
        #[serde(default)]
        change_feed: ChangeFeedKind,
    },
    /// A PostgreSQL database; a tenant's rows are keyed by tenant id in `schema.records`
    /// (and a migration location `green` lives in schema `<schema>__green`).
    Postgres {
        /// Connection string, e.g. `host=127.0.0.1 user=postgres dbname=app`.
        url: String,
        /// Schema holding the system's tables.
        schema: String,
    },
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

fn default_concurrency() -> usize {
    8
}
fn default_pk_template() -> String {
    TENANT_PLACEHOLDER.to_owned()
}

/// One system that holds tenant data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemSpec {
    /// Unique name, used in requests and certificates.
    pub name: SystemName,
    /// Kind of data.
    pub kind: SystemKind,
    /// What the system holds, for people reading the catalog.
    #[serde(default)]
    pub holds: String,
    /// Backend and location.
    #[serde(flatten)]
    pub backend: Backend,
}

/// Where the ledger, legal holds and signing key live.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum ControlBackend {
    /// In the embedded local world.
    #[default]
    Embedded,
    /// In a DynamoDB table.
    Dynamodb {
        /// Table name.
        table: String,
    },
}

/// Which key signs certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum SignerBackend {
    /// A P-256 PKCS#8 key kept in the embedded world.
    Local,
    /// An AWS KMS key of spec ECC_NIST_P256.
    Kms {
        /// Key id, ARN or alias.
        key_id: String,
    },
}

/// Where signed checkpoints of the ledger are published: never the ledger's own store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum CheckpointBackend {
    /// Files in a directory (default: `checkpoints/` beside the world file;
    /// `TENANT_CHECKPOINT_DIR` overrides).
    Directory {
        /// The directory.
        #[serde(default)]
        path: Option<String>,
    },
    /// Objects in an S3 bucket with Object Lock, written in compliance mode.
    S3 {
        /// Bucket (created with Object Lock enabled).
        bucket: String,
        /// Key prefix.
        #[serde(default = "default_checkpoint_prefix")]
        prefix: String,
        /// Days each checkpoint is locked for.
        #[serde(default = "default_retention_days")]
        retention_days: u32,
    },
}

fn default_checkpoint_prefix() -> String {
    "checkpoints/".into()
}

fn default_retention_days() -> u32 {
    3650
}

/// One environment's catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Environment name, e.g. `local` or `prod-us-east-1`.
    pub environment: String,
    /// Ledger location.
    pub ledger: ControlBackend,
    /// Legal-hold location.
    pub legal_holds: ControlBackend,
    /// Certificate signer.
    pub signer: SignerBackend,
    /// Routing records, router acknowledgements and health windows; needed to migrate.
    #[serde(default)]
    pub routing: Option<ControlBackend>,
    /// The migrations table; needed to migrate.
    #[serde(default)]
    pub migrations: Option<ControlBackend>,
    /// Where ledger checkpoints are published (a directory beside the world by default).
    #[serde(default)]
    pub checkpoints: Option<CheckpointBackend>,
    /// Systems holding tenant data.
    pub systems: Vec<SystemSpec>,
}

impl Catalog {
    /// Parses and validates a catalog from TOML.
    pub fn from_toml(text: &str) -> Result<Self, StepError> {
        let c: Catalog = toml::from_str(text)
            .map_err(|e| StepError::Configuration(format!("catalog is not valid: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    /// Checks names are unique and every location template is safe.
    pub fn validate(&self) -> Result<(), StepError> {
        let mut seen = BTreeSet::new();
        if self.systems.is_empty() {
            return Err(StepError::Configuration("catalog lists no systems".into()));
        }
        for s in &self.systems {
            if !seen.insert(s.name.as_str()) {
                return Err(StepError::Configuration(format!(
                    "catalog lists system {} twice",
                    s.name
                )));
            }
            match &s.backend {
                Backend::Embedded => {}
                Backend::S3 {
                    bucket,
                    prefix,
                    max_concurrency,
                    locations,
                } => {
                    for b in std::iter::once(bucket).chain(locations.values()) {
                        if b.len() < 3 {
                            return Err(StepError::Configuration(format!(
                                "system {}: bucket name {b:?} is shorter than 3 characters",
                                s.name
                            )));
                        }
                    }
                    if !prefix.contains(TENANT_PLACEHOLDER) || !prefix.ends_with('/') {
                        return Err(StepError::Configuration(format!(
                            "system {}: prefix {prefix:?} must contain {TENANT_PLACEHOLDER} and end with '/', so one tenant's prefix can never match another's",
                            s.name
                        )));
                    }
                    check_concurrency(&s.name, *max_concurrency)?;
                    check_locations(&s.name, bucket, locations, "bucket")?;
                }
                Backend::Dynamodb {
                    table,
                    partition_value,
                    max_concurrency,
                    locations,
                    ..
                } => {
                    check_locations(&s.name, table, locations, "table")?;
                    if !partition_value.contains(TENANT_PLACEHOLDER) {
                        return Err(StepError::Configuration(format!(
                            "system {}: partition_value {partition_value:?} must contain {TENANT_PLACEHOLDER}",
                            s.name
                        )));
                    }
                    check_concurrency(&s.name, *max_concurrency)?;
                }
                Backend::Postgres { schema, .. } => {
                    let ok = !schema.is_empty()
                        && schema.len() <= 40
                        && schema
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                        && !schema.contains("__")
                        && !schema.starts_with("pg_");
                    if !ok {
                        return Err(StepError::Configuration(format!(
                            "system {}: schema {schema:?} must be 1-40 of a-z, 0-9 and single '_', not starting with pg_",
                            s.name
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Looks a system up by name.
    pub fn system(&self, name: &str) -> Option<&SystemSpec> {
        self.systems.iter().find(|s| s.name.as_str() == name)
    }

    /// Hex SHA-256 of the catalog's RFC 8785 JSON form: which catalog an erasure proved
    /// "everywhere" against (formatting and comments of the TOML do not change it).
    pub fn digest(&self) -> String {
        serde_json::to_value(self)
            .map(|v| crate::erasure::json_digest(&v))
            .unwrap_or_default()
    }

    /// Every system's name, in catalog order.
    pub fn system_names(&self) -> Vec<String> {
        self.systems.iter().map(|s| s.name.to_string()).collect()
    }
}

/// A migration location must be another place than home and than every other location,
/// or a copy would write over the records it reads.
fn check_locations(
    name: &SystemName,
    home: &str,
    locations: &std::collections::BTreeMap<String, String>,
    what: &str,
) -> Result<(), StepError> {
    let mut seen = std::collections::BTreeSet::from([home]);
    for (loc, place) in locations {
        if loc.is_empty() || loc == crate::migration::HOME {
            return Err(StepError::Configuration(format!(
                "system {name}: location {loc:?} is reserved; name locations like green or eu-west-1"
            )));
        }
        if !seen.insert(place.as_str()) {
            return Err(StepError::Configuration(format!(
                "system {name}: location {loc} uses {what} {place}, already the home {what} or another location's; give each location its own {what}"
            )));
        }
    }
    Ok(())
}

fn check_concurrency(name: &SystemName, n: usize) -> Result<(), StepError> {
    if n == 0 || n > 64 {
        return Err(StepError::Configuration(format!(
            "system {name}: max_concurrency must be between 1 and 64, got {n}"
        )));
    }
    Ok(())
}

/// Fills a location template with a tenant id.
pub fn locate(template: &str, tenant: &TenantId) -> String {
    template.replace(TENANT_PLACEHOLDER, tenant.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalogs_parse() {
        for text in [
            include_str!("../../../fixtures/catalog.local.toml"),
            include_str!("../../../fixtures/catalog.aws.example.toml"),
        ] {
            let c = Catalog::from_toml(text).expect("parses");
            assert!(c.routing.is_some() && c.migrations.is_some());
        }
        let pg = GOOD.replace(
            "backend = \"embedded\"\n",
            "backend = \"postgres\"\nurl = \"host=x\"\nschema = \"pg_catalog\"\n",
        );
        if pg != GOOD {
            assert!(
                Catalog::from_toml(&pg).is_err(),
                "pg_ schemas are PostgreSQL's"
            );
        }
    }

    const GOOD: &str = r#"
environment = "test"
ledger = { backend = "embedded" }
legal_holds = { backend = "dynamodb", table = "holds" }
signer = { backend = "kms", key_id = "alias/certs" }

[[systems]]
name = "s3"
kind = "objects"
backend = "s3"
bucket = "docs"
prefix = "tenants/{tenant_id}/"

[[systems]]
name = "analytics"
kind = "analytics"
backend = "dynamodb"
table = "events"
partition_key = "pk"
sort_key = "sk"
partition_value = "TENANT#{tenant_id}"

[[systems]]
name = "redis"
kind = "key-value"
backend = "embedded"
"#;

    #[test]
    fn parses_a_catalog() {
        let c = Catalog::from_toml(GOOD).expect("valid");
        assert_eq!(c.system_names(), ["s3", "analytics", "redis"]);
        assert!(matches!(
            c.system("s3").map(|s| &s.backend),
            Some(Backend::S3 {
                max_concurrency: 8,
                ..
            })
        ));
        assert_eq!(
            c.system("s3").map(|s| s.kind.capabilities().versioned),
            Some(true)
        );
    }

    #[test]
    fn refuses_unsafe_prefix_and_duplicates() {
        let bad = GOOD.replace("tenants/{tenant_id}/", "tenants/{tenant_id}");
        let e = Catalog::from_toml(&bad).expect_err("prefix");
        assert!(e.to_string().contains("end with '/'"), "{e}");
        let dup = GOOD.replace("name = \"redis\"", "name = \"s3\"");
        assert!(
            Catalog::from_toml(&dup)
                .expect_err("dup")
                .to_string()
                .contains("twice")
        );
        let unknown = GOOD.replace("backend = \"embedded\"\n", "backend = \"pinecone\"\n");
        assert_eq!(
            Catalog::from_toml(&unknown)
                .expect_err("unknown")
                .error_type(),
            "ConfigurationError"
        );
    }

    #[test]
    fn refuses_a_location_that_is_home_or_shared() {
        let s3 = |locs: &str| {
            GOOD.replace(
                "bucket = \"docs\"\n",
                &format!("bucket = \"docs\"\nlocations = {{ {locs} }}\n"),
            )
        };
        let ok = Catalog::from_toml(&s3("green = \"docs-green\", \"eu-west-1\" = \"docs-eu\""));
        assert!(ok.is_ok(), "{ok:?}");
        for (locs, says) in [
            ("green = \"docs\"", "already the home bucket"),
            (
                "green = \"d-g\", blue = \"d-g\"",
                "already the home bucket or another",
            ),
            ("home = \"docs-home\"", "reserved"),
        ] {
            let e = Catalog::from_toml(&s3(locs)).expect_err(locs);
            assert!(e.to_string().contains(says), "{locs}: {e}");
            assert_eq!(e.error_type(), "ConfigurationError");
        }
    }

    #[test]
    fn a_dynamodb_change_feed_is_a_journal_unless_it_says_streams() {
        let table = |extra: &str| {
            format!(
                "{GOOD}\n[[systems]]\nname = \"events\"\nkind = \"analytics\"\nholds = \"events\"\nbackend = \"dynamodb\"\ntable = \"ev\"\npartition_key = \"pk\"\nsort_key = \"sk\"\npartition_value = \"T#{{tenant_id}}\"\n{extra}"
            )
        };
        let feed = |text: &str| match Catalog::from_toml(text)
            .map(|c| c.system("events").map(|s| s.backend.clone()))
        {
            Ok(Some(Backend::Dynamodb { change_feed, .. })) => Ok(change_feed),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(feed(&table("")).expect("default"), ChangeFeedKind::Journal);
        assert_eq!(
            feed(&table("change_feed = \"streams\"")).expect("streams"),
            ChangeFeedKind::Streams
        );
        let e = feed(&table("change_feed = \"stream\"")).expect_err("typo");
        assert_eq!(e.error_type(), "ConfigurationError");
        assert!(e.to_string().contains("streams"), "{e}");
    }

    #[test]
    fn locate_fills_the_template() {
        let t = TenantId::parse("t1").expect("id");
        assert_eq!(locate("tenants/{tenant_id}/", &t), "tenants/t1/");
    }
}
