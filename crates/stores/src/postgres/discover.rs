//! Discovery in PostgreSQL: every schema of the server's database, every table with a
//! text column, rows whose text names the tenant.

use super::{Pg, pg_err};
use crate::discovery::Finding;
use lifecycle::{DiscoverySpec, TenantId};
use ports::StoreError;

/// Tables holding rows that name the tenant, outside the catalog's `schemas` (and their
/// migration locations' `<schema>__<location>`).
pub(crate) async fn scan(
    url: &str,
    t: &TenantId,
    schemas: &[String],
    spec: &DiscoverySpec,
) -> Result<Vec<Finding>, StoreError> {
    let pg = Pg::connect(url)
        .await
        .map_err(|e| StoreError::Unavailable(format!("discovery of {url}: {e}")))?;
    let client = pg.client().await?;
    let rows = client
        .query(
            "SELECT table_schema, table_name, array_agg(column_name::text ORDER BY ordinal_position)
               FROM information_schema.columns
              WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
                AND table_schema NOT LIKE 'pg_toast%'
                AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'bytea')
              GROUP BY 1, 2 ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(|e| pg_err("discovery columns", e))?;
    let covered = |schema: &str| {
        schemas
            .iter()
            .any(|s| schema == s || schema.starts_with(&format!("{s}__")))
    };
    // A whole identifier: not preceded or followed by a letter, digit, '_' or '-'.
    let pattern = format!("(^|[^A-Za-z0-9_-]){}($|[^A-Za-z0-9_-])", t.as_str());
    let host = url
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("host="))
        .unwrap_or("localhost");
    let mut found = Vec::new();
    for r in rows {
        let (schema, table, cols): (String, String, Vec<String>) = (r.get(0), r.get(1), r.get(2));
        if covered(&schema) {
            continue;
        }
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let cond = cols
            .iter()
            .map(|c| {
                format!(
                    "convert_from(convert_to({}::text, 'UTF8'), 'UTF8') ~ $1",
                    quote(c)
                )
            })
            .collect::<Vec<_>>()
            .join(" OR ");
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM {}.{} WHERE {cond} LIMIT {}) m",
            quote(&schema),
            quote(&table),
            spec.max_per_place
        );
        let n: i64 = client
            .query_one(&sql, &[&pattern])
            .await
            .map_err(|e| pg_err("discovery scan", e))?
            .get(0);
        if n > 0 {
            found.push(Finding {
                place: format!("postgres://{host}/{schema}.{table}"),
                records: n as u64,
            });
        }
    }
    Ok(found)
}
