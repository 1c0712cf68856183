//! A PostgreSQL system's migration dataset and change feed, one schema per location.

use super::{Pg, ensure, pg_err, schema_for};
use async_trait::async_trait;
use futures::StreamExt;
use lifecycle::TenantId;
use ports::StoreError;
use ports::migrate::{Change, ChangeFeed, CopiedPage, Dataset, Export, Rec};
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

/// A full export as one `COPY (SELECT ...) TO STDOUT (FORMAT binary)` in a read-only
/// transaction: the rows stream in key order at the server's own copy speed, from one
/// snapshot, instead of one keyset query per page.
struct CopyExport {
    /// The connection the COPY runs on; taken out of the pool when the export stops early,
    /// so closing it ends the COPY (and its transaction) instead of the next user draining
    /// the rest of it.
    client: Option<deadpool_postgres::Object>,
    rows: Pin<Box<BinaryCopyOutStream>>,
    page: usize,
    done: bool,
    /// A row failed to arrive or decode: every later call fails too, so no caller can
    /// continue past a gap.
    failed: Option<String>,
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
        if let Some(e) = &self.failed {
            return Err(StoreError::Unavailable(format!("postgres export: {e}")));
        }
        let mut out = Vec::with_capacity(self.page);
        while !self.done && out.len() < self.page {
            let row = match self.rows.next().await {
                None => break,
                Some(row) => row,
            };
            let got =
                row.and_then(|row| Ok(rec(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)));
            match got {
                Ok(r) => out.push(r),
                Err(e) => {
                    self.failed = Some(e.to_string());
                    return Err(pg_err("export", e));
                }
            }
        }
        if out.len() < self.page && !self.done {
            if let Some(c) = &self.client {
                c.batch_execute("COMMIT")
                    .await
                    .map_err(|e| pg_err("export", e))?;
            }
            self.done = true;
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

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    /// A bulk-copy page between two schemas of one database, as one statement in the
    /// server (the page never travels through the client), with `apply`'s revision rule.
    async fn copy_page_from(
        &self,
        tenant: &TenantId,
        source: &dyn Dataset,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Option<CopiedPage>, StoreError> {
        let Some(src) = source
            .as_any()
            .and_then(|a| a.downcast_ref::<PgDataset>())
            .filter(|s| s.pg.same_database(&self.pg))
        else {
            return Ok(None);
        };
        let c = self.pg.client().await?;
        let row = c
            .query_one(
                &self.sql(&format!(
                    "WITH page AS (
                        SELECT key, rev, body FROM \"{}\".records
                        WHERE tenant = $1 AND ($2::text IS NULL OR key > $2)
                        ORDER BY key LIMIT $3),
                     copied AS (
                        INSERT INTO {{s}}.records SELECT $1, key, rev, body FROM page
                        ON CONFLICT (tenant, key) DO UPDATE SET rev = EXCLUDED.rev, body = EXCLUDED.body
                        WHERE records.rev < EXCLUDED.rev
                        RETURNING 1)
                     SELECT (SELECT count(*) FROM page), (SELECT count(*) FROM copied),
                            (SELECT max(key) FROM page)",
                    src.schema
                )),
                &[&tenant.as_str(), &after, &(limit as i64)],
            )
            .await
            .map_err(|e| pg_err("copy", e))?;
        Ok(Some(CopiedPage {
            listed: row.get::<_, i64>(0).max(0) as usize,
            copied: row.get::<_, i64>(1).max(0) as u64,
            last: row.get(2),
        }))
    }

    async fn export(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        page: usize,
    ) -> Result<Option<Box<dyn Export>>, StoreError> {
        let c = self.pg.client().await?;
        // COPY takes no bind parameters, so the server quotes the tenant and the cursor
        // into the statement itself (`format` with %L: its own literal quoting); the
        // planner then sees the values, as it would a bound query's. The COPY waits on
        // this step's uploads between pages, so it must not fall to a role's
        // statement_timeout; the read-only transaction keeps that setting to itself.
        let template = self.sql(&format!(
            "COPY (SELECT key, rev, body FROM {{s}}.records WHERE tenant = %L {} ORDER BY key)
             TO STDOUT (FORMAT binary)",
            if after.is_some() { "AND key > %L" } else { "" }
        ));
        let stmt: String = c
            .query_one(
                "SELECT format($1::text, $2::text, $3::text)",
                &[&template, &tenant.as_str(), &after],
            )
            .await
            .map_err(|e| pg_err("export", e))?
            .get(0);
        c.batch_execute("BEGIN READ ONLY; SET LOCAL statement_timeout = 0")
            .await
            .map_err(|e| pg_err("export", e))?;
        let stream = match c.copy_out(&stmt).await {
            Ok(s) => s,
            Err(e) => {
                // The transaction is open: this connection does not go back to the pool.
                drop(deadpool_postgres::Object::take(c));
                return Err(pg_err("export", e));
            }
        };
        Ok(Some(Box::new(CopyExport {
            client: Some(c),
            rows: Box::pin(BinaryCopyOutStream::new(
                stream,
                &[Type::TEXT, Type::INT8, Type::BYTEA],
            )),
            page: page.max(1),
            done: false,
            failed: None,
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
