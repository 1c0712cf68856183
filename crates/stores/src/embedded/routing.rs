use super::{World, db_err};
use async_trait::async_trait;
use lifecycle::TenantId;
use lifecycle::migration::{Env, MigrationRecord, Routing, Window};
use ports::Contended;
use ports::StoreError;
use ports::migrate::{Ack, Migrations, RoutingStore};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};
use tokio::sync::watch;

type Watchers = Mutex<HashMap<(PathBuf, String), watch::Sender<u64>>>;

/// Routers in this process hear of a routing change at once; other processes poll.
static WATCHERS: LazyLock<Watchers> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn sender(world: &World, tenant: &str) -> watch::Sender<u64> {
    let mut m = WATCHERS.lock().unwrap_or_else(|p| p.into_inner());
    m.entry((world.path().to_owned(), tenant.to_owned()))
        .or_insert_with(|| watch::channel(0).0)
        .clone()
}

/// Routing records, router acknowledgements and health windows in the embedded world.
#[derive(Debug, Clone)]
pub struct LocalRouting {
    world: World,
}

impl LocalRouting {
    /// The routing store of `world`.
    pub fn new(world: World) -> Self {
        Self { world }
    }
}

fn env_name(env: Env) -> &'static str {
    match env {
        Env::Source => "source",
        Env::Target => "target",
    }
}

fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("stored {what} is unreadable: {e}"))
}

#[async_trait]
impl RoutingStore for LocalRouting {
    async fn get(&self, tenant: &TenantId) -> Result<Option<Routing>, StoreError> {
        let body: Option<String> = self
            .world
            .conn()
            .query_row(
                "SELECT body FROM routing WHERE tenant = ?1",
                params![tenant.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_err("routing", e))?;
        body.map(|b| serde_json::from_str(&b).map_err(|e| corrupt("routing", e)))
            .transpose()
    }

    async fn put(&self, routing: &Routing, expected: Option<u64>) -> Result<(), StoreError> {
        let body = serde_json::to_string(routing).map_err(|e| corrupt("routing", e))?;
        {
            let mut conn = self.world.conn();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| db_err("routing", e))?;
            let stored: Option<i64> = tx
                .query_row(
                    "SELECT epoch FROM routing WHERE tenant = ?1",
                    params![routing.tenant_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| db_err("routing", e))?;
            let stored = stored.map(|e| e.max(0) as u64);
            if stored != expected || expected.is_some_and(|e| routing.epoch <= e) {
                return Err(StoreError::conflict(
                    Contended::RoutingEpoch {
                        tenant: routing.tenant_id.clone(),
                        expected,
                    },
                    format!(
                        "it is at epoch {stored:?}; epoch {} must follow",
                        routing.epoch
                    ),
                ));
            }
            tx.execute(
                "INSERT OR REPLACE INTO routing (tenant, epoch, body) VALUES (?1, ?2, ?3)",
                params![routing.tenant_id, routing.epoch as i64, body],
            )
            .map_err(|e| db_err("routing", e))?;
            tx.commit().map_err(|e| db_err("routing", e))?;
        }
        sender(&self.world, &routing.tenant_id).send_replace(routing.epoch);
        Ok(())
    }

    async fn ack(&self, tenant: &TenantId, ack: &Ack) -> Result<(), StoreError> {
        self.world
            .conn()
            .execute(
                "INSERT OR REPLACE INTO router_acks (tenant, router_id, epoch, at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![tenant.as_str(), ack.router_id, ack.epoch as i64, ack.at_ms as i64],
            )
            .map(|_| ())
            .map_err(|e| db_err("ack", e))
    }

    async fn acks(&self, tenant: &TenantId) -> Result<Vec<Ack>, StoreError> {
        let conn = self.world.conn();
        let mut stmt = conn
            .prepare_cached("SELECT router_id, epoch, at_ms FROM router_acks WHERE tenant = ?1")
            .map_err(|e| db_err("acks", e))?;
        let rows = stmt
            .query_map(params![tenant.as_str()], |r| {
                Ok(Ack {
                    router_id: r.get(0)?,
                    epoch: r.get::<_, i64>(1)?.max(0) as u64,
                    at_ms: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })
            .map_err(|e| db_err("acks", e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| db_err("acks", e))
    }

    async fn leave(&self, tenant: &TenantId, router_id: &str) -> Result<(), StoreError> {
        self.world
            .conn()
            .execute(
                "DELETE FROM router_acks WHERE tenant = ?1 AND router_id = ?2",
                params![tenant.as_str(), router_id],
            )
            .map(|_| ())
            .map_err(|e| db_err("leave", e))
    }

    async fn report(
        &self,
        tenant: &TenantId,
        epoch: u64,
        env: Env,
        router_id: &str,
        window: &Window,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(window).map_err(|e| corrupt("window", e))?;
        self.world
            .conn()
            .execute(
                "INSERT OR REPLACE INTO health (tenant, epoch, env, router_id, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![tenant.as_str(), epoch as i64, env_name(env), router_id, body],
            )
            .map(|_| ())
            .map_err(|e| db_err("report", e))
    }

    async fn health(&self, tenant: &TenantId, epoch: u64, env: Env) -> Result<Window, StoreError> {
        let conn = self.world.conn();
        let mut stmt = conn
            .prepare_cached("SELECT body FROM health WHERE tenant = ?1 AND epoch = ?2 AND env = ?3")
            .map_err(|e| db_err("health", e))?;
        let bodies: Vec<String> = stmt
            .query_map(params![tenant.as_str(), epoch as i64, env_name(env)], |r| {
                r.get(0)
            })
            .map_err(|e| db_err("health", e))?
            .collect::<Result<_, _>>()
            .map_err(|e| db_err("health", e))?;
        let mut all = Window::default();
        for b in bodies {
            all.merge(&serde_json::from_str(&b).map_err(|e| corrupt("window", e))?);
        }
        Ok(all)
    }

    fn watch(&self, tenant: &TenantId) -> Option<watch::Receiver<u64>> {
        Some(sender(&self.world, tenant.as_str()).subscribe())
    }
}

/// The migrations table in the embedded world.
#[derive(Debug, Clone)]
pub struct LocalMigrations {
    world: World,
}

impl LocalMigrations {
    /// The migrations table of `world`.
    pub fn new(world: World) -> Self {
        Self { world }
    }
}

#[async_trait]
impl Migrations for LocalMigrations {
    async fn get(&self, tenant: &TenantId) -> Result<Option<MigrationRecord>, StoreError> {
        let body: Option<String> = self
            .world
            .conn()
            .query_row(
                "SELECT body FROM migrations WHERE tenant = ?1",
                params![tenant.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_err("migrations", e))?;
        body.map(|b| serde_json::from_str(&b).map_err(|e| corrupt("migration", e)))
            .transpose()
    }

    async fn put(&self, rec: &MigrationRecord, expected: Option<u64>) -> Result<(), StoreError> {
        let body = serde_json::to_string(rec).map_err(|e| corrupt("migration", e))?;
        let mut conn = self.world.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_err("migrations", e))?;
        let stored: Option<i64> = tx
            .query_row(
                "SELECT version FROM migrations WHERE tenant = ?1",
                params![rec.tenant_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_err("migrations", e))?;
        if stored.map(|v| v.max(0) as u64) != expected {
            return Err(StoreError::conflict(
                Contended::MigrationVersion {
                    tenant: rec.tenant_id.to_string(),
                    expected,
                },
                format!("it is at version {stored:?}"),
            ));
        }
        tx.execute(
            "INSERT OR REPLACE INTO migrations (tenant, version, body) VALUES (?1, ?2, ?3)",
            params![rec.tenant_id, rec.version as i64, body],
        )
        .map_err(|e| db_err("migrations", e))?;
        tx.commit().map_err(|e| db_err("migrations", e))
    }
}
