//! The PostgreSQL erasure port: a system's tenant rows in every location's schema.

use super::{Pg, ensure, pg_err};
use async_trait::async_trait;
use lifecycle::{SystemKind, TenantId};
use ports::{ErasePass, StoreError, TenantStore};
use std::time::Instant;

/// A system's tenant rows in PostgreSQL, as erasure sees them (every location).
#[derive(Debug, Clone)]
pub struct PgTenantStore {
    pg: Pg,
    name: String,
    kind: SystemKind,
    schema: String,
    batch: i64,
}

impl PgTenantStore {
    /// The system `name` in `schema`; creates the home tables if missing.
    pub async fn new(
        pg: Pg,
        name: &str,
        kind: SystemKind,
        schema: &str,
    ) -> Result<Self, StoreError> {
        ensure(&mut *pg.client().await?, schema).await?;
        Ok(Self {
            pg,
            name: name.to_owned(),
            kind,
            schema: schema.to_owned(),
            batch: kind.capabilities().batch_size as i64,
        })
    }

    /// Sets how many rows one erase statement deletes (tests use small batches).
    pub fn with_batch_size(mut self, batch: usize) -> Self {
        self.batch = batch.max(1) as i64;
        self
    }

    /// Every schema of this system: home and each migration location.
    async fn schemas(&self) -> Result<Vec<String>, StoreError> {
        let c = self.pg.client().await?;
        let rows = c
            .query(
                "SELECT nspname FROM pg_namespace WHERE nspname = $1 OR left(nspname, length($1) + 2) = $1 || '__'",
                &[&self.schema],
            )
            .await
            .map_err(|e| pg_err("schemas", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

#[async_trait]
impl TenantStore for PgTenantStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SystemKind {
        self.kind
    }

    async fn put(&self, tenant: &TenantId, key: &str, body: &[u8]) -> Result<(), StoreError> {
        let c = self.pg.client().await?;
        c.execute(
            &format!(
                r#"INSERT INTO "{}".records VALUES ($1, $2, 1, $3)
                   ON CONFLICT (tenant, key) DO UPDATE SET rev = records.rev + 1, body = EXCLUDED.body"#,
                self.schema
            ),
            &[&tenant.as_str(), &key, &body],
        )
        .await
        .map(|_| ())
        .map_err(|e| pg_err("put", e))
    }

    async fn delete(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        let c = self.pg.client().await?;
        c.execute(
            &format!(
                r#"DELETE FROM "{}".records WHERE tenant = $1 AND key = $2"#,
                self.schema
            ),
            &[&tenant.as_str(), &key],
        )
        .await
        .map(|_| ())
        .map_err(|e| pg_err("delete", e))
    }

    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let c = self.pg.client().await?;
        let row = c
            .query_opt(
                &format!(
                    r#"SELECT body FROM "{}".records WHERE tenant = $1 AND key = $2"#,
                    self.schema
                ),
                &[&tenant.as_str(), &key],
            )
            .await
            .map_err(|e| pg_err("get", e))?;
        Ok(row.and_then(|r| r.get::<_, Option<Vec<u8>>>(0)))
    }

    async fn count(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let mut n = 0i64;
        for s in self.schemas().await? {
            let c = self.pg.client().await?;
            let row = c
                .query_one(
                    &format!(
                        r#"SELECT (SELECT COUNT(*) FROM "{s}".records WHERE tenant = $1)
                                + (SELECT COUNT(*) FROM "{s}".changes WHERE tenant = $1)"#
                    ),
                    &[&tenant.as_str()],
                )
                .await
                .map_err(|e| pg_err("count", e))?;
            n += row.get::<_, i64>(0);
        }
        Ok(n.max(0) as u64)
    }

    async fn erase(&self, tenant: &TenantId, deadline: Instant) -> Result<ErasePass, StoreError> {
        let mut pass = ErasePass::default();
        for s in self.schemas().await? {
            for table in ["records", "changes"] {
                loop {
                    let n = {
                        let c = self.pg.client().await?;
                        c.execute(
                            &format!(
                                r#"DELETE FROM "{s}".{table} WHERE ctid IN
                                   (SELECT ctid FROM "{s}".{table} WHERE tenant = $1 LIMIT $2)"#
                            ),
                            &[&tenant.as_str(), &self.batch],
                        )
                        .await
                        .map_err(|e| pg_err("erase", e))?
                    };
                    pass.erased += n;
                    if (n as i64) < self.batch {
                        break;
                    }
                    if Instant::now() >= deadline {
                        return Ok(pass);
                    }
                }
            }
        }
        pass.complete = self.count(tenant).await? == 0;
        Ok(pass)
    }
}
