//! Builds every port from a catalog: the handlers' dependencies, made once per process.
//! Each data product is opened by its own `open`, chosen by one `match` on the catalog
//! entry's `backend`; the control state (ledger, holds, routing, migrations, signer,
//! checkpoints) by the catalog's keys for them.

use crate::embedded::{LocalHolds, LocalLedger, LocalMigrations, LocalRouting, LocalSigner, World};
use lifecycle::catalog::{CheckpointBackend, ControlBackend, SignerBackend, SystemSpec};
use lifecycle::{Catalog, StepError, SystemKind};
use ports::backup::{Archive, TenantKeys};
use ports::migrate::{ChangeFeed, Dataset, Locator, Migrations, RoutingStore};
use ports::{
    CheckpointStore, Clock, Ledger, LegalHolds, RequestLog, Services, Signer, SystemClock,
    TenantStore,
};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

/// Environment variable holding the catalog TOML itself (how Lambda receives it).
pub const ENV_CATALOG: &str = "TENANT_CATALOG";
/// Environment variable naming a catalog TOML file.
pub const ENV_CATALOG_FILE: &str = "TENANT_CATALOG_FILE";
/// Environment variable naming the embedded world's data file.
pub const ENV_WORLD: &str = "TENANT_WORLD";

/// One dataset seen through both of its ports.
pub type DatasetPorts = (Arc<dyn Dataset>, Arc<dyn ChangeFeed>);

/// Both ports of a dataset that keeps its change feed beside its records.
pub fn both<T: Dataset + ChangeFeed + 'static>(d: T) -> DatasetPorts {
    let d = Arc::new(d);
    (d.clone(), d)
}

/// One catalog system, opened: its erasure port, and its dataset at each location.
pub trait System: Send + Sync + Debug {
    /// The system's erasure port (it reaches every location a migration may have used).
    fn store(&self) -> Arc<dyn TenantStore>;
    /// The tenant records at `location` (`home`, `green`, `eu-west-1`, ...) and their feed.
    fn dataset(&self, location: &str) -> Result<DatasetPorts, StepError>;
}

/// What products share while a catalog is opened: the embedded world, the AWS
/// configuration and the PostgreSQL pools, each made on first use.
#[derive(Debug)]
pub struct Context {
    world_path: Option<PathBuf>,
    read_only: bool,
    world: Option<World>,
    #[cfg(feature = "aws")]
    aws: Option<aws_config::SdkConfig>,
    #[cfg(feature = "postgres")]
    postgres: BTreeMap<String, crate::postgres::Pg>,
    backup: lifecycle::backup::BackupSpec,
    backup_ports: Option<BackupPorts>,
}

/// The backup archive of the primary region, the replicas, and the keeper of keys.
pub type BackupPorts = (Arc<dyn Archive>, Vec<Arc<dyn Archive>>, Arc<dyn TenantKeys>);

impl Context {
    /// The backup archive(s) and the tenants' keys the catalog's `[backup]` names, made
    /// on first use.
    pub async fn backup_ports(&mut self) -> Result<BackupPorts, StepError> {
        use lifecycle::backup::policy::{ArchiveBackend, KeysBackend};
        if let Some(p) = &self.backup_ports {
            return Ok(p.clone());
        }
        let spec = self.backup.clone();
        let (archive, replicas): (Arc<dyn Archive>, Vec<Arc<dyn Archive>>) = match &spec.archive {
            ArchiveBackend::Directory => {
                let w = self.world()?;
                let root = w
                    .path()
                    .parent()
                    .unwrap_or_else(|| std::path::Path::new("."))
                    .join("backups");
                (
                    Arc::new(crate::embedded::DirectoryArchive::new(root)),
                    Vec::new(),
                )
            }
            #[cfg(feature = "s3")]
            ArchiveBackend::S3 {
                bucket,
                replica_bucket,
                replica_region,
            } => {
                let cfg = self.aws().await?.clone();
                let primary = crate::s3::S3Archive::new(crate::s3::client(&cfg), bucket);
                let mut replicas: Vec<Arc<dyn Archive>> = Vec::new();
                if let (Some(b), Some(r)) = (replica_bucket, replica_region) {
                    let c = crate::s3::client(&cfg);
                    let c = aws_sdk_s3::Client::from_conf(
                        c.config()
                            .to_builder()
                            .region(aws_config::Region::new(r.clone()))
                            .build(),
                    );
                    replicas.push(Arc::new(crate::s3::S3Archive::new(c, b)));
                }
                (Arc::new(primary), replicas)
            }
            #[cfg(not(feature = "s3"))]
            ArchiveBackend::S3 { .. } => return Err(not_built("the backup archive", "s3")),
        };
        let keys: Arc<dyn TenantKeys> = match &spec.keys {
            KeysBackend::Local => Arc::new(crate::embedded::LocalKeys::new(self.world()?)),
            #[cfg(feature = "kms")]
            KeysBackend::Kms {
                alias_prefix,
                pending_window_days,
            } => {
                let cfg = self.aws().await?.clone();
                Arc::new(crate::kms::KmsKeys::new(
                    aws_sdk_kms::Client::new(&cfg),
                    Vec::new(),
                    alias_prefix,
                    *pending_window_days,
                ))
            }
            #[cfg(not(feature = "kms"))]
            KeysBackend::Kms { .. } => return Err(not_built("the backup keys", "kms")),
        };
        let p = (archive, replicas, keys);
        self.backup_ports = Some(p.clone());
        Ok(p)
    }

    /// The embedded world, opened (or created, unless read-only) on first use.
    pub fn world(&mut self) -> Result<World, StepError> {
        if let Some(w) = &self.world {
            return Ok(w.clone());
        }
        let path = self.world_path.clone().ok_or_else(|| {
            StepError::Configuration(format!(
                "the catalog uses the embedded world; set {ENV_WORLD} to its data file"
            ))
        })?;
        let w = if self.read_only {
            World::open_existing(&path)?
        } else {
            World::open(&path)?
        };
        self.world = Some(w.clone());
        Ok(w)
    }

    /// The AWS configuration, loaded from the environment on first use.
    #[cfg(feature = "aws")]
    pub async fn aws(&mut self) -> Result<&aws_config::SdkConfig, StepError> {
        if self.aws.is_none() {
            self.aws = Some(crate::aws::load().await);
        }
        self.aws
            .as_ref()
            .ok_or_else(|| StepError::Internal("AWS configuration not loaded".into()))
    }

    /// The pool of one PostgreSQL server, shared by every system on it.
    #[cfg(feature = "postgres")]
    pub async fn postgres(&mut self, url: &str) -> Result<crate::postgres::Pg, StepError> {
        if let Some(p) = self.postgres.get(url) {
            return Ok(p.clone());
        }
        let p = crate::postgres::Pg::connect(url).await?;
        self.postgres.insert(url.to_owned(), p.clone());
        Ok(p)
    }
}

/// The products this build knows, for messages.
pub const PRODUCTS: &[&str] = &[
    "embedded",
    "archive",
    #[cfg(feature = "cloudwatch")]
    "cloudwatch",
    #[cfg(feature = "s3")]
    "s3",
    #[cfg(feature = "dynamodb")]
    "dynamodb",
    #[cfg(feature = "postgres")]
    "postgres",
    #[cfg(feature = "redis")]
    "redis",
    #[cfg(feature = "pgvector")]
    "pgvector",
    #[cfg(feature = "s3vectors")]
    "s3vectors",
];

fn unknown_backend(spec: &SystemSpec) -> StepError {
    StepError::Configuration(format!(
        "system {}: backend {:?} is not a product this build knows (known: {})",
        spec.name,
        spec.backend,
        PRODUCTS.join(", ")
    ))
}

/// Checks every system's settings against its product, connecting to nothing.
pub fn validate(catalog: &Catalog) -> Result<(), StepError> {
    catalog.validate()?;
    for spec in &catalog.systems {
        match spec.backend.as_str() {
            "embedded" => {
                crate::embedded::config::Config::parse(spec)?;
            }
            "archive" => {
                crate::backups::Config::parse(spec)?;
            }
            #[cfg(feature = "cloudwatch")]
            "cloudwatch" => {
                crate::cloudwatch::Config::parse(spec)?;
            }
            #[cfg(feature = "s3")]
            "s3" => {
                crate::s3::Config::parse(spec)?;
            }
            #[cfg(feature = "dynamodb")]
            "dynamodb" => {
                crate::dynamodb::Config::parse(spec)?;
            }
            #[cfg(feature = "postgres")]
            "postgres" => {
                crate::postgres::Config::parse(spec)?;
            }
            #[cfg(feature = "redis")]
            "redis" => {
                crate::redis::Config::parse(spec)?;
            }
            #[cfg(feature = "pgvector")]
            "pgvector" => {
                crate::pgvector::Config::parse(spec)?;
            }
            #[cfg(feature = "s3vectors")]
            "s3vectors" => {
                crate::s3vectors::Config::parse(spec)?;
            }
            _ => return Err(unknown_backend(spec)),
        }
    }
    #[cfg(feature = "redis")]
    crate::redis::check_overlaps(
        &catalog
            .systems
            .iter()
            .filter(|s| s.backend == "redis")
            .collect::<Vec<_>>(),
    )?;
    Ok(())
}

/// Opens one catalog system with its product.
pub async fn open(spec: &SystemSpec, ctx: &mut Context) -> Result<Arc<dyn System>, StepError> {
    match spec.backend.as_str() {
        "embedded" => crate::embedded::open(spec, ctx),
        "archive" => crate::backups::open(spec, ctx).await,
        #[cfg(feature = "cloudwatch")]
        "cloudwatch" => crate::cloudwatch::open(spec, ctx).await,
        #[cfg(feature = "s3")]
        "s3" => crate::s3::open(spec, ctx).await,
        #[cfg(feature = "dynamodb")]
        "dynamodb" => crate::dynamodb::open(spec, ctx).await,
        #[cfg(feature = "postgres")]
        "postgres" => crate::postgres::open(spec, ctx).await,
        #[cfg(feature = "redis")]
        "redis" => crate::redis::open(spec, ctx).await,
        #[cfg(feature = "pgvector")]
        "pgvector" => crate::pgvector::open(spec, ctx).await,
        #[cfg(feature = "s3vectors")]
        "s3vectors" => crate::s3vectors::open(spec, ctx).await,
        _ => Err(unknown_backend(spec)),
    }
}

#[cfg(not(all(feature = "dynamodb", feature = "s3", feature = "kms")))]
fn not_built(what: &str, product: &str) -> StepError {
    StepError::Configuration(format!(
        "{what} uses {product}, which this build leaves out (enable the stores crate's `{product}` feature)"
    ))
}

/// Everything a handler needs, built once at start and shared by every invocation.
#[derive(Debug, Clone)]
pub struct Deps {
    /// The environment's catalog.
    pub catalog: Arc<Catalog>,
    systems: BTreeMap<String, Arc<dyn System>>,
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
    #[cfg(feature = "aws")]
    aws: Option<aws_config::SdkConfig>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    routing: Option<Arc<dyn RoutingStore>>,
    migrations: Option<Arc<dyn Migrations>>,
    datasets: BTreeMap<(String, String), Arc<dyn Dataset>>,
    backup: Option<BackupPorts>,
}

/// Where the backends that need one find their world or AWS configuration.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// The embedded world's file; required when any backend is embedded.
    pub world: Option<PathBuf>,
    /// AWS configuration; loaded from the environment when absent and needed.
    #[cfg(feature = "aws")]
    pub aws: Option<aws_config::SdkConfig>,
    /// Open an existing world only and never create a signing key: for commands that
    /// only read, so a mistyped data dir is an error and not a new, empty world.
    pub read_only: bool,
}

/// A control table (ledger, holds, routing, migrations) in the catalog's backend.
macro_rules! control {
    ($ctx:expr, $backend:expr, $what:literal, $local:expr, $dynamo:path) => {
        match $backend {
            ControlBackend::Embedded => {
                let w = $ctx.world()?;
                $local(w)
            }
            #[cfg(feature = "dynamodb")]
            ControlBackend::Dynamodb { table } => {
                let client = aws_sdk_dynamodb::Client::new($ctx.aws().await?);
                Arc::new($dynamo(client, table))
            }
            #[cfg(not(feature = "dynamodb"))]
            ControlBackend::Dynamodb { .. } => return Err(not_built($what, "dynamodb")),
        }
    };
}

impl Deps {
    /// Builds every port the catalog names.
    pub async fn connect(catalog: Catalog, opts: ConnectOptions) -> Result<Self, StepError> {
        validate(&catalog)?;
        let mut ctx = Context {
            world_path: opts.world.clone(),
            read_only: opts.read_only,
            world: None,
            #[cfg(feature = "aws")]
            aws: opts.aws.clone(),
            #[cfg(feature = "postgres")]
            postgres: BTreeMap::new(),
            backup: catalog.backup().into_owned(),
            backup_ports: None,
        };
        let mut systems = BTreeMap::new();
        let mut stores = BTreeMap::new();
        for spec in &catalog.systems {
            let system = open(spec, &mut ctx).await?;
            stores.insert(spec.name.to_string(), system.store());
            systems.insert(spec.name.to_string(), system);
        }
        let ledger: Arc<dyn Ledger>;
        let requests: Arc<dyn RequestLog>;
        match &catalog.ledger {
            ControlBackend::Embedded => {
                let l = Arc::new(LocalLedger::new(ctx.world()?));
                (ledger, requests) = (l.clone(), l);
            }
            #[cfg(feature = "dynamodb")]
            ControlBackend::Dynamodb { table } => {
                let client = aws_sdk_dynamodb::Client::new(ctx.aws().await?);
                let l = Arc::new(crate::dynamodb::DynamoLedger::new(client, table));
                (ledger, requests) = (l.clone(), l);
            }
            #[cfg(not(feature = "dynamodb"))]
            ControlBackend::Dynamodb { .. } => return Err(not_built("the ledger", "dynamodb")),
        }
        let holds: Arc<dyn LegalHolds> = control!(
            ctx,
            &catalog.legal_holds,
            "legal_holds",
            |w| Arc::new(LocalHolds::new(w)),
            crate::dynamodb::DynamoHolds::new
        );
        let routing: Option<Arc<dyn RoutingStore>> = match &catalog.routing {
            None => None,
            Some(b) => Some(control!(
                ctx,
                b,
                "routing",
                |w| Arc::new(LocalRouting::new(w)),
                crate::dynamodb::DynamoRouting::new
            )),
        };
        let migrations: Option<Arc<dyn Migrations>> = match &catalog.migrations {
            None => None,
            Some(b) => Some(control!(
                ctx,
                b,
                "migrations",
                |w| Arc::new(LocalMigrations::new(w)),
                crate::dynamodb::DynamoMigrations::new
            )),
        };
        if matches!(catalog.signer, SignerBackend::Local) {
            ctx.world()?;
        }
        let checkpoints: Option<Arc<dyn CheckpointStore>> = match &catalog.checkpoints {
            #[cfg(feature = "s3")]
            Some(CheckpointBackend::S3 {
                bucket,
                prefix,
                retention_days,
            }) => Some(Arc::new(crate::s3::S3Checkpoints::new(
                crate::s3::client(ctx.aws().await?),
                bucket,
                prefix,
                *retention_days,
            ))),
            #[cfg(not(feature = "s3"))]
            Some(CheckpointBackend::S3 { .. }) => return Err(not_built("checkpoints", "s3")),
            Some(CheckpointBackend::Directory { path: Some(p) }) => {
                Some(Arc::new(crate::embedded::DirectoryCheckpoints::new(p)))
            }
            Some(CheckpointBackend::Directory { path: None }) | None => {
                match (
                    std::env::var_os(crate::embedded::ENV_CHECKPOINT_DIR),
                    &ctx.world,
                ) {
                    (Some(d), _) if !d.is_empty() => Some(Arc::new(
                        crate::embedded::DirectoryCheckpoints::new(PathBuf::from(d)),
                    )),
                    (_, Some(w)) => Some(Arc::new(crate::embedded::DirectoryCheckpoints::new(
                        w.path()
                            .parent()
                            .unwrap_or_else(|| std::path::Path::new("."))
                            .join("checkpoints"),
                    ))),
                    _ => None,
                }
            }
        };
        #[cfg(feature = "aws")]
        if matches!(catalog.signer, SignerBackend::Kms { .. })
            || catalog.discovery.as_ref().is_some_and(|d| d.aws)
        {
            ctx.aws().await?;
        }
        // Backups need their archive and keys; an AWS catalog without `[backup]` gets none
        // (its functions never touch a world).
        let backup = if catalog.backup.is_some() || ctx.world.is_some() {
            Some(ctx.backup_ports().await?)
        } else {
            None
        };
        let signer_backend = catalog.signer.clone();
        Ok(Self {
            backup,
            routing,
            migrations,
            datasets: BTreeMap::new(),
            systems,
            catalog: Arc::new(catalog),
            stores,
            holds,
            ledger,
            requests,
            checkpoints,
            read_only: opts.read_only,
            signer: Arc::new(tokio::sync::OnceCell::new()),
            signer_backend,
            world: ctx.world,
            #[cfg(feature = "aws")]
            aws: ctx.aws,
            clock: Arc::new(SystemClock),
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
                ..ConnectOptions::default()
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
                            Arc::new(LocalSigner::load(&crate::embedded::key_file_for(
                                world.path(),
                            ))?)
                        } else {
                            Arc::new(LocalSigner::load_or_create(
                                world,
                                &self.clock.now_rfc3339(),
                            )?)
                        }
                    }
                    #[cfg(feature = "kms")]
                    SignerBackend::Kms { key_id } => {
                        let aws = self
                            .aws
                            .as_ref()
                            .ok_or_else(|| StepError::Internal("AWS config not loaded".into()))?;
                        Arc::new(
                            crate::kms::KmsSigner::connect(aws_sdk_kms::Client::new(aws), key_id)
                                .await?,
                        )
                    }
                    #[cfg(not(feature = "kms"))]
                    SignerBackend::Kms { .. } => return Err(not_built("the signer", "kms")),
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

    /// The AWS configuration, when the catalog uses AWS.
    #[cfg(feature = "aws")]
    pub fn aws_config(&self) -> Option<&aws_config::SdkConfig> {
        self.aws.as_ref()
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

    /// The store of a catalog system, or `InvalidRequest` naming the known ones.
    pub fn store(&self, system: &str) -> Result<&Arc<dyn TenantStore>, StepError> {
        self.stores
            .get(system)
            .ok_or_else(|| self.not_in_catalog(system))
    }

    /// The opened system, or `InvalidRequest` naming the known ones.
    pub fn system(&self, system: &str) -> Result<&Arc<dyn System>, StepError> {
        self.systems
            .get(system)
            .ok_or_else(|| self.not_in_catalog(system))
    }

    fn not_in_catalog(&self, system: &str) -> StepError {
        StepError::invalid(format!(
            "system {system} is not in the {} catalog (known: {})",
            self.catalog.environment,
            self.catalog.system_names().join(", ")
        ))
    }
}

impl Deps {
    fn backup_ports(&self) -> Result<&BackupPorts, StepError> {
        self.backup.as_ref().ok_or_else(|| {
            StepError::Configuration(
                "the catalog has no [backup] section: add one naming the archive and the keys"
                    .into(),
            )
        })
    }
}

impl Locator for Deps {
    fn dataset(&self, system: &str, location: &str) -> Result<Arc<dyn Dataset>, StepError> {
        if let Some(d) = self.datasets.get(&(system.to_owned(), location.to_owned())) {
            return Ok(d.clone());
        }
        Ok(self.system(system)?.dataset(location)?.0)
    }

    fn feed(&self, system: &str, location: &str) -> Result<Arc<dyn ChangeFeed>, StepError> {
        Ok(self.system(system)?.dataset(location)?.1)
    }

    fn kind(&self, system: &str) -> Result<SystemKind, StepError> {
        self.catalog
            .system(system)
            .map(|s| s.kind)
            .ok_or_else(|| StepError::invalid(format!("system {system} is not in the catalog")))
    }
}

#[async_trait::async_trait]
impl Services for Deps {
    fn routing(&self) -> Result<&Arc<dyn RoutingStore>, StepError> {
        Deps::routing(self)
    }
    fn migrations(&self) -> Result<&Arc<dyn Migrations>, StepError> {
        Deps::migrations(self)
    }
    fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
    }
    async fn signer(&self) -> Result<Arc<dyn Signer>, StepError> {
        Deps::signer(self).await
    }
    fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
    fn catalog(&self) -> &Catalog {
        &self.catalog
    }
    fn holds(&self) -> &Arc<dyn LegalHolds> {
        &self.holds
    }
    fn requests(&self) -> &Arc<dyn RequestLog> {
        &self.requests
    }
    fn archive(&self) -> Result<&Arc<dyn Archive>, StepError> {
        Ok(&self.backup_ports()?.0)
    }
    fn replicas(&self) -> &[Arc<dyn Archive>] {
        self.backup.as_ref().map_or(&[], |b| &b.1[..])
    }
    fn keys(&self) -> Result<&Arc<dyn TenantKeys>, StepError> {
        Ok(&self.backup_ports()?.2)
    }
}

#[cfg(test)]
mod tests {
    use super::validate;
    use lifecycle::Catalog;

    #[test]
    fn the_shipped_catalogs_suit_their_products() {
        let services = include_str!("../../../fixtures/catalog.services.toml")
            .replace("@RUN@", "r1")
            .replace("@PG@", "host=x")
            .replace("@PGVECTOR@", "host=y")
            .replace("@REDIS@", "redis://127.0.0.1:6379");
        for text in [
            include_str!("../../../fixtures/catalog.local.toml"),
            include_str!("../../../fixtures/catalog.aws.example.toml"),
            services.as_str(),
        ] {
            let c = Catalog::from_toml(text).expect("parses");
            validate(&c).expect("every product accepts its settings");
        }
    }

    #[test]
    fn redis_systems_whose_prefixes_cover_each_other_on_one_database_are_refused() {
        let two = |a: &str, b: &str, db_b: &str| {
            Catalog::from_toml(&format!(
                "environment = \"t\"\nledger = {{ backend = \"embedded\" }}\nlegal_holds = {{ backend = \"embedded\" }}\nsigner = {{ backend = \"local\" }}\n[[systems]]\nname = \"cache\"\nkind = \"key-value\"\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379/1\"\nprefix = \"{a}\"\n[[systems]]\nname = \"sessions\"\nkind = \"key-value\"\nbackend = \"redis\"\nurl = \"{db_b}\"\nprefix = \"{b}\"\n"
            ))
            .expect("parses")
        };
        let e = validate(&two(
            "a:{tenant_id}:",
            "a:eu:{tenant_id}:",
            "redis://localhost:6379/01",
        ))
        .expect_err("overlap");
        assert!(e.to_string().contains("one covering the other"), "{e}");
        assert!(
            validate(&two(
                "a:{tenant_id}:",
                "b:{tenant_id}:",
                "redis://127.0.0.1:6379/1"
            ))
            .is_ok()
        );
        assert!(
            validate(&two(
                "a:{tenant_id}:",
                "a:eu:{tenant_id}:",
                "redis://127.0.0.1:6379/2"
            ))
            .is_ok()
        );
    }

    #[test]
    fn an_unknown_product_is_refused_naming_the_known_ones() {
        let c = Catalog::from_toml(
            "environment = \"t\"\nledger = { backend = \"embedded\" }\nlegal_holds = { backend = \"embedded\" }\nsigner = { backend = \"local\" }\n[[systems]]\nname = \"v\"\nkind = \"vectors\"\nbackend = \"pinecone\"\n",
        )
        .expect("parses");
        let e = validate(&c).expect_err("unknown");
        assert_eq!(e.error_type(), "ConfigurationError");
        assert!(e.to_string().contains("known: embedded"), "{e}");
    }
}
