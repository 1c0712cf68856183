//! A pgvector system's migration dataset and change feed, one schema per location.

use super::body::{Embedding, Stored};
use super::tenant_store::{Columns, columns};
use super::{Layout, Pool, ensure, pg_err, schema_for};
use async_trait::async_trait;
use lifecycle::TenantId;
use ports::StoreError;
use ports::migrate::{Change, ChangeFeed, Dataset, Rec};
use ports::retry::with_backoff;
use std::sync::Arc;

/// A system's vectors at one location, with the change feed written in the same
/// transaction as each primary write.
#[derive(Debug, Clone)]
pub struct PgvectorDataset {
    pool: Pool,
    layout: Layout,
    location: String,
    schema: String,
    /// Set once the location's tables exist and match the catalog's dimension and distance.
    checked: Arc<tokio::sync::OnceCell<()>>,
}

type Row = (
    String,
    i64,
    Option<Embedding>,
    Option<String>,
    Option<Vec<u8>>,
);

fn rec(r: Row) -> Result<Rec, StoreError> {
    Ok(Rec {
        key: r.0,
        rev: r.1.max(0) as u64,
        body: Stored::from_row(r.2, r.3, r.4)?,
    })
}

fn row(r: &tokio_postgres::Row) -> Row {
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

impl PgvectorDataset {
    /// The dataset of the system of `layout` at `location`.
    pub(crate) fn new(pool: Pool, layout: Layout, location: &str) -> Self {
        Self {
            schema: schema_for(&layout.base, location),
            pool,
            layout,
            location: location.to_owned(),
            checked: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// The same dataset on a server URL (tests and benchmarks open one without a catalog).
    pub async fn connect(
        url: &str,
        system: &str,
        schema: &str,
        location: &str,
        dimension: u32,
        distance: super::Distance,
        index: super::AnnIndex,
    ) -> Result<Self, StoreError> {
        let layout = Layout {
            system: system.to_owned(),
            base: schema.to_owned(),
            dimension,
            distance,
            index,
        };
        Ok(Self::new(Pool::connect(url).await?, layout, location))
    }

    /// The schema this location's tables are in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn sql(&self, template: &str) -> String {
        template.replace("{s}", &format!("\"{}\"", self.schema))
    }

    /// Creates the location's tables on first use and refuses them if their dimension or
    /// distance is not the catalog's, before any record is read or written there.
    async fn ready(&self) -> Result<(), StoreError> {
        self.checked
            .get_or_try_init(|| async {
                ensure(&self.pool, &self.layout, &self.schema)
                    .await
                    .map(drop)
            })
            .await
            .map(drop)
    }

    fn cols(&self, body: Option<&[u8]>) -> Result<Columns, StoreError> {
        match body {
            None => Ok((None, None, None)),
            Some(b) => columns(&self.layout, &self.schema, b),
        }
    }
}

const APPLY: &str = "INSERT INTO {s}.vectors VALUES ($1, $2, $3, $4, $5::text::jsonb, $6)
    ON CONFLICT (tenant, key) DO UPDATE SET rev = EXCLUDED.rev, embedding = EXCLUDED.embedding,
        metadata = EXCLUDED.metadata, document = EXCLUDED.document
    WHERE vectors.rev < EXCLUDED.rev OR ($7 AND vectors.rev = EXCLUDED.rev)";

#[async_trait]
impl Dataset for PgvectorDataset {
    fn system(&self) -> &str {
        &self.layout.system
    }

    fn location(&self) -> &str {
        &self.location
    }

    async fn provision(&self, _tenant: &TenantId) -> Result<bool, StoreError> {
        let created = ensure(&self.pool, &self.layout, &self.schema).await?;
        let _ = self.checked.set(());
        Ok(created)
    }

    async fn read(&self, tenant: &TenantId, key: &str) -> Result<Option<Rec>, StoreError> {
        self.ready().await?;
        let sql = self.sql(
            "SELECT key, rev, embedding, metadata::text, document FROM {s}.vectors
             WHERE tenant = $1 AND key = $2",
        );
        let r = with_backoff(|| async {
            let c = self.pool.client().await?;
            c.query_opt(&sql, &[&tenant.as_str(), &key])
                .await
                .map(|r| r.as_ref().map(row))
                .map_err(|e| pg_err("read", e))
        })
        .await?;
        r.map(rec).transpose()
    }

    /// A retried write whose commit was lost in flight may take two revisions and two
    /// feed positions for one body: harmless, as both carry the same body.
    async fn write(
        &self,
        tenant: &TenantId,
        key: &str,
        body: Option<&[u8]>,
    ) -> Result<u64, StoreError> {
        self.ready().await?;
        let (embedding, metadata, document) = self.cols(body)?;
        let upsert = self.sql(
            "INSERT INTO {s}.vectors VALUES ($1, $2, 1, $3, $4::text::jsonb, $5)
             ON CONFLICT (tenant, key) DO UPDATE SET rev = vectors.rev + 1,
                 embedding = EXCLUDED.embedding, metadata = EXCLUDED.metadata,
                 document = EXCLUDED.document
             RETURNING rev",
        );
        let feed = self.sql("INSERT INTO {s}.vector_changes (tenant, key) VALUES ($1, $2)");
        with_backoff(|| async {
            let mut c = self.pool.client().await?;
            let tx = c.transaction().await.map_err(|e| pg_err("write", e))?;
            // A bigserial is handed out before commit, so two writers of one tenant could
            // commit out of feed order and a catch-up past the later position would miss
            // the earlier one. One writer per tenant and location keeps the orders equal.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))",
                &[&self.schema, &tenant.as_str()],
            )
            .await
            .map_err(|e| pg_err("write", e))?;
            let row = tx
                .query_one(
                    &upsert,
                    &[&tenant.as_str(), &key, &embedding, &metadata, &document],
                )
                .await
                .map_err(|e| pg_err("write", e))?;
            tx.execute(&feed, &[&tenant.as_str(), &key])
                .await
                .map_err(|e| pg_err("feed", e))?;
            tx.commit().await.map_err(|e| pg_err("write", e))?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
        .await
    }

    async fn apply(
        &self,
        tenant: &TenantId,
        r: &Rec,
        replace_equal: bool,
    ) -> Result<bool, StoreError> {
        self.ready().await?;
        let (embedding, metadata, document) = self.cols(r.body.as_deref())?;
        let sql = self.sql(APPLY);
        let n = with_backoff(|| async {
            let c = self.pool.client().await?;
            c.execute(
                &sql,
                &[
                    &tenant.as_str(),
                    &r.key,
                    &(r.rev as i64),
                    &embedding,
                    &metadata,
                    &document,
                    &replace_equal,
                ],
            )
            .await
            .map_err(|e| pg_err("apply", e))
        })
        .await?;
        Ok(n == 1)
    }

    /// One statement per page: the rows travel as arrays (embeddings in pgvector's binary
    /// format), under `apply`'s revision rule. Every body is checked before any is sent.
    async fn apply_many(&self, tenant: &TenantId, recs: &[Rec]) -> Result<u64, StoreError> {
        if recs.is_empty() {
            return Ok(0);
        }
        self.ready().await?;
        // Keys must be unique within one statement: a page naming a key twice keeps its
        // newest revision.
        let mut newest: std::collections::BTreeMap<&str, &Rec> = std::collections::BTreeMap::new();
        for r in recs {
            match newest.get(r.key.as_str()) {
                Some(have) if have.rev >= r.rev => {}
                _ => {
                    newest.insert(r.key.as_str(), r);
                }
            }
        }
        let n = newest.len();
        let (mut keys, mut revs) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut embs, mut metas, mut docs) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (k, r) in newest {
            let (e, m, d) = self.cols(r.body.as_deref())?;
            keys.push(k);
            revs.push(r.rev as i64);
            embs.push(e);
            metas.push(m);
            docs.push(d);
        }
        let sql = self.sql(
            "INSERT INTO {s}.vectors
             SELECT $1, k, r, e, m::jsonb, d
             FROM unnest($2::text[], $3::bigint[], $4::vector[], $5::text[], $6::bytea[]) AS u(k, r, e, m, d)
             ON CONFLICT (tenant, key) DO UPDATE SET rev = EXCLUDED.rev,
                 embedding = EXCLUDED.embedding, metadata = EXCLUDED.metadata,
                 document = EXCLUDED.document
             WHERE vectors.rev < EXCLUDED.rev",
        );
        with_backoff(|| async {
            let c = self.pool.client().await?;
            c.execute(
                &sql,
                &[&tenant.as_str(), &keys, &revs, &embs, &metas, &docs],
            )
            .await
            .map_err(|e| pg_err("apply", e))
        })
        .await
    }

    async fn scan(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Rec>, StoreError> {
        self.ready().await?;
        let sql = self.sql(
            "SELECT key, rev, embedding, metadata::text, document FROM {s}.vectors
             WHERE tenant = $1 AND ($2::text IS NULL OR key > $2) ORDER BY key LIMIT $3",
        );
        let rows = with_backoff(|| async {
            let c = self.pool.client().await?;
            c.query(&sql, &[&tenant.as_str(), &after, &(limit as i64)])
                .await
                .map(|rs| rs.iter().map(row).collect::<Vec<_>>())
                .map_err(|e| pg_err("scan", e))
        })
        .await?;
        rows.into_iter().map(rec).collect()
    }
}

#[async_trait]
impl ChangeFeed for PgvectorDataset {
    async fn head(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        self.ready().await?;
        let sql =
            self.sql("SELECT COALESCE(MAX(seq), 0) FROM {s}.vector_changes WHERE tenant = $1");
        with_backoff(|| async {
            let c = self.pool.client().await?;
            let row = c
                .query_one(&sql, &[&tenant.as_str()])
                .await
                .map_err(|e| pg_err("feed head", e))?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
        .await
    }

    async fn read(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        self.ready().await?;
        let sql = self.sql(
            "SELECT seq, key FROM {s}.vector_changes WHERE tenant = $1 AND seq > $2
             ORDER BY seq LIMIT $3",
        );
        with_backoff(|| async {
            let c = self.pool.client().await?;
            let rows = c
                .query(&sql, &[&tenant.as_str(), &(after as i64), &(limit as i64)])
                .await
                .map_err(|e| pg_err("feed", e))?;
            Ok(rows
                .into_iter()
                .map(|r| Change {
                    seq: r.get::<_, i64>(0).max(0) as u64,
                    key: r.get(1),
                })
                .collect())
        })
        .await
    }

    async fn trim(&self, tenant: &TenantId, upto: u64) -> Result<(), StoreError> {
        self.ready().await?;
        let sql = self.sql("DELETE FROM {s}.vector_changes WHERE tenant = $1 AND seq < $2");
        with_backoff(|| async {
            let c = self.pool.client().await?;
            c.execute(&sql, &[&tenant.as_str(), &(upto as i64)])
                .await
                .map(drop)
                .map_err(|e| pg_err("feed trim", e))
        })
        .await
    }
}
