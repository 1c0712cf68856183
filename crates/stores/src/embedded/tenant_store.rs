use super::{World, db_err};
use async_trait::async_trait;
use lifecycle::{EraseMethod, SystemKind, TenantId};
use ports::{ErasePass, StoreError, TenantStore};
use rusqlite::{OptionalExtension, params};
use std::time::Instant;

/// One catalog system kept in the embedded world, behaving as its kind does: objects keep
/// every version and delete markers; backups are excluded from restore rather than deleted.
#[derive(Debug, Clone)]
pub struct LocalTenantStore {
    world: World,
    name: String,
    kind: SystemKind,
    batch: usize,
}

impl LocalTenantStore {
    /// A system named `name` of kind `kind` in `world`.
    pub fn new(world: World, name: &str, kind: SystemKind) -> Self {
        let batch = kind.capabilities().batch_size;
        Self {
            world,
            name: name.to_owned(),
            kind,
            batch,
        }
    }

    /// Sets how many records one erase step handles (tests use small batches).
    pub fn with_batch_size(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Writes many records in one transaction (seeding); returns how many.
    pub fn put_many(
        &self,
        tenant: &TenantId,
        records: &[(String, Vec<u8>)],
    ) -> Result<usize, StoreError> {
        let mut conn = self.world.conn();
        let tx = conn.transaction().map_err(|e| db_err("seed", e))?;
        for (k, body) in records {
            put_in(&tx, &self.name, self.kind, tenant.as_str(), k, body)?;
        }
        tx.commit().map_err(|e| db_err("seed", e))?;
        Ok(records.len())
    }
}

fn put_in(
    conn: &rusqlite::Connection,
    system: &str,
    kind: SystemKind,
    tenant: &str,
    key: &str,
    body: &[u8],
) -> Result<(), StoreError> {
    if kind.capabilities().versioned {
        conn.execute(
            "INSERT INTO records (system, tenant, key, version, body) VALUES (?1, ?2, ?3,
               COALESCE((SELECT MAX(version) + 1 FROM records WHERE system = ?1 AND tenant = ?2 AND key = ?3), 0), ?4)",
            params![system, tenant, key, body],
        )
    } else {
        conn.execute(
            "INSERT OR REPLACE INTO records (system, tenant, key, version, body) VALUES (?1, ?2, ?3, 0, ?4)",
            params![system, tenant, key, body],
        )
    }
    .map(|_| ())
    .map_err(|e| db_err("put", e))
}

#[async_trait]
impl TenantStore for LocalTenantStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SystemKind {
        self.kind
    }

    async fn put(&self, tenant: &TenantId, key: &str, body: &[u8]) -> Result<(), StoreError> {
        put_in(
            &self.world.conn(),
            &self.name,
            self.kind,
            tenant.as_str(),
            key,
            body,
        )
    }

    async fn delete(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        let conn = self.world.conn();
        if self.kind.capabilities().versioned {
            // A delete marker is a version with no body, as S3 keeps it.
            conn.execute(
                "INSERT INTO records (system, tenant, key, version, body) VALUES (?1, ?2, ?3,
                   COALESCE((SELECT MAX(version) + 1 FROM records WHERE system = ?1 AND tenant = ?2 AND key = ?3), 0), NULL)",
                params![self.name, tenant.as_str(), key],
            )
        } else {
            conn.execute(
                "DELETE FROM records WHERE system = ?1 AND tenant = ?2 AND key = ?3",
                params![self.name, tenant.as_str(), key],
            )
        }
        .map(|_| ())
        .map_err(|e| db_err("delete", e))
    }

    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = self.world.conn();
        let row: Option<Option<Vec<u8>>> = conn
            .query_row(
                "SELECT body FROM records WHERE system = ?1 AND tenant = ?2 AND key = ?3 AND excluded = 0
                 ORDER BY version DESC LIMIT 1",
                params![self.name, tenant.as_str(), key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_err("get", e))?;
        Ok(row.flatten())
    }

    async fn count(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let conn = self.world.conn();
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM records WHERE (system = ?1 OR system GLOB ?1 || '@*')
                   AND tenant = ?2 AND excluded = 0",
                params![self.name, tenant.as_str()],
                |r| r.get(0),
            )
            .map_err(|e| db_err("count", e))?;
        Ok(n.max(0) as u64)
    }

    async fn erase(&self, tenant: &TenantId, deadline: Instant) -> Result<ErasePass, StoreError> {
        let mut pass = ErasePass::default();
        loop {
            let n = {
                let conn = self.world.conn();
                let sql = match self.kind.capabilities().erase_method {
                    // Backups are immutable until retention ends: exclude them from every
                    // restore now and schedule their purge.
                    EraseMethod::ExcludeFromRestoreAndPurge => {
                        "UPDATE records SET excluded = 1, purge_after = datetime('now', '+30 days')
                         WHERE (system, tenant, key, version) IN (SELECT system, tenant, key, version
                           FROM records WHERE (system = ?1 OR system GLOB ?1 || '@*')
                             AND tenant = ?2 AND excluded = 0 LIMIT ?3)"
                    }
                    _ => {
                        "DELETE FROM records WHERE (system, tenant, key, version) IN
                         (SELECT system, tenant, key, version FROM records
                          WHERE (system = ?1 OR system GLOB ?1 || '@*')
                            AND tenant = ?2 AND excluded = 0 LIMIT ?3)"
                    }
                };
                conn.execute(sql, params![self.name, tenant.as_str(), self.batch as i64])
                    .map_err(|e| db_err("erase", e))?
            };
            pass.erased += n as u64;
            if n < self.batch {
                // A migration's change feed names the tenant's keys: it goes too.
                self.world
                    .conn()
                    .execute(
                        "DELETE FROM changes WHERE (system = ?1 OR system GLOB ?1 || '@*') AND tenant = ?2",
                        params![self.name, tenant.as_str()],
                    )
                    .map_err(|e| db_err("erase", e))?;
                pass.complete = true;
                return Ok(pass);
            }
            if Instant::now() >= deadline {
                pass.complete = self.count(tenant).await? == 0;
                return Ok(pass);
            }
            tokio::task::yield_now().await;
        }
    }
}
