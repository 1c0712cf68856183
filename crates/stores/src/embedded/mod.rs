//! The embedded world: one SQLite file that stands in for every system of the catalog,
//! the legal holds, the ledger and the local signing key, so state survives between
//! commands and the whole product runs with no AWS account and no services.

mod archive;
mod checkpoints;
pub mod config;
mod dataset;
mod holds;
mod keys;
mod ledger;
mod routing;
mod signer;
mod tenant_store;

pub use archive::DirectoryArchive;
pub use checkpoints::{DirectoryCheckpoints, ENV_CHECKPOINT_DIR};
pub use dataset::LocalDataset;
pub use holds::LocalHolds;
pub use keys::LocalKeys;
pub use ledger::LocalLedger;
pub use routing::{LocalMigrations, LocalRouting};
pub use signer::{ENV_KEY_FILE, LocalSigner, key_file_for};
pub use tenant_store::LocalTenantStore;

use crate::wiring::{Context, DatasetPorts, System, both};
use lifecycle::catalog::SystemSpec;
use lifecycle::{StepError, SystemKind};
use ports::{StoreError, TenantStore};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;";

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS records (
    system TEXT NOT NULL, tenant TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,
    body BLOB, excluded INTEGER NOT NULL DEFAULT 0, purge_after TEXT,
    PRIMARY KEY (system, tenant, key, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS legal_holds (
    tenant TEXT NOT NULL, hold_id TEXT NOT NULL, reason TEXT NOT NULL, placed_at TEXT NOT NULL,
    released_at TEXT, PRIMARY KEY (tenant, hold_id)
);
CREATE TABLE IF NOT EXISTS ledger_entries (
    chain TEXT NOT NULL, seq INTEGER NOT NULL, entry_hash TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE TABLE IF NOT EXISTS ledger_heads (chain TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL, frontier TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS ledger_requests (
    chain TEXT NOT NULL, request_id TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (chain, request_id)
);
CREATE TABLE IF NOT EXISTS ledger_nodes (
    chain TEXT NOT NULL, level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (chain, level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS request_claims (
    request_id TEXT PRIMARY KEY, digest TEXT NOT NULL, reason TEXT NOT NULL, claimed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS request_progress (
    request_id TEXT NOT NULL, system TEXT NOT NULL, found INTEGER, erased INTEGER NOT NULL,
    done INTEGER NOT NULL, PRIMARY KEY (request_id, system)
);
CREATE TABLE IF NOT EXISTS signing_keys (key_id TEXT PRIMARY KEY, pkcs8_pem TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changes (
    system TEXT NOT NULL, tenant TEXT NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL,
    PRIMARY KEY (system, tenant, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS provisioned (
    system TEXT NOT NULL, tenant TEXT NOT NULL, PRIMARY KEY (system, tenant)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS routing (tenant TEXT PRIMARY KEY, epoch INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS router_acks (
    tenant TEXT NOT NULL, router_id TEXT NOT NULL, epoch INTEGER NOT NULL, at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, router_id)
);
CREATE TABLE IF NOT EXISTS health (
    tenant TEXT NOT NULL, epoch INTEGER NOT NULL, env TEXT NOT NULL, router_id TEXT NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (tenant, epoch, env, router_id)
);
CREATE TABLE IF NOT EXISTS migrations (tenant TEXT PRIMARY KEY, version INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tenant_keys (
    tenant TEXT PRIMARY KEY, kek BLOB, created_at TEXT NOT NULL, destroyed_at TEXT
);
"#;

/// Worlds written before migration existed lack the revision column; add it in place.
fn upgrade(conn: &Connection) -> Result<(), StoreError> {
    let has_rev: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('records') WHERE name = 'rev'")
        .and_then(|mut s| s.exists([]))
        .map_err(|e| db_err("schema", e))?;
    if !has_rev {
        conn.execute_batch("ALTER TABLE records ADD COLUMN rev INTEGER NOT NULL DEFAULT 0")
            .map_err(|e| db_err("schema", e))?;
    }
    // Worlds written before the Merkle tree lack the frontier; the next append rebuilds it.
    let has_frontier: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('ledger_heads') WHERE name = 'frontier'")
        .and_then(|mut s| s.exists([]))
        .map_err(|e| db_err("schema", e))?;
    if !has_frontier {
        conn.execute_batch(
            "ALTER TABLE ledger_heads ADD COLUMN frontier TEXT NOT NULL DEFAULT '[]'",
        )
        .map_err(|e| db_err("schema", e))?;
    }
    Ok(())
}

/// WAL mode, then the schema and its upgrades in one IMMEDIATE transaction, so that
/// processes opening an empty data dir together never both add the same column.
fn init(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(PRAGMAS)
        .map_err(|e| db_err("schema", e))?;
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| db_err("schema", e))?;
    let made = conn
        .execute_batch(SCHEMA)
        .map_err(|e| db_err("schema", e))
        .and_then(|()| upgrade(conn));
    match made {
        Ok(()) => conn
            .execute_batch("COMMIT")
            .map_err(|e| db_err("schema", e)),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// A handle on the embedded world's data file. Cheap to clone; several handles (or
/// processes) may open the same file, and SQLite's locking keeps them consistent.
#[derive(Debug, Clone)]
pub struct World {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

pub(crate) fn db_err(op: &str, e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Throttled(format!("embedded world {op}: busy"))
        }
        other => StoreError::Unavailable(format!("embedded world {op}: {other}")),
    }
}

impl World {
    /// Opens an existing world; a missing file is `NotFound`, and nothing is created.
    /// Read-only commands use this, so a mistyped data dir never verifies as empty.
    pub fn open_existing(path: &Path) -> Result<Self, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Config(format!(
                "no world at {}: run `tenantctl demo` first, or point --data-dir (TENANT_DATA_DIR) at an existing world",
                path.display()
            )));
        }
        Self::open(path)
    }

    /// Opens (creating if needed) the world file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| {
            StoreError::Config(format!(
                "cannot open the world file {}: {e}",
                path.display()
            ))
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| db_err("open", e))?;
        // Opening an empty data dir from several processes at once: the switch to WAL and
        // the schema take locks that SQLite's busy handler does not always wait for, so
        // the whole initialisation is retried while the file is busy.
        let mut attempt = 0u32;
        loop {
            match init(&conn) {
                Ok(()) => break,
                Err(StoreError::Throttled(_)) if attempt < 200 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(
                        5 + u64::from(attempt % 20),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
        })
    }

    /// Opens a second, independent connection to the same file.
    pub fn reopen(&self) -> Result<Self, StoreError> {
        Self::open(&self.path)
    }

    /// Where the world file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Locks the connection. A poisoned lock only means another task panicked mid-call;
    /// SQLite rolled its transaction back, so the connection is still sound.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs raw SQL against the world: for tests that tamper with stored data on purpose.
    pub fn execute_raw(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<usize, StoreError> {
        self.conn()
            .execute(sql, params)
            .map_err(|e| db_err("raw", e))
    }
}

impl World {
    /// Runs a raw counting query with one text parameter (tests inspect stored rows).
    pub fn count_raw(&self, sql: &str, param: &str) -> Result<u64, StoreError> {
        self.conn()
            .query_row(sql, [param], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(|e| db_err("raw", e))
    }
}

/// Opens a catalog entry of `backend = "embedded"`.
pub fn open(spec: &SystemSpec, ctx: &mut Context) -> Result<Arc<dyn System>, StepError> {
    config::Config::parse(spec)?;
    let world = ctx.world()?;
    Ok(Arc::new(Opened {
        store: Arc::new(LocalTenantStore::new(
            world.clone(),
            spec.name.as_str(),
            spec.kind,
        )),
        world,
        name: spec.name.to_string(),
        kind: spec.kind,
    }))
}

#[derive(Debug)]
struct Opened {
    world: World,
    name: String,
    kind: SystemKind,
    store: Arc<LocalTenantStore>,
}

impl System for Opened {
    fn store(&self) -> Arc<dyn TenantStore> {
        self.store.clone()
    }

    fn dataset(&self, location: &str) -> Result<DatasetPorts, StepError> {
        Ok(both(LocalDataset::new(
            self.world.clone(),
            &self.name,
            self.kind,
            location,
        )))
    }
}

#[cfg(test)]
mod tests;
