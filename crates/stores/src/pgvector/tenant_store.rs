//! The pgvector erasure port: a tenant's rows and feed entries in every location's schema.

use super::body::{Embedding, Stored};
use super::{Layout, Pool, ensure, pg_err};
use async_trait::async_trait;
use lifecycle::{SystemKind, TenantId};
use ports::retry::with_backoff;
use ports::{ErasePass, StoreError, TenantStore};
use std::time::Instant;

/// A system's tenant vectors in PostgreSQL, as erasure sees them (every location).
#[derive(Debug, Clone)]
pub struct PgvectorTenantStore {
    pool: Pool,
    layout: Layout,
    kind: SystemKind,
    batch: i64,
}

impl PgvectorTenantStore {
    /// The system of `layout`; creates (or checks) the home tables.
    pub(crate) async fn open(
        pool: Pool,
        layout: Layout,
        kind: SystemKind,
    ) -> Result<Self, StoreError> {
        ensure(&pool, &layout, &layout.base).await?;
        Ok(Self {
            pool,
            layout,
            kind,
            batch: kind.capabilities().batch_size as i64,
        })
    }

    /// The same store on a server URL (tests and benchmarks open one without a catalog).
    pub async fn connect(
        url: &str,
        name: &str,
        schema: &str,
        dimension: u32,
        distance: super::Distance,
    ) -> Result<Self, StoreError> {
        let pool = Pool::connect(url).await?;
        let layout = Layout {
            system: name.to_owned(),
            base: schema.to_owned(),
            dimension,
            distance,
            index: super::AnnIndex::Hnsw,
        };
        Self::open(pool, layout, SystemKind::Vectors).await
    }

    /// Sets how many rows one erase statement deletes (tests use small batches).
    pub fn with_batch_size(mut self, batch: usize) -> Self {
        self.batch = batch.max(1) as i64;
        self
    }

    /// Every schema of this system that has a vectors table: home and each location.
    async fn schemas(&self) -> Result<Vec<String>, StoreError> {
        with_backoff(|| async {
            let c = self.pool.client().await?;
            let rows = c
                .query(
                    "SELECT n.nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid
                     WHERE c.relname = 'vectors'
                       AND (n.nspname = $1 OR left(n.nspname, length($1) + 2) = $1 || '__')
                     ORDER BY n.nspname = $1, n.nspname",
                    &[&self.layout.base],
                )
                .await
                .map_err(|e| pg_err("schemas", e))?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }

    /// One statement: deletes up to one batch of the tenant's rows of `table` in `schema`.
    async fn erase_batch(
        &self,
        t: &TenantId,
        schema: &str,
        table: &str,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            r#"DELETE FROM "{schema}".{table} WHERE ctid = ANY(ARRAY(
                   SELECT ctid FROM "{schema}".{table} WHERE tenant = $1 LIMIT $2))"#
        );
        with_backoff(|| async {
            let c = self.pool.client().await?;
            c.execute(&sql, &[&t.as_str(), &self.batch])
                .await
                .map_err(|e| pg_err("erase", e))
        })
        .await
    }

    async fn count_in(&self, t: &TenantId, schema: &str) -> Result<u64, StoreError> {
        let sql = format!(
            r#"SELECT (SELECT COUNT(*) FROM "{schema}".vectors WHERE tenant = $1)
                    + (SELECT COUNT(*) FROM "{schema}".vector_changes WHERE tenant = $1)"#
        );
        with_backoff(|| async {
            let c = self.pool.client().await?;
            let row = c
                .query_one(&sql, &[&t.as_str()])
                .await
                .map_err(|e| pg_err("count", e))?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
        .await
    }
}

#[async_trait]
impl TenantStore for PgvectorTenantStore {
    fn name(&self) -> &str {
        &self.layout.system
    }

    fn kind(&self) -> SystemKind {
        self.kind
    }

    /// Writes a record at home the way an application would (no feed entry: the feed
    /// holds the writes made through migration's primary only).
    async fn put(&self, tenant: &TenantId, key: &str, body: &[u8]) -> Result<(), StoreError> {
        let (embedding, metadata, document) = columns(&self.layout, &self.layout.base, body)?;
        let sql = format!(
            r#"INSERT INTO "{}".vectors VALUES ($1, $2, 1, $3, $4::text::jsonb, $5)
               ON CONFLICT (tenant, key) DO UPDATE SET rev = vectors.rev + 1,
                   embedding = EXCLUDED.embedding, metadata = EXCLUDED.metadata,
                   document = EXCLUDED.document"#,
            self.layout.base
        );
        with_backoff(|| async {
            let c = self.pool.client().await?;
            c.execute(
                &sql,
                &[&tenant.as_str(), &key, &embedding, &metadata, &document],
            )
            .await
            .map(drop)
            .map_err(|e| pg_err("put", e))
        })
        .await
    }

    async fn delete(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        let sql = format!(
            r#"DELETE FROM "{}".vectors WHERE tenant = $1 AND key = $2"#,
            self.layout.base
        );
        with_backoff(|| async {
            let c = self.pool.client().await?;
            c.execute(&sql, &[&tenant.as_str(), &key])
                .await
                .map(drop)
                .map_err(|e| pg_err("delete", e))
        })
        .await
    }

    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let sql = format!(
            r#"SELECT embedding, metadata::text, document FROM "{}".vectors
               WHERE tenant = $1 AND key = $2"#,
            self.layout.base
        );
        let row = with_backoff(|| async {
            let c = self.pool.client().await?;
            c.query_opt(&sql, &[&tenant.as_str(), &key])
                .await
                .map_err(|e| pg_err("get", e))
        })
        .await?;
        match row {
            None => Ok(None),
            Some(r) => Stored::from_row(r.get(0), r.get(1), r.get(2)),
        }
    }

    /// Rows (tombstones included) and feed entries, in every location.
    async fn count(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let mut n = 0;
        for s in self.schemas().await? {
            n += self.count_in(tenant, &s).await?;
        }
        Ok(n)
    }

    /// Locations first, home last, each table in batches; past the deadline it stops
    /// after the batch in hand. Complete only when a fresh count finds nothing, so rows
    /// written meanwhile are caught by the next call.
    async fn erase(&self, tenant: &TenantId, deadline: Instant) -> Result<ErasePass, StoreError> {
        let mut pass = ErasePass::default();
        for s in self.schemas().await? {
            for table in ["vectors", "vector_changes"] {
                loop {
                    let n = self.erase_batch(tenant, &s, table).await?;
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

/// A body as the table's columns hold it: embedding, metadata text, document.
pub(crate) type Columns = (Option<Embedding>, Option<String>, Option<Vec<u8>>);

/// The column values of a body, refusing a vector of another dimension than `layout`'s.
pub(crate) fn columns(layout: &Layout, schema: &str, body: &[u8]) -> Result<Columns, StoreError> {
    match Stored::decode(body)? {
        Stored::Document(d) => Ok((None, None, Some(d))),
        Stored::Vector { values, metadata } => {
            if values.len() != layout.dimension as usize {
                return Err(StoreError::Config(format!(
                    "system {}: a vector of {} dimensions cannot go into {schema}.vectors, which holds vector({}); re-embed it, or migrate into a system of its dimension",
                    layout.system,
                    values.len(),
                    layout.dimension
                )));
            }
            Ok((Some(Embedding(values)), metadata, None))
        }
    }
}
