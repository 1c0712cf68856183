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
    /// The tenant's own log groups and streams are deleted whole, and streams shared with
    /// other tenants are rewritten without the tenant's events (the others copied to a
    /// new stream, then the old one deleted).
    DeleteAndRewriteLogStreams,
    /// Snapshots are excluded from every restore and their purge is scheduled.
    ExcludeFromRestoreAndPurge,
    /// Every backup object (every version, every region) is deleted and the tenant's
    /// key is destroyed, so copies that cannot be deleted can no longer be read.
    DeleteBackupsAndDestroyKey,
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

/// One system that holds tenant data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemSpec {
    /// Unique name, used in requests and certificates.
    pub name: SystemName,
    /// Kind of data.
    pub kind: SystemKind,
    /// What the system holds, for people reading the catalog.
    #[serde(default)]
    pub holds: String,
    /// The product that stores it (`embedded`, `s3`, `dynamodb`, `postgres`, ...); the
    /// `stores` crate knows each product and parses its settings.
    pub backend: String,
    /// The product's own settings (bucket, table, url, ...), as written in the catalog.
    #[serde(flatten)]
    pub settings: toml::Table,
}

impl SystemSpec {
    /// True when a migration can move this system's records: every kind whose records
    /// can be deleted one by one, and logs whose entry names migration `locations` (the
    /// product then keeps the tenant's records in a stream of their own per location;
    /// a product without a logs dataset takes no `locations`); never backups.
    pub fn migratable(&self) -> bool {
        self.kind.capabilities().single_record_delete
            || (self.kind == SystemKind::Logs && self.settings.contains_key("locations"))
    }
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Where discovery looks for a tenant beyond the catalog's systems.
    #[serde(default)]
    pub discovery: Option<DiscoverySpec>,
    /// Backups: where they are stored, tenants' keys, tiers (default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<crate::backup::BackupSpec>,
    /// Clones: classes of data, anonymisation rules, embeddings (strict, no rules, when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<crate::clone::CloneSpec>,
    /// Systems holding tenant data.
    pub systems: Vec<SystemSpec>,
}

/// Discovery of undocumented systems: everything the credentials can see is scanned for
/// the tenant's identifier, and a place that holds it outside the catalog is reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverySpec {
    /// Run discovery in every erasure's verification, refusing a certificate on a find.
    #[serde(default = "yes")]
    pub on_verify: bool,
    /// Scan every S3 bucket, DynamoDB table and log group the AWS credentials can list.
    #[serde(default)]
    pub aws: bool,
    /// Also scan the PostgreSQL and Redis servers the catalog's systems use (every schema,
    /// every logical database), not only those listed here.
    #[serde(default = "yes")]
    pub catalog_servers: bool,
    /// PostgreSQL servers to scan besides the catalog's (every schema, every table with a
    /// text column).
    #[serde(default)]
    pub postgres: Vec<String>,
    /// Redis servers to scan besides the catalog's (every logical database with keys).
    #[serde(default)]
    pub redis: Vec<String>,
    /// Object bodies read per bucket to look inside, not just at keys.
    #[serde(default = "default_sample")]
    pub sample_bodies: usize,
    /// Most keys, items, rows or events read per bucket, table, group or database.
    #[serde(default = "default_cap")]
    pub max_per_place: usize,
}

fn yes() -> bool {
    true
}
fn default_sample() -> usize {
    100
}
fn default_cap() -> usize {
    100_000
}

impl Catalog {
    /// Parses and validates a catalog from TOML.
    pub fn from_toml(text: &str) -> Result<Self, StepError> {
        let c: Catalog = toml::from_str(text)
            .map_err(|e| StepError::Configuration(format!("catalog is not valid: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    /// Checks what every catalog must satisfy: systems listed, names unique, a backend
    /// named. Each product's own settings are checked by the `stores` crate, which knows
    /// the products.
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
            if s.backend.is_empty() {
                return Err(StepError::Configuration(format!(
                    "system {}: backend is empty; name the product that stores it",
                    s.name
                )));
            }
        }
        if let Some(b) = &self.backup {
            b.validate()?;
        }
        if let Some(c) = &self.clone {
            c.validate(self)?;
        }
        Ok(())
    }

    /// The backup settings (the defaults when the catalog has no `[backup]`).
    pub fn backup(&self) -> std::borrow::Cow<'_, crate::backup::BackupSpec> {
        match &self.backup {
            Some(b) => std::borrow::Cow::Borrowed(b),
            None => std::borrow::Cow::Owned(crate::backup::BackupSpec::default()),
        }
    }

    /// The clone settings (strict, no rules, when the catalog has no `[clone]`).
    pub fn clone_spec(&self) -> std::borrow::Cow<'_, crate::clone::CloneSpec> {
        match &self.clone {
            Some(c) => std::borrow::Cow::Borrowed(c),
            None => std::borrow::Cow::Owned(crate::clone::CloneSpec::default()),
        }
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
name = "redis"
kind = "key-value"
backend = "embedded"
"#;

    #[test]
    fn parses_a_catalog_keeping_each_products_settings() {
        let c = Catalog::from_toml(GOOD).expect("valid");
        assert_eq!(c.system_names(), ["s3", "redis"]);
        let s3 = c.system("s3").expect("s3");
        assert_eq!(s3.backend, "s3");
        assert_eq!(
            s3.settings.get("bucket").and_then(|v| v.as_str()),
            Some("docs")
        );
        assert!(c.system("redis").is_some_and(|s| s.settings.is_empty()));
        assert!(s3.kind.capabilities().versioned);
    }

    #[test]
    fn refuses_duplicates_and_an_empty_backend() {
        let dup = GOOD.replace("name = \"redis\"", "name = \"s3\"");
        assert!(
            Catalog::from_toml(&dup)
                .expect_err("dup")
                .to_string()
                .contains("twice")
        );
        let empty = GOOD.replace("backend = \"embedded\"\n", "backend = \"\"\n");
        assert_eq!(
            Catalog::from_toml(&empty).expect_err("empty").error_type(),
            "ConfigurationError"
        );
    }

    #[test]
    fn the_digest_ignores_formatting_and_sees_settings() {
        let a = Catalog::from_toml(GOOD).expect("a");
        let b =
            Catalog::from_toml(&GOOD.replace("bucket = \"docs\"", "bucket   =   \"docs\" # home"))
                .expect("b");
        assert_eq!(a.digest(), b.digest());
        let c = Catalog::from_toml(&GOOD.replace("\"docs\"", "\"docs2\"")).expect("c");
        assert_ne!(a.digest(), c.digest());
    }

    #[test]
    fn locate_fills_the_template() {
        let t = TenantId::parse("t1").expect("id");
        assert_eq!(locate("tenants/{tenant_id}/", &t), "tenants/t1/");
    }
}
