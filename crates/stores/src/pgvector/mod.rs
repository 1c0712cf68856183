//! pgvector: every tenant's embeddings in one PostgreSQL table per location,
//! `<schema>.vectors (tenant, key, rev, embedding vector(<dimension>), metadata jsonb,
//! document bytea)`, with an HNSW index whose operator class is the catalog's distance,
//! and the change feed `<schema>.vector_changes` written in the same transaction as each
//! primary write. Location `green` is schema `<schema>__green`; erasure reaches every
//! such schema. Keys use the "C" collation, so scans page in byte order.
//!
//! A record's body is either a vector envelope ([`VectorBody`]: the f32 values bit for
//! bit and the metadata JSON) or any other bytes, kept as a document row without an
//! embedding (a chunk's text, an application's JSON), so the erasure and migration ports
//! carry whatever the application stores beside its vectors. Every table states its
//! dimension (the column type) and its distance (the index's operator class and the
//! table's comment); a location whose table says otherwise than the catalog, or a vector
//! of another dimension, is refused before anything is written.

mod body;
pub mod config;
mod dataset;
mod tenant_store;

pub use body::VectorBody;
pub use config::{AnnIndex, Config, Distance};
pub use dataset::PgvectorDataset;
pub use tenant_store::PgvectorTenantStore;

use crate::wiring::{Context, DatasetPorts, System, both};
use lifecycle::StepError;
use lifecycle::catalog::SystemSpec;
use ports::{StoreError, TenantStore};
use std::sync::Arc;

/// A pool of connections to one server, shared with the PostgreSQL product's systems on it.
pub use crate::postgres::Pg as Pool;
pub(crate) use crate::postgres::pg_err;
pub use crate::postgres::schema_for;

/// What every location of a system shares: its home schema, dimension, distance, index.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) system: String,
    pub(crate) base: String,
    pub(crate) dimension: u32,
    pub(crate) distance: Distance,
    pub(crate) index: AnnIndex,
}

impl Layout {
    /// The layout of a catalog entry.
    pub(crate) fn new(system: &str, config: &Config) -> Self {
        Self {
            system: system.to_owned(),
            base: config.schema.clone(),
            dimension: config.dimension,
            distance: config.distance,
            index: config.index,
        }
    }

    /// The table comment that records dimension and distance, checked on every open.
    fn comment(&self) -> String {
        format!(
            "tenant-lifecycle pgvector dimension={} distance={}",
            self.dimension,
            self.distance.name()
        )
    }
}

/// Creates the tables of `schema` if missing, then checks they hold the layout's
/// dimension and distance. True when the schema was created.
pub(crate) async fn ensure(pool: &Pool, layout: &Layout, schema: &str) -> Result<bool, StoreError> {
    ports::retry::with_backoff(|| ensure_once(pool, layout, schema)).await
}

async fn ensure_once(pool: &Pool, layout: &Layout, schema: &str) -> Result<bool, StoreError> {
    let mut c = pool.client().await?;
    let tx = c.transaction().await.map_err(|e| pg_err("provision", e))?;
    // CREATE ... IF NOT EXISTS races in the catalogs; one lock per schema name.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('pgvector/' || $1))",
        &[&schema],
    )
    .await
    .map_err(|e| pg_err("provision", e))?;
    let created = tx
        .query_opt(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = 'vectors'",
            &[&schema],
        )
        .await
        .map_err(|e| pg_err("provision", e))?
        .is_none();
    if created {
        let index = match layout.index {
            AnnIndex::Hnsw => format!(
                r#"CREATE INDEX IF NOT EXISTS vectors_embedding ON "{schema}".vectors
                   USING hnsw (embedding {});"#,
                layout.distance.opclass()
            ),
            AnnIndex::None => String::new(),
        };
        tx.batch_execute(&format!(
            r#"CREATE EXTENSION IF NOT EXISTS vector;
               CREATE SCHEMA IF NOT EXISTS "{schema}";
               CREATE TABLE "{schema}".vectors (
                   tenant text NOT NULL, key text COLLATE "C" NOT NULL, rev bigint NOT NULL,
                   embedding vector({dim}), metadata jsonb, document bytea,
                   PRIMARY KEY (tenant, key));
               {index}
               COMMENT ON TABLE "{schema}".vectors IS '{comment}';
               CREATE TABLE IF NOT EXISTS "{schema}".vector_changes (
                   seq bigserial PRIMARY KEY, tenant text NOT NULL, key text NOT NULL);
               CREATE INDEX IF NOT EXISTS vector_changes_tenant_seq
                   ON "{schema}".vector_changes (tenant, seq);"#,
            dim = layout.dimension,
            comment = layout.comment(),
        ))
        .await
        .map_err(|e| pg_err("provision", e))?;
    }
    check_table(&tx, layout, schema).await?;
    tx.commit().await.map_err(|e| pg_err("provision", e))?;
    Ok(created)
}

/// Refuses a table whose embedding column, ANN index or recorded distance differs from
/// the catalog's: vectors copied there would be truncated, refused or ranked by another
/// metric.
pub(crate) async fn check_table(
    c: &impl deadpool_postgres::GenericClient,
    layout: &Layout,
    schema: &str,
) -> Result<(), StoreError> {
    let table = format!(r#""{schema}".vectors"#);
    let row = c
        .query_one(
            "SELECT format_type(a.atttypid, a.atttypmod), a.atttypmod,
                    obj_description($1::text::regclass, 'pg_class'),
                    ARRAY(SELECT o.opcname::text FROM pg_index i
                          CROSS JOIN LATERAL unnest(i.indclass::oid[]) AS k(oid)
                          JOIN pg_opclass o ON o.oid = k.oid
                          WHERE i.indrelid = $1::text::regclass AND o.opcname LIKE 'vector%')
             FROM pg_attribute a WHERE a.attrelid = $1::text::regclass AND a.attname = 'embedding'",
            &[&table],
        )
        .await
        .map_err(|e| match pg_err("check table", e) {
            StoreError::Corrupt(m) | StoreError::Unavailable(m)
                if m.contains("does not exist") || m.contains("no rows") =>
            {
                StoreError::Config(format!(
                    "system {}: {table} has no embedding column: {m}",
                    layout.system
                ))
            }
            other => other,
        })?;
    let ty: String = row.get(0);
    let dim: i32 = row.get(1);
    let comment: Option<String> = row.get(2);
    let opclasses: Vec<String> = row.get(3);
    let refuse = |what: String| {
        Err(StoreError::Config(format!(
            "system {}: {table} {what}, but the catalog says vector({}) with distance {}; migrate into a location created for this system, or fix the catalog",
            layout.system,
            layout.dimension,
            layout.distance.name()
        )))
    };
    if !ty.starts_with("vector") || i64::from(dim) != i64::from(layout.dimension) {
        return refuse(format!("holds embeddings of type {ty}"));
    }
    for o in &opclasses {
        if Distance::parse(o) != Some(layout.distance) {
            return refuse(format!("has an index with operator class {o}"));
        }
    }
    let recorded = comment.as_deref().and_then(|c| {
        c.split_whitespace()
            .find_map(|w| w.strip_prefix("distance="))
    });
    if let Some(d) = recorded
        && Distance::parse(d) != Some(layout.distance)
    {
        return refuse(format!("records distance {d}"));
    }
    Ok(())
}

/// Opens a catalog entry of `backend = "pgvector"`.
pub async fn open(spec: &SystemSpec, ctx: &mut Context) -> Result<Arc<dyn System>, StepError> {
    let config = Config::parse(spec)?;
    let pool = ctx.postgres(&config.url).await?;
    let layout = Layout::new(spec.name.as_str(), &config);
    let store = PgvectorTenantStore::open(pool.clone(), layout.clone(), spec.kind)
        .await?
        .with_batch_size(config.batch_size);
    Ok(Arc::new(Opened {
        layout,
        pool,
        store: Arc::new(store),
    }))
}

#[derive(Debug)]
struct Opened {
    layout: Layout,
    pool: Pool,
    store: Arc<PgvectorTenantStore>,
}

impl System for Opened {
    fn store(&self) -> Arc<dyn TenantStore> {
        self.store.clone()
    }

    fn dataset(&self, location: &str) -> Result<DatasetPorts, StepError> {
        Ok(both(PgvectorDataset::new(
            self.pool.clone(),
            self.layout.clone(),
            location,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::schema_for;

    #[test]
    fn locations_are_sibling_schemas() {
        assert_eq!(schema_for("rag", "home"), "rag");
        assert_eq!(schema_for("rag", "green"), "rag__green");
        assert_eq!(schema_for("rag", "eu-west-1"), "rag__eu_west_1");
    }
}
