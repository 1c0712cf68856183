use super::{World, db_err};
use async_trait::async_trait;
use lifecycle::TenantId;
use ports::{LegalHold, LegalHolds, StoreError};
use rusqlite::params;

/// Legal holds kept in the embedded world.
#[derive(Debug, Clone)]
pub struct LocalHolds {
    world: World,
}

impl LocalHolds {
    /// Legal holds in `world`.
    pub fn new(world: World) -> Self {
        Self { world }
    }
}

#[async_trait]
impl LegalHolds for LocalHolds {
    async fn place(&self, hold: &LegalHold) -> Result<(), StoreError> {
        self.world
            .conn()
            .execute(
                "INSERT INTO legal_holds (tenant, hold_id, reason, placed_at, released_at) VALUES (?1, ?2, ?3, ?4, NULL)
                 ON CONFLICT (tenant, hold_id) DO UPDATE SET reason = ?3, placed_at = ?4, released_at = NULL",
                params![hold.tenant_id, hold.hold_id, hold.reason, hold.placed_at],
            )
            .map(|_| ())
            .map_err(|e| db_err("place hold", e))
    }

    async fn release(&self, tenant: &TenantId, hold_id: &str, at: &str) -> Result<(), StoreError> {
        let n = self
            .world
            .conn()
            .execute(
                "UPDATE legal_holds SET released_at = ?3 WHERE tenant = ?1 AND hold_id = ?2 AND released_at IS NULL",
                params![tenant.as_str(), hold_id, at],
            )
            .map_err(|e| db_err("release hold", e))?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "no active hold {hold_id} on tenant {tenant}"
            )));
        }
        Ok(())
    }

    async fn active(&self, tenant: &TenantId) -> Result<Vec<LegalHold>, StoreError> {
        let conn = self.world.conn();
        let mut st = conn
            .prepare(
                "SELECT tenant, hold_id, reason, placed_at FROM legal_holds
                 WHERE tenant = ?1 AND released_at IS NULL ORDER BY hold_id",
            )
            .map_err(|e| db_err("holds", e))?;
        let rows = st
            .query_map(params![tenant.as_str()], |r| {
                Ok(LegalHold {
                    tenant_id: r.get(0)?,
                    hold_id: r.get(1)?,
                    reason: r.get(2)?,
                    placed_at: r.get(3)?,
                    released_at: None,
                })
            })
            .map_err(|e| db_err("holds", e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| db_err("holds", e))
    }
}
