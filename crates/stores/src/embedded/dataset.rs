use super::{World, db_err};
use async_trait::async_trait;
use lifecycle::migration::HOME;
use lifecycle::{SystemKind, TenantId};
use ports::StoreError;
use ports::migrate::{Change, ChangeFeed, Dataset, Rec};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// A system's tenant records at one location of the embedded world, with its change feed.
/// The home location is the system's own rows (what erasure and the demo see); another
/// location `green` is stored as system `name@green`, so erasing a tenant from `name`
/// reaches every location it was migrated to.
#[derive(Debug, Clone)]
pub struct LocalDataset {
    world: World,
    system: String,
    location: String,
    stored_as: String,
    versioned: bool,
}

impl LocalDataset {
    /// The dataset of `system` (of `kind`) at `location` in `world`.
    pub fn new(world: World, system: &str, kind: SystemKind, location: &str) -> Self {
        let stored_as = if location == HOME {
            system.to_owned()
        } else {
            format!("{system}@{location}")
        };
        Self {
            world,
            system: system.to_owned(),
            location: location.to_owned(),
            stored_as,
            versioned: kind.capabilities().versioned,
        }
    }
}

fn current(
    conn: &Connection,
    sys: &str,
    tenant: &str,
    key: &str,
) -> Result<Option<(i64, Rec)>, StoreError> {
    conn.query_row(
        "SELECT version, rev, body FROM records WHERE system = ?1 AND tenant = ?2 AND key = ?3
           AND excluded = 0 ORDER BY version DESC LIMIT 1",
        params![sys, tenant, key],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                Rec {
                    key: key.to_owned(),
                    rev: r.get::<_, i64>(1)?.max(0) as u64,
                    body: r.get(2)?,
                },
            ))
        },
    )
    .optional()
    .map_err(|e| db_err("read", e))
}

impl LocalDataset {
    fn store(
        &self,
        conn: &Connection,
        tenant: &str,
        prev_version: Option<i64>,
        rec: &Rec,
    ) -> Result<(), StoreError> {
        // Versioned systems keep history as S3 does: a new version (or delete marker).
        let version = match (self.versioned, prev_version) {
            (true, Some(v)) => v + 1,
            _ => 0,
        };
        conn.execute(
            "INSERT OR REPLACE INTO records (system, tenant, key, version, body, rev) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![self.stored_as, tenant, rec.key, version, rec.body, rec.rev as i64],
        )
        .map(|_| ())
        .map_err(|e| db_err("write", e))
    }

    fn apply_in(
        &self,
        conn: &Connection,
        tenant: &str,
        rec: &Rec,
        replace_equal: bool,
    ) -> Result<bool, StoreError> {
        let cur = current(conn, &self.stored_as, tenant, &rec.key)?;
        let newer = match &cur {
            None => true,
            Some((_, c)) => {
                c.rev < rec.rev || (replace_equal && c.rev == rec.rev && c.body != rec.body)
            }
        };
        if newer {
            self.store(conn, tenant, cur.map(|c| c.0), rec)?;
        }
        Ok(newer)
    }
}

#[async_trait]
impl Dataset for LocalDataset {
    fn system(&self) -> &str {
        &self.system
    }

    fn location(&self) -> &str {
        &self.location
    }

    async fn provision(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        let n = self
            .world
            .conn()
            .execute(
                "INSERT OR IGNORE INTO provisioned (system, tenant) VALUES (?1, ?2)",
                params![self.stored_as, tenant.as_str()],
            )
            .map_err(|e| db_err("provision", e))?;
        Ok(n == 1)
    }

    async fn read(&self, tenant: &TenantId, key: &str) -> Result<Option<Rec>, StoreError> {
        Ok(current(&self.world.conn(), &self.stored_as, tenant.as_str(), key)?.map(|c| c.1))
    }

    async fn write(
        &self,
        tenant: &TenantId,
        key: &str,
        body: Option<&[u8]>,
    ) -> Result<u64, StoreError> {
        let mut conn = self.world.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_err("write", e))?;
        let cur = current(&tx, &self.stored_as, tenant.as_str(), key)?;
        let rec = Rec {
            key: key.to_owned(),
            rev: cur.as_ref().map_or(0, |c| c.1.rev) + 1,
            body: body.map(<[u8]>::to_vec),
        };
        self.store(&tx, tenant.as_str(), cur.map(|c| c.0), &rec)?;
        tx.execute(
            "INSERT INTO changes (system, tenant, seq, key) VALUES (?1, ?2,
               COALESCE((SELECT MAX(seq) FROM changes WHERE system = ?1 AND tenant = ?2), 0) + 1, ?3)",
            params![self.stored_as, tenant.as_str(), key],
        )
        .map_err(|e| db_err("feed", e))?;
        tx.commit().map_err(|e| db_err("write", e))?;
        Ok(rec.rev)
    }

    async fn apply(
        &self,
        tenant: &TenantId,
        rec: &Rec,
        replace_equal: bool,
    ) -> Result<bool, StoreError> {
        let mut conn = self.world.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_err("apply", e))?;
        let done = self.apply_in(&tx, tenant.as_str(), rec, replace_equal)?;
        tx.commit().map_err(|e| db_err("apply", e))?;
        Ok(done)
    }

    async fn apply_many(&self, tenant: &TenantId, recs: &[Rec]) -> Result<u64, StoreError> {
        let mut conn = self.world.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_err("apply", e))?;
        let mut n = 0;
        for r in recs {
            n += u64::from(self.apply_in(&tx, tenant.as_str(), r, false)?);
        }
        tx.commit().map_err(|e| db_err("apply", e))?;
        Ok(n)
    }

    async fn scan(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Rec>, StoreError> {
        let conn = self.world.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT key, rev, body FROM records r WHERE system = ?1 AND tenant = ?2
                   AND (?3 IS NULL OR key > ?3) AND excluded = 0
                   AND version = (SELECT MAX(version) FROM records r2
                                  WHERE r2.system = r.system AND r2.tenant = r.tenant AND r2.key = r.key)
                 ORDER BY key LIMIT ?4",
            )
            .map_err(|e| db_err("scan", e))?;
        let rows = stmt
            .query_map(
                params![self.stored_as, tenant.as_str(), after, limit as i64],
                |r| {
                    Ok(Rec {
                        key: r.get(0)?,
                        rev: r.get::<_, i64>(1)?.max(0) as u64,
                        body: r.get(2)?,
                    })
                },
            )
            .map_err(|e| db_err("scan", e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| db_err("scan", e))
    }
}

#[async_trait]
impl ChangeFeed for LocalDataset {
    async fn head(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let n: Option<i64> = self
            .world
            .conn()
            .query_row(
                "SELECT MAX(seq) FROM changes WHERE system = ?1 AND tenant = ?2",
                params![self.stored_as, tenant.as_str()],
                |r| r.get(0),
            )
            .map_err(|e| db_err("feed head", e))?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    async fn read(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let conn = self.world.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, key FROM changes WHERE system = ?1 AND tenant = ?2 AND seq > ?3
                 ORDER BY seq LIMIT ?4",
            )
            .map_err(|e| db_err("feed", e))?;
        let rows = stmt
            .query_map(
                params![self.stored_as, tenant.as_str(), after as i64, limit as i64],
                |r| {
                    Ok(Change {
                        seq: r.get::<_, i64>(0)?.max(0) as u64,
                        key: r.get(1)?,
                    })
                },
            )
            .map_err(|e| db_err("feed", e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| db_err("feed", e))
    }

    async fn trim(&self, tenant: &TenantId, upto: u64) -> Result<(), StoreError> {
        self.world
            .conn()
            .execute(
                "DELETE FROM changes WHERE system = ?1 AND tenant = ?2 AND seq < ?3",
                params![self.stored_as, tenant.as_str(), upto as i64],
            )
            .map(|_| ())
            .map_err(|e| db_err("feed trim", e))
    }
}
