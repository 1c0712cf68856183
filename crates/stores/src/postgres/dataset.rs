//! A PostgreSQL system's migration dataset and change feed, one schema per location.

use super::{Pg, ensure, pg_err, schema_for};
use async_trait::async_trait;
use futures::StreamExt;
use lifecycle::TenantId;
use ports::StoreError;
use ports::migrate::{Change, ChangeFeed, Dataset, Export, Rec};
use std::pin::Pin;
use tokio_postgres::binary_copy::BinaryCopyOutStream;
use tokio_postgres::types::Type;

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

/// A full export as one `COPY (SELECT ...) TO STDOUT (FORMAT binary)`: the rows stream in
/// key order at the server's own copy speed instead of one keyset query per page.
struct CopyExport {
    /// The connection the COPY runs on; taken out of the pool when the export stops early,
    /// so closing it ends the COPY instead of the next user draining the rest of it.
    client: Option<deadpool_postgres::Object>,
    rows: Pin<Box<BinaryCopyOutStream>>,
    page: usize,
    done: bool,
}

impl Drop for CopyExport {
    fn drop(&mut self) {
        if !self.done
            && let Some(c) = self.client.take()
        {
            drop(deadpool_postgres::Object::take(c));
        }
    }
}

#[async_trait]
impl Export for CopyExport {
    async fn next_page(&mut self) -> Result<Vec<Rec>, StoreError> {
        let mut out = Vec::with_capacity(self.page);
        while !self.done && out.len() < self.page {
            match self.rows.next().await {
                None => self.done = true,
                Some(row) => {
                    let row = row.map_err(|e| pg_err("export", e))?;
                    let field = |e| pg_err("export", e);
                    out.push(rec(
                        row.try_get(0).map_err(field)?,
                        row.try_get(1).map_err(field)?,
                        row.try_get(2).map_err(field)?,
                    ));
                }
            }
        }
        Ok(out)
    }
}

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

    async fn export(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        page: usize,
    ) -> Result<Option<Box<dyn Export>>, StoreError> {
        let c = self.pg.client().await?;
        // COPY takes no bind parameters: the tenant and the cursor travel as session
        // settings, so no value is ever spliced into the statement's text.
        c.query_one(
            "SELECT set_config('tenant_lifecycle.export_tenant', $1, false),
                    set_config('tenant_lifecycle.export_after', $2, false)",
            &[&tenant.as_str(), &after.unwrap_or_default()],
        )
        .await
        .map_err(|e| pg_err("export", e))?;
        let after_clause = if after.is_some() {
            "AND key > current_setting('tenant_lifecycle.export_after')"
        } else {
            ""
        };
        let stream = c
            .copy_out(&self.sql(&format!(
                "COPY (SELECT key, rev, body FROM {{s}}.records
                 WHERE tenant = current_setting('tenant_lifecycle.export_tenant') {after_clause}
                 ORDER BY key) TO STDOUT (FORMAT binary)"
            )))
            .await
            .map_err(|e| pg_err("export", e))?;
        Ok(Some(Box::new(CopyExport {
            client: Some(c),
            rows: Box::pin(BinaryCopyOutStream::new(
                stream,
                &[Type::TEXT, Type::INT8, Type::BYTEA],
            )),
            page: page.max(1),
            done: false,
        })))
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
