//! PostgreSQL backends over a real connection: a system's tenant rows ([`PgTenantStore`],
//! for erasure) and its migration datasets with their change feed ([`PgDataset`]).
//!
//! Location `home` is the configured schema; location `green` is schema `<schema>__green`,
//! so erasing a tenant reaches every schema a migration created. Keys use the "C"
//! collation, so scans page in byte order, as every other backend does.

use crate::migrate::{Change, ChangeFeed, Dataset, Rec};
use crate::{ErasePass, StoreError, TenantStore};
use async_trait::async_trait;
use lifecycle::migration::HOME;
use lifecycle::{SystemKind, TenantId};
use std::time::Instant;
use tokio_postgres::NoTls;

/// Connections kept per URL: a step uses one or two, a router's concurrent requests more.
const POOL_SIZE: usize = 8;

/// A pool of connections to one server (deadpool-postgres); a transaction holds one.
#[derive(Clone)]
pub struct Pg {
    pool: deadpool_postgres::Pool,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pg")
    }
}

fn pg_err(op: &str, e: tokio_postgres::Error) -> StoreError {
    match e.code().map(|c| c.code()) {
        // serialization_failure, deadlock_detected, too_many_connections
        Some("40001" | "40P01" | "53300") => StoreError::Throttled(format!("postgres {op}")),
        _ => StoreError::Unavailable(match e.as_db_error() {
            Some(d) => format!("postgres {op}: {} ({})", d.message(), d.code().code()),
            None => format!("postgres {op}: {e}"),
        }),
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
        let pg = Self { pool };
        // One connection now, so a wrong URL or a server that is down fails at start.
        drop(
            pg.client()
                .await
                .map_err(|e| StoreError::Config(format!("cannot connect to PostgreSQL: {e}")))?,
        );
        Ok(pg)
    }

    /// A connection of the pool, for one statement or one transaction.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
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

async fn ensure(
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

/// A system's records at one location in PostgreSQL, with the change feed written in the
/// same transaction as each primary write.
#[derive(Debug, Clone)]
pub struct PgDataset {
    pg: Pg,
    system: String,
    location: String,
    schema: String,
}

impl PgDataset {
    /// The dataset of `system` (home schema `base`) at `location`.
    pub fn new(pg: Pg, system: &str, base: &str, location: &str) -> Self {
        Self {
            pg,
            system: system.to_owned(),
            location: location.to_owned(),
            schema: schema_for(base, location),
        }
    }

    fn sql(&self, template: &str) -> String {
        template.replace("{s}", &format!("\"{}\"", self.schema))
    }
}

fn rec(key: String, rev: i64, body: Option<Vec<u8>>) -> Rec {
    Rec {
        key,
        rev: rev.max(0) as u64,
        body,
    }
}

const APPLY: &str = "INSERT INTO {s}.records VALUES ($1, $2, $3, $4)
    ON CONFLICT (tenant, key) DO UPDATE SET rev = EXCLUDED.rev, body = EXCLUDED.body
    WHERE records.rev < EXCLUDED.rev
       OR ($5 AND records.rev = EXCLUDED.rev AND records.body IS DISTINCT FROM EXCLUDED.body)";

#[async_trait]
impl Dataset for PgDataset {
    fn system(&self) -> &str {
        &self.system
    }

    fn location(&self) -> &str {
        &self.location
    }

    async fn provision(&self, _tenant: &TenantId) -> Result<bool, StoreError> {
        ensure(&mut *self.pg.client().await?, &self.schema).await
    }

    async fn read(&self, tenant: &TenantId, key: &str) -> Result<Option<Rec>, StoreError> {
        let c = self.pg.client().await?;
        let row = c
            .query_opt(
                &self.sql("SELECT rev, body FROM {s}.records WHERE tenant = $1 AND key = $2"),
                &[&tenant.as_str(), &key],
            )
            .await
            .map_err(|e| pg_err("read", e))?;
        Ok(row.map(|r| rec(key.to_owned(), r.get(0), r.get(1))))
    }

    async fn write(
        &self,
        tenant: &TenantId,
        key: &str,
        body: Option<&[u8]>,
    ) -> Result<u64, StoreError> {
        let mut c = self.pg.client().await?;
        let tx = c.transaction().await.map_err(|e| pg_err("write", e))?;
        // A bigserial is handed out before commit, so without this two writers of one
        // tenant could commit out of feed order and a catch-up that already passed the
        // later position would never see the earlier one. One writer per tenant and
        // location at a time keeps feed order equal to commit order.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))",
            &[&self.schema, &tenant.as_str()],
        )
        .await
        .map_err(|e| pg_err("write", e))?;
        let row = tx
            .query_one(
                &self.sql(
                    "INSERT INTO {s}.records VALUES ($1, $2, 1, $3)
                     ON CONFLICT (tenant, key) DO UPDATE SET rev = records.rev + 1, body = EXCLUDED.body
                     RETURNING rev",
                ),
                &[&tenant.as_str(), &key, &body],
            )
            .await
            .map_err(|e| pg_err("write", e))?;
        tx.execute(
            &self.sql("INSERT INTO {s}.changes (tenant, key) VALUES ($1, $2)"),
            &[&tenant.as_str(), &key],
        )
        .await
        .map_err(|e| pg_err("feed", e))?;
        tx.commit().await.map_err(|e| pg_err("write", e))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    async fn apply(
        &self,
        tenant: &TenantId,
        r: &Rec,
        replace_equal: bool,
    ) -> Result<bool, StoreError> {
        let c = self.pg.client().await?;
        let n = c
            .execute(
                &self.sql(APPLY),
                &[
                    &tenant.as_str(),
                    &r.key,
                    &(r.rev as i64),
                    &r.body,
                    &replace_equal,
                ],
            )
            .await
            .map_err(|e| pg_err("apply", e))?;
        Ok(n == 1)
    }

    async fn apply_many(&self, tenant: &TenantId, recs: &[Rec]) -> Result<u64, StoreError> {
        // One statement per page: the rows travel as three arrays and the revision rule
        // is the same as `apply`'s. Keys must be unique within one statement, so a page
        // naming a key twice keeps its newest revision.
        let mut newest: std::collections::BTreeMap<&str, &Rec> = std::collections::BTreeMap::new();
        for r in recs {
            match newest.get(r.key.as_str()) {
                Some(have) if have.rev >= r.rev => {}
                _ => {
                    newest.insert(r.key.as_str(), r);
                }
            }
        }
        let keys: Vec<&str> = newest.keys().copied().collect();
        let revs: Vec<i64> = newest.values().map(|r| r.rev as i64).collect();
        let bodies: Vec<Option<&[u8]>> = newest.values().map(|r| r.body.as_deref()).collect();
        let c = self.pg.client().await?;
        c.execute(
            &self.sql(
                "INSERT INTO {s}.records
                 SELECT $1, k, r, b FROM unnest($2::text[], $3::bigint[], $4::bytea[]) AS u(k, r, b)
                 ON CONFLICT (tenant, key) DO UPDATE SET rev = EXCLUDED.rev, body = EXCLUDED.body
                 WHERE records.rev < EXCLUDED.rev",
            ),
            &[&tenant.as_str(), &keys, &revs, &bodies],
        )
        .await
        .map_err(|e| pg_err("apply", e))
    }

    async fn scan(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Rec>, StoreError> {
        let c = self.pg.client().await?;
        let rows = c
            .query(
                &self.sql(
                    "SELECT key, rev, body FROM {s}.records WHERE tenant = $1 AND ($2::text IS NULL OR key > $2)
                     ORDER BY key LIMIT $3",
                ),
                &[&tenant.as_str(), &after, &(limit as i64)],
            )
            .await
            .map_err(|e| pg_err("scan", e))?;
        Ok(rows
            .into_iter()
            .map(|r| rec(r.get(0), r.get(1), r.get(2)))
            .collect())
    }
}

#[async_trait]
impl ChangeFeed for PgDataset {
    async fn head(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let c = self.pg.client().await?;
        let row = c
            .query_one(
                &self.sql("SELECT COALESCE(MAX(seq), 0) FROM {s}.changes WHERE tenant = $1"),
                &[&tenant.as_str()],
            )
            .await
            .map_err(|e| pg_err("feed head", e))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    async fn read(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let c = self.pg.client().await?;
        let rows = c
            .query(
                &self.sql("SELECT seq, key FROM {s}.changes WHERE tenant = $1 AND seq > $2 ORDER BY seq LIMIT $3"),
                &[&tenant.as_str(), &(after as i64), &(limit as i64)],
            )
            .await
            .map_err(|e| pg_err("feed", e))?;
        Ok(rows
            .into_iter()
            .map(|r| Change {
                seq: r.get::<_, i64>(0).max(0) as u64,
                key: r.get(1),
            })
            .collect())
    }

    async fn trim(&self, tenant: &TenantId, upto: u64) -> Result<(), StoreError> {
        let c = self.pg.client().await?;
        c.execute(
            &self.sql("DELETE FROM {s}.changes WHERE tenant = $1 AND seq < $2"),
            &[&tenant.as_str(), &(upto as i64)],
        )
        .await
        .map(|_| ())
        .map_err(|e| pg_err("feed trim", e))
    }
}
