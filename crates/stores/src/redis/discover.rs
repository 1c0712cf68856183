//! Discovery in Redis: every logical database of a server, key names that name the
//! tenant.

use super::{connect, redis_err};
use crate::discovery::{Finding, capped, names_tenant, place_of, tally};
use lifecycle::{DiscoverySpec, TenantId};
use ports::StoreError;

/// Key patterns naming the tenant in the server's databases, except under the catalog's
/// prefixes (`known`: database URL, rendered prefix) and the bookkeeping beside them.
pub(crate) async fn scan(
    server: &str,
    t: &TenantId,
    known: &[(String, String)],
    spec: &DiscoverySpec,
) -> Result<Vec<Finding>, StoreError> {
    let mut conn = connect(&format!("{server}/0"))
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let info: String = redis::cmd("INFO")
        .arg("keyspace")
        .query_async(&mut conn)
        .await
        .map_err(|e| redis_err("INFO", e))?;
    let dbs: Vec<u32> = info
        .lines()
        .filter_map(|l| l.strip_prefix("db")?.split(':').next()?.parse().ok())
        .collect();
    let mut places = Vec::new();
    for db in dbs {
        let url = format!("{server}/{db}");
        let here = super::config::identity("discovery", &url);
        let prefixes: Vec<&str> = known
            .iter()
            .filter(|(u, _)| {
                let there = super::config::identity("discovery", u);
                here.is_ok() && there.is_ok() && here.as_ref().ok() == there.as_ref().ok()
            })
            .map(|(_, p)| p.as_str())
            .filter(|p| !p.is_empty())
            .collect();
        let mut conn = connect(&url)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let pattern = format!("*{}*", t.as_str());
        let mut cursor = 0u64;
        let mut seen = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_err("SCAN", e))?;
            for k in keys {
                let key = String::from_utf8_lossy(&k);
                let covered = prefixes.iter().any(|p| {
                    key.starts_with(p) || key.starts_with(&format!("~tenant-lifecycle:{p}"))
                });
                if !covered && names_tenant(&key, t.as_str()) {
                    seen += 1;
                    places.push(format!("{server}/{db}/{}*", place_of(&key, t.as_str())));
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
            if seen >= spec.max_per_place {
                return Err(capped(&super::redact(&url), spec.max_per_place));
            }
        }
    }
    Ok(tally(places))
}
