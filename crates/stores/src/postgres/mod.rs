//! PostgreSQL backends over a real connection: a system's tenant rows ([`PgTenantStore`],
//! for erasure) and its migration datasets with their change feed ([`PgDataset`]).
//!
//! Location `home` is the configured schema; location `green` is schema `<schema>__green`,
//! so erasing a tenant reaches every schema a migration created. Keys use the "C"
//! collation, so scans page in byte order, as every other backend does.

pub mod config;
mod dataset;
pub(crate) mod discover;
mod tenant_store;

pub use config::Config;
pub use dataset::PgDataset;
pub use tenant_store::PgTenantStore;

use crate::wiring::{Context, DatasetPorts, System, both};
use lifecycle::StepError;
use lifecycle::catalog::SystemSpec;
use lifecycle::migration::HOME;
use ports::{StoreError, TenantStore};
use std::sync::Arc;
use tokio_postgres::NoTls;

/// Connections kept per URL: a step uses one or two, a router's concurrent requests more.
const POOL_SIZE: usize = 8;

/// A pool of connections to one server (deadpool-postgres); a transaction holds one.
#[derive(Clone)]
pub struct Pg {
    pool: deadpool_postgres::Pool,
    /// The connection string, to tell two systems on one server and database apart from
    /// others (never logged: `Debug` prints nothing of it).
    url: std::sync::Arc<str>,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pg")
    }
}

/// Turns a driver error into a [`StoreError`]: a lost connection, a terminated backend or
/// a server starting up are `Unavailable`, contention and exhausted resources `Throttled`
/// (both retried by backoff); bad data and missing objects are not retried.
pub(crate) fn pg_err(op: &str, e: tokio_postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        let msg = format!("postgres {op}: {e}");
        // A value the driver cannot encode or decode fails the same way every time.
        if msg.contains("serializing") {
            return StoreError::Corrupt(msg);
        }
        return StoreError::Unavailable(msg);
    };
    let code = db.code().code();
    let msg = format!("postgres {op}: {} ({code})", db.message());
    match code {
        "40001" | "40P01" | "55P03" => StoreError::Throttled(msg),
        c if c.starts_with("53") => StoreError::Throttled(msg),
        // admin_shutdown (pg_terminate_backend), crash_shutdown, cannot_connect_now.
        c if c.starts_with("57P") || c.starts_with("08") => StoreError::Unavailable(msg),
        c if c.starts_with("42") || c.starts_with("3F") => StoreError::Config(msg),
        c if c.starts_with("22") || c.starts_with("23") => StoreError::Corrupt(msg),
        _ => StoreError::Unavailable(msg),
    }
}

impl Pg {
    /// Connects (no TLS: for a local or in-VPC server; the URL never reaches logs).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
        let cfg: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Config(format!("the PostgreSQL connection string is invalid: {e}"))
        })?;
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Config(format!("PostgreSQL pool: {e}")))?;
        let pg = Self {
            pool,
            url: url.into(),
        };
        // One connection now, so a wrong URL or a server that is down fails at start.
        drop(
            pg.client()
                .await
                .map_err(|e| StoreError::Config(format!("cannot connect to PostgreSQL: {e}")))?,
        );
        Ok(pg)
    }

    /// True when `other` reaches the same server and database, so one statement can read
    /// the schemas of both.
    pub(crate) fn same_database(&self, other: &Pg) -> bool {
        self.url == other.url
    }

    /// A connection of the pool, for one statement or one transaction.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("postgres connection: {e}")))
    }
}

/// The schema of `location` of a system whose home schema is `base`.
pub fn schema_for(base: &str, location: &str) -> String {
    if location == HOME {
        return base.to_owned();
    }
    let loc: String = location
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{base}__{loc}")
}

pub(crate) async fn ensure(
    c: &mut deadpool_postgres::ClientWrapper,
    schema: &str,
) -> Result<bool, StoreError> {
    let tx = c.transaction().await.map_err(|e| pg_err("provision", e))?;
    // CREATE ... IF NOT EXISTS races in the catalogs; one lock per schema name.
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&schema])
        .await
        .map_err(|e| pg_err("provision", e))?;
    let exists = tx
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .map_err(|e| pg_err("provision", e))?
        .is_some();
    tx.batch_execute(&format!(
        r#"CREATE SCHEMA IF NOT EXISTS "{schema}";
           CREATE TABLE IF NOT EXISTS "{schema}".records (
               tenant text NOT NULL, key text COLLATE "C" NOT NULL, rev bigint NOT NULL,
               body bytea, PRIMARY KEY (tenant, key));
           CREATE TABLE IF NOT EXISTS "{schema}".changes (
               seq bigserial PRIMARY KEY, tenant text NOT NULL, key text NOT NULL);
           CREATE INDEX IF NOT EXISTS changes_tenant_seq ON "{schema}".changes (tenant, seq);"#
    ))
    .await
    .map_err(|e| pg_err("provision", e))?;
    tx.commit().await.map_err(|e| pg_err("provision", e))?;
    Ok(!exists)
}

/// Opens a catalog entry of `backend = "postgres"` (systems on one server share a pool).
pub async fn open(spec: &SystemSpec, ctx: &mut Context) -> Result<Arc<dyn System>, StepError> {
    let config = Config::parse(spec)?;
    let pg = ctx.postgres(&config.url).await?;
    let store =
        PgTenantStore::new(pg.clone(), spec.name.as_str(), spec.kind, &config.schema).await?;
    Ok(Arc::new(Opened {
        name: spec.name.to_string(),
        schema: config.schema,
        pg,
        store: Arc::new(store),
    }))
}

#[derive(Debug)]
struct Opened {
    name: String,
    schema: String,
    pg: Pg,
    store: Arc<PgTenantStore>,
}

impl System for Opened {
    fn store(&self) -> Arc<dyn TenantStore> {
        self.store.clone()
    }

    fn dataset(&self, location: &str) -> Result<DatasetPorts, StepError> {
        Ok(both(PgDataset::new(
            self.pg.clone(),
            &self.name,
            &self.schema,
            location,
        )))
    }
}
