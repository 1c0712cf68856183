//! Builds every port from a catalog: the handlers' dependencies, made once per process.

use crate::dynamodb::{DynamoDataset, DynamoMigrations, DynamoRouting};
use crate::dynamodb::{DynamoHolds, DynamoLedger, DynamoTenantStore};
use crate::kms::KmsSigner;
use crate::local::{
    LocalDataset, LocalHolds, LocalLedger, LocalMigrations, LocalRouting, LocalSigner,
    LocalTenantStore, World,
};
use crate::migrate::{ChangeFeed, Dataset, Locator, Migrations, RoutingStore};
use crate::postgres::{Pg, PgDataset, PgTenantStore};
use crate::s3::{S3Dataset, S3TenantStore};
use crate::{
    CheckpointStore, Clock, Ledger, LegalHolds, RequestLog, Signer, SystemClock, TenantStore,
};
use lifecycle::catalog::{Backend, CheckpointBackend, ControlBackend, SignerBackend};
use lifecycle::{Catalog, StepError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Environment variable holding the catalog TOML itself (how Lambda receives it).
pub const ENV_CATALOG: &str = "TENANT_CATALOG";
/// Environment variable naming a catalog TOML file.
pub const ENV_CATALOG_FILE: &str = "TENANT_CATALOG_FILE";
/// Environment variable naming the embedded world's data file.
pub const ENV_WORLD: &str = "TENANT_WORLD";

/// Everything a handler needs, built once at start and shared by every invocation.
#[derive(Debug, Clone)]
pub struct Deps {
    /// The environment's catalog.
    pub catalog: Arc<Catalog>,
    stores: BTreeMap<String, Arc<dyn TenantStore>>,
    /// Legal holds.
    pub holds: Arc<dyn LegalHolds>,
    /// The certificate ledger.
    pub ledger: Arc<dyn Ledger>,
    /// Request claims and erasure progress (beside the ledger, erasable).
    pub requests: Arc<dyn RequestLog>,
    checkpoints: Option<Arc<dyn CheckpointStore>>,
    read_only: bool,
    /// The certificate signer, connected on first use so only the functions that sign
    /// need KMS permissions and pay for GetPublicKey.
    signer: Arc<tokio::sync::OnceCell<Arc<dyn Signer>>>,
    signer_backend: SignerBackend,
    world: Option<World>,
    aws: Option<aws_config::SdkConfig>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    routing: Option<Arc<dyn RoutingStore>>,
    migrations: Option<Arc<dyn Migrations>>,
    datasets: BTreeMap<(String, String), Arc<dyn Dataset>>,
    postgres: BTreeMap<String, (Pg, String)>,
    dynamo: BTreeMap<String, aws_sdk_dynamodb::Client>,
    s3: BTreeMap<String, aws_sdk_s3::Client>,
    /// Each DynamoDB system whose catch-up reads its stream, with the stream source shared
    /// by its datasets (the stream ARN is looked up once).
    streams: BTreeMap<String, crate::dynamodb::StreamSource>,
}

/// Where the backends that need one find their world or AWS configuration.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// The embedded world's file; required when any backend is embedded.
    pub world: Option<PathBuf>,
    /// AWS configuration; loaded from the environment when absent and needed.
    pub aws: Option<aws_config::SdkConfig>,
    /// Open an existing world only and never create a signing key: for commands that
    /// only read, so a mistyped data dir is an error and not a new, empty world.
    pub read_only: bool,
}

fn needs_world(c: &Catalog) -> bool {
    c.systems
        .iter()
        .any(|s| matches!(s.backend, Backend::Embedded))
        || matches!(c.ledger, ControlBackend::Embedded)
        || matches!(c.legal_holds, ControlBackend::Embedded)
        || matches!(c.signer, SignerBackend::Local)
        || matches!(c.routing, Some(ControlBackend::Embedded))
        || matches!(c.migrations, Some(ControlBackend::Embedded))
}

fn needs_aws(c: &Catalog) -> bool {
    c.systems
        .iter()
        .any(|s| matches!(s.backend, Backend::S3 { .. } | Backend::Dynamodb { .. }))
        || !matches!(c.ledger, ControlBackend::Embedded)
        || !matches!(c.legal_holds, ControlBackend::Embedded)
        || !matches!(c.signer, SignerBackend::Local)
        || matches!(c.routing, Some(ControlBackend::Dynamodb { .. }))
        || matches!(c.migrations, Some(ControlBackend::Dynamodb { .. }))
}

/// Loads AWS configuration from the environment. S3 uses path-style addressing when an
/// endpoint override is set (local API servers) or `TENANT_S3_PATH_STYLE=1`.
pub async fn load_aws() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

fn s3_client(cfg: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let path_style = std::env::var("TENANT_S3_PATH_STYLE").is_ok_and(|v| v == "1")
        || cfg.endpoint_url().is_some();
    let conf = aws_sdk_s3::config::Builder::from(cfg)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

impl Deps {
    /// Builds every port the catalog names.
    pub async fn connect(catalog: Catalog, opts: ConnectOptions) -> Result<Self, StepError> {
        catalog.validate()?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let world = if needs_world(&catalog) {
            let path = opts.world.clone().ok_or_else(|| {
                StepError::Configuration(format!(
                    "the catalog uses the embedded world; set {ENV_WORLD} to its data file"
                ))
            })?;
            Some(if opts.read_only {
                World::open_existing(&path)?
            } else {
                World::open(&path)?
            })
        } else {
            None
        };
        let aws = match (opts.aws, needs_aws(&catalog)) {
            (Some(c), _) => Some(c),
            (None, true) => Some(load_aws().await),
            (None, false) => None,
        };
        let world_ref = || {
            world
                .clone()
                .ok_or_else(|| StepError::Internal("world not opened".into()))
        };
        let aws_ref = || {
            aws.as_ref()
                .ok_or_else(|| StepError::Internal("AWS config not loaded".into()))
        };

        let mut stores: BTreeMap<String, Arc<dyn TenantStore>> = BTreeMap::new();
        let mut postgres = BTreeMap::new();
        let mut dynamo = BTreeMap::new();
        let mut s3 = BTreeMap::new();
        let mut streams = BTreeMap::new();
        let mut connections: BTreeMap<String, Pg> = BTreeMap::new();
        for s in &catalog.systems {
            if let Backend::Postgres { url, schema } = &s.backend {
                let pg = match connections.get(url) {
                    Some(p) => p.clone(),
                    None => {
                        let p = Pg::connect(url).await?;
                        connections.insert(url.clone(), p.clone());
                        p
                    }
                };
                let store = PgTenantStore::new(pg.clone(), s.name.as_str(), s.kind, schema).await?;
                stores.insert(s.name.to_string(), Arc::new(store));
                postgres.insert(s.name.to_string(), (pg, schema.clone()));
                continue;
            }
            let store: Arc<dyn TenantStore> = match &s.backend {
                Backend::Embedded => {
                    Arc::new(LocalTenantStore::new(world_ref()?, s.name.as_str(), s.kind))
                }
                Backend::S3 {
                    bucket,
                    prefix,
                    max_concurrency,
                    locations,
                } => {
                    let client = s3_client(aws_ref()?);
                    s3.insert(s.name.to_string(), client.clone());
                    Arc::new(
                        S3TenantStore::new(
                            client,
                            s.name.as_str(),
                            s.kind,
                            bucket,
                            prefix,
                            *max_concurrency,
                        )
                        // Erasure reaches every location a migration may have copied to.
                        .with_location_buckets(locations.values().cloned().collect()),
                    )
                }
                Backend::Dynamodb {
                    table,
                    partition_key,
                    sort_key,
                    partition_value,
                    max_concurrency,
                    locations,
                    change_feed,
                } => {
                    let client = aws_sdk_dynamodb::Client::new(aws_ref()?);
                    dynamo.insert(s.name.to_string(), client.clone());
                    if *change_feed == lifecycle::catalog::ChangeFeedKind::Streams {
                        streams.insert(
                            s.name.to_string(),
                            aws_sdk_dynamodbstreams::Client::new(aws_ref()?),
                        );
                    }
                    Arc::new(
                        DynamoTenantStore::new(
                            client,
                            s.name.as_str(),
                            s.kind,
                            table,
                            partition_key,
                            sort_key,
                            partition_value,
                            *max_concurrency,
                        )
                        // Erasure reaches every location a migration may have copied to.
                        .with_location_tables(locations.values().cloned().collect()),
                    )
                }
                Backend::Postgres { .. } => unreachable!("handled above"),
            };
            stores.insert(s.name.to_string(), store);
        }
        let (ledger, requests): (Arc<dyn Ledger>, Arc<dyn RequestLog>) = match &catalog.ledger {
            ControlBackend::Embedded => {
                let l = Arc::new(LocalLedger::new(world_ref()?));
                (l.clone(), l)
            }
            ControlBackend::Dynamodb { table } => {
                let l = Arc::new(DynamoLedger::new(
                    aws_sdk_dynamodb::Client::new(aws_ref()?),
                    table,
                ));
                (l.clone(), l)
            }
        };
        let checkpoints: Option<Arc<dyn CheckpointStore>> = match &catalog.checkpoints {
            Some(CheckpointBackend::S3 {
                bucket,
                prefix,
                retention_days,
            }) => Some(Arc::new(crate::s3::S3Checkpoints::new(
                s3_client(aws_ref()?),
                bucket,
                prefix,
                *retention_days,
            ))),
            Some(CheckpointBackend::Directory { path: Some(p) }) => {
                Some(Arc::new(crate::local::DirectoryCheckpoints::new(p)))
            }
            Some(CheckpointBackend::Directory { path: None }) | None => {
                match (std::env::var_os(crate::local::ENV_CHECKPOINT_DIR), &world) {
                    (Some(d), _) if !d.is_empty() => Some(Arc::new(
                        crate::local::DirectoryCheckpoints::new(PathBuf::from(d)),
                    )),
                    (_, Some(w)) => Some(Arc::new(crate::local::DirectoryCheckpoints::new(
                        w.path()
                            .parent()
                            .unwrap_or_else(|| std::path::Path::new("."))
                            .join("checkpoints"),
                    ))),
                    _ => None,
                }
            }
        };
        let holds: Arc<dyn LegalHolds> = match &catalog.legal_holds {
            ControlBackend::Embedded => Arc::new(LocalHolds::new(world_ref()?)),
            ControlBackend::Dynamodb { table } => Arc::new(DynamoHolds::new(
                aws_sdk_dynamodb::Client::new(aws_ref()?),
                table,
            )),
        };
        let routing: Option<Arc<dyn RoutingStore>> = match &catalog.routing {
            None => None,
            Some(ControlBackend::Embedded) => Some(Arc::new(LocalRouting::new(world_ref()?))),
            Some(ControlBackend::Dynamodb { table }) => Some(Arc::new(DynamoRouting::new(
                aws_sdk_dynamodb::Client::new(aws_ref()?),
                table,
            ))),
        };
        let migrations: Option<Arc<dyn Migrations>> = match &catalog.migrations {
            None => None,
            Some(ControlBackend::Embedded) => Some(Arc::new(LocalMigrations::new(world_ref()?))),
            Some(ControlBackend::Dynamodb { table }) => Some(Arc::new(DynamoMigrations::new(
                aws_sdk_dynamodb::Client::new(aws_ref()?),
                table,
            ))),
        };
        let signer_backend = catalog.signer.clone();
        Ok(Self {
            routing,
            migrations,
            datasets: BTreeMap::new(),
            postgres,
            dynamo,
            s3,
            streams: streams
                .into_iter()
                .map(|(k, c)| (k, crate::dynamodb::StreamSource::new(c)))
                .collect(),
            catalog: Arc::new(catalog),
            stores,
            holds,
            ledger,
            requests,
            checkpoints,
            read_only: opts.read_only,
            signer: Arc::new(tokio::sync::OnceCell::new()),
            signer_backend,
            world,
            aws,
            clock,
        })
    }

    /// Builds the ports from the process environment: the catalog from `TENANT_CATALOG`
    /// (TOML text) or `TENANT_CATALOG_FILE`, the world from `TENANT_WORLD`.
    pub async fn from_env() -> Result<Self, StepError> {
        let text = match (std::env::var(ENV_CATALOG), std::env::var(ENV_CATALOG_FILE)) {
            (Ok(t), _) => t,
            (Err(_), Ok(path)) => std::fs::read_to_string(&path).map_err(|e| {
                StepError::Configuration(format!("cannot read {ENV_CATALOG_FILE}={path}: {e}"))
            })?,
            _ => {
                return Err(StepError::Configuration(format!(
                    "set {ENV_CATALOG} (catalog TOML) or {ENV_CATALOG_FILE} (its path)"
                )));
            }
        };
        let catalog = Catalog::from_toml(&text)?;
        let world = std::env::var_os(ENV_WORLD).map(PathBuf::from);
        Self::connect(
            catalog,
            ConnectOptions {
                world,
                aws: None,
                read_only: false,
            },
        )
        .await
    }

    /// The certificate signer (connected on first call).
    pub async fn signer(&self) -> Result<Arc<dyn Signer>, StepError> {
        self.signer
            .get_or_try_init(|| async {
                let signer: Arc<dyn Signer> = match &self.signer_backend {
                    SignerBackend::Local => {
                        let world = self
                            .world
                            .as_ref()
                            .ok_or_else(|| StepError::Internal("world not opened".into()))?;
                        if self.read_only {
                            Arc::new(LocalSigner::load(&crate::local::key_file_for(
                                world.path(),
                            ))?)
                        } else {
                            Arc::new(LocalSigner::load_or_create(
                                world,
                                &self.clock.now_rfc3339(),
                            )?)
                        }
                    }
                    SignerBackend::Kms { key_id } => {
                        let aws = self
                            .aws
                            .as_ref()
                            .ok_or_else(|| StepError::Internal("AWS config not loaded".into()))?;
                        Arc::new(KmsSigner::connect(aws_sdk_kms::Client::new(aws), key_id).await?)
                    }
                };
                Ok::<_, StepError>(signer)
            })
            .await
            .cloned()
    }

    /// Where checkpoints are published, or a configuration error naming the catalog key.
    pub fn checkpoints(&self) -> Result<&Arc<dyn CheckpointStore>, StepError> {
        self.checkpoints.as_ref().ok_or_else(|| {
            StepError::Configuration(
                "the catalog names no checkpoint store: set checkpoints = { backend = \"s3\", bucket = \"...\" } (or a directory)".into(),
            )
        })
    }

    /// Replaces the clock (the simulator pins time; tests pin it too).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces one system's store (fault-injection tests wrap a store).
    pub fn with_store(mut self, store: Arc<dyn TenantStore>) -> Self {
        self.stores.insert(store.name().to_owned(), store);
        self
    }

    /// The embedded world, when the catalog uses it.
    pub fn world(&self) -> Option<&World> {
        self.world.as_ref()
    }

    /// The routing store, or a configuration error naming the catalog key to set.
    pub fn routing(&self) -> Result<&Arc<dyn RoutingStore>, StepError> {
        self.routing.as_ref().ok_or_else(|| {
            StepError::Configuration(format!(
                "the {} catalog has no `routing` table; add `routing = {{ backend = ... }}` to migrate",
                self.catalog.environment
            ))
        })
    }

    /// The migrations table, or a configuration error naming the catalog key to set.
    pub fn migrations(&self) -> Result<&Arc<dyn Migrations>, StepError> {
        self.migrations.as_ref().ok_or_else(|| {
            StepError::Configuration(format!(
                "the {} catalog has no `migrations` table; add `migrations = {{ backend = ... }}` to migrate",
                self.catalog.environment
            ))
        })
    }

    /// Replaces one system's dataset at one location (fault-injection tests wrap one).
    pub fn with_dataset(mut self, ds: Arc<dyn Dataset>) -> Self {
        self.datasets
            .insert((ds.system().to_owned(), ds.location().to_owned()), ds);
        self
    }

    /// A DynamoDB system's dataset at `location`: the home table, or the table the catalog
    /// names for that location.
    fn dynamo_dataset(
        &self,
        system: &str,
        location: &str,
    ) -> Result<Option<DynamoDataset>, StepError> {
        let (Some(client), Some(spec)) = (self.dynamo.get(system), self.catalog.system(system))
        else {
            return Ok(None);
        };
        let Backend::Dynamodb {
            table,
            partition_key,
            sort_key,
            partition_value,
            max_concurrency,
            locations,
            ..
        } = &spec.backend
        else {
            return Ok(None);
        };
        let table = if location == lifecycle::migration::HOME {
            table
        } else {
            locations.get(location).ok_or_else(|| {
                StepError::Configuration(format!(
                    "system {system}: no table for location {location}; add `locations = {{ {location} = \"<table>\" }}` to its catalog entry"
                ))
            })?
        };
        let client = match aws_region(location) {
            Some(r) => {
                aws_sdk_dynamodb::Client::from_conf(client.config().to_builder().region(r).build())
            }
            None => client.clone(),
        };
        let ds = DynamoDataset::new(
            client,
            system,
            location,
            table,
            partition_key,
            sort_key,
            partition_value,
            *max_concurrency,
        );
        Ok(Some(match self.streams.get(system) {
            Some(src) => ds.with_streams(match aws_region(location) {
                Some(r) => src.in_region(r),
                None => src.clone(),
            }),
            None => ds,
        }))
    }

    /// An S3 system's dataset at `location`: the home bucket, or the bucket the catalog
    /// names for that location (a location named after an AWS region is reached there).
    fn s3_dataset(&self, system: &str, location: &str) -> Result<Option<S3Dataset>, StepError> {
        let (Some(client), Some(spec)) = (self.s3.get(system), self.catalog.system(system)) else {
            return Ok(None);
        };
        let Backend::S3 {
            bucket,
            prefix,
            max_concurrency,
            locations,
        } = &spec.backend
        else {
            return Ok(None);
        };
        let (client, bucket) = if location == lifecycle::migration::HOME {
            (client.clone(), bucket)
        } else {
            let b = locations.get(location).ok_or_else(|| {
                StepError::Configuration(format!(
                    "system {system}: no bucket for location {location}; add `locations = {{ {location} = \"<bucket>\" }}` to its catalog entry"
                ))
            })?;
            let client = match aws_region(location) {
                Some(r) => {
                    aws_sdk_s3::Client::from_conf(client.config().to_builder().region(r).build())
                }
                None => client.clone(),
            };
            (client, b)
        };
        Ok(Some(S3Dataset::new(
            client,
            system,
            location,
            bucket,
            prefix,
            *max_concurrency,
        )))
    }

    fn local_dataset(&self, system: &str, location: &str) -> Result<LocalDataset, StepError> {
        let spec = self.catalog.system(system).ok_or_else(|| {
            StepError::invalid(format!(
                "system {system} is not in the {} catalog (known: {})",
                self.catalog.environment,
                self.catalog.system_names().join(", ")
            ))
        })?;
        match (&spec.backend, &self.world) {
            (Backend::Embedded, Some(w)) => {
                Ok(LocalDataset::new(w.clone(), system, spec.kind, location))
            }
            (Backend::Embedded, None) => Err(StepError::Internal("world not opened".into())),
            (other, _) => Err(StepError::Configuration(format!(
                "system {system}: migrating a {} backend is not supported yet (embedded only)",
                backend_name(other)
            ))),
        }
    }

    /// The store of a catalog system, or `InvalidRequest` naming the known ones.
    pub fn store(&self, system: &str) -> Result<&Arc<dyn TenantStore>, StepError> {
        self.stores.get(system).ok_or_else(|| {
            StepError::invalid(format!(
                "system {system} is not in the {} catalog (known: {})",
                self.catalog.environment,
                self.catalog.system_names().join(", ")
            ))
        })
    }
}

/// The AWS region a location is named after (`eu-west-1`, `us-gov-west-1`), if it is.
fn aws_region(location: &str) -> Option<aws_config::Region> {
    let parts: Vec<&str> = location.split('-').collect();
    let looks = (3..=4).contains(&parts.len())
        && parts[0].len() == 2
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok();
    looks.then(|| aws_config::Region::new(location.to_owned()))
}

fn backend_name(b: &Backend) -> &'static str {
    match b {
        Backend::Embedded => "embedded",
        Backend::S3 { .. } => "s3",
        Backend::Dynamodb { .. } => "dynamodb",
        Backend::Postgres { .. } => "postgres",
    }
}

/// One dataset seen through both of its ports.
type DatasetPorts = (Arc<dyn Dataset>, Arc<dyn ChangeFeed>);

impl Deps {
    /// The backend's dataset of `system` at `location`, as both of its ports (every
    /// backend keeps the feed beside the records).
    fn backend_dataset(&self, system: &str, location: &str) -> Result<DatasetPorts, StepError> {
        fn both<T: Dataset + ChangeFeed + 'static>(d: T) -> DatasetPorts {
            let d = Arc::new(d);
            (d.clone(), d)
        }
        if let Some((pg, schema)) = self.postgres.get(system) {
            return Ok(both(PgDataset::new(pg.clone(), system, schema, location)));
        }
        if let Some(d) = self.dynamo_dataset(system, location)? {
            return Ok(both(d));
        }
        if let Some(d) = self.s3_dataset(system, location)? {
            return Ok(both(d));
        }
        Ok(both(self.local_dataset(system, location)?))
    }
}

impl Locator for Deps {
    fn dataset(&self, system: &str, location: &str) -> Result<Arc<dyn Dataset>, StepError> {
        if let Some(d) = self.datasets.get(&(system.to_owned(), location.to_owned())) {
            return Ok(d.clone());
        }
        Ok(self.backend_dataset(system, location)?.0)
    }

    fn feed(&self, system: &str, location: &str) -> Result<Arc<dyn ChangeFeed>, StepError> {
        Ok(self.backend_dataset(system, location)?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::aws_region;

    #[test]
    fn a_location_named_after_a_region_is_reached_there() {
        for r in ["eu-west-1", "us-east-1", "ap-southeast-2", "us-gov-west-1"] {
            assert_eq!(aws_region(r).map(|x| x.to_string()), Some(r.to_owned()));
        }
        for l in [
            "green",
            "v2",
            "eu-west",
            "blue-green-1x",
            "EU-WEST-1",
            "e-west-1",
            "",
        ] {
            assert!(aws_region(l).is_none(), "{l}");
        }
    }
}
