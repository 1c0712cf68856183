//! The backup pipe: a tenant's records read from each system's [`Dataset`] in key-ordered
//! pages (or, for an incremental backup, the keys its change feed names), framed,
//! compressed and sealed under the backup's own data key into an [`Archive`]; and back
//! again, through the schema transform, into a new location. Progress is kept in the
//! archive after every chunk (counts and digests only), so a killed step resumes where
//! the last recorded chunk ends.
//!
//! [`Dataset`]: ports::migrate::Dataset
//! [`Archive`]: ports::backup::Archive

pub mod frame;
mod prune;
mod restore;
pub mod seal;
mod take;

pub use prune::{Pruned, prune};
pub use restore::{
    RestorePlan, RestoreProgress, Restored, certified_restore, fingerprint as restore_fingerprint,
    finish_restore, plan_restore, restore_step,
};
pub use take::{Begun, Exported, Finished, begin, export_step, finish, list, tenants_with_backups};

use lifecycle::erasure::ERASURE_CHAIN;
use lifecycle::migration::HOME;
use lifecycle::{StepError, TenantId};
use ports::Services;
use ports::backup::Archive;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Where the tenant's records live now, and at which schema version each system is.
pub async fn live(
    svc: &dyn Services,
    tenant: &TenantId,
    system: &str,
) -> Result<(String, u32), StepError> {
    // A system that does not move record by record (logs without locations) stays at
    // home whatever the tenant's routing says; the tenant's location is the others'.
    let stays_home = svc
        .catalog()
        .system(system)
        .is_some_and(|s| !s.migratable());
    let location = match svc.routing() {
        Ok(r) if !stays_home => r
            .get(tenant)
            .await?
            .map_or_else(|| HOME.to_owned(), |r| r.source),
        _ => HOME.to_owned(),
    };
    let schema = match svc.migrations() {
        Ok(m) => m.get(tenant).await?.map_or(1, |rec| rec.schema_of(system)),
        Err(_) => 1,
    };
    Ok((location, schema))
}

/// The erasure certificate of the tenant, if its erasure is certified: a restore must
/// never bring erased data back.
pub async fn erased(svc: &dyn Services, tenant: &TenantId) -> Result<Option<u64>, StepError> {
    let mut found = None;
    scan_erasures(svc, Some(tenant.as_str()), |t, seq| {
        if t == tenant.as_str() {
            found = Some(seq);
        }
        found.is_none()
    })
    .await?;
    Ok(found)
}

/// Every tenant whose erasure is certified, with its certificate's seq on `gdpr-erasure`:
/// one pass over the chain for a run over many tenants.
pub async fn erased_tenants(
    svc: &dyn Services,
) -> Result<std::collections::BTreeMap<String, u64>, StepError> {
    let mut out = std::collections::BTreeMap::new();
    scan_erasures(svc, None, |t, seq| {
        out.entry(t.to_owned()).or_insert(seq);
        true
    })
    .await?;
    Ok(out)
}

/// Calls `f(tenant, seq)` for each certified erasure in chain order until it returns false;
/// `only` skips, unparsed, the entries whose text does not name that tenant.
async fn scan_erasures(
    svc: &dyn Services,
    only: Option<&str>,
    mut f: impl FnMut(&str, u64) -> bool,
) -> Result<(), StepError> {
    let ledger = svc.ledger();
    let mut from = 0;
    loop {
        let page = ledger.entries(ERASURE_CHAIN, from, 1000).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        from = last.seq + 1;
        for e in &page {
            // Cheap pre-filter: most entries are other tenants'.
            if only.is_some_and(|t| !e.json.contains(t)) {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&e.json).map_err(|err| {
                StepError::LedgerCorrupt(format!("gdpr-erasure entry {}: {err}", e.seq))
            })?;
            let c = &v["certificate"]["certificate"];
            if c["outcome"] == "erased"
                && let Some(t) = c["tenant_id"].as_str()
                && !f(t, e.seq)
            {
                return Ok(());
            }
        }
    }
}

/// Refuses with `TenantErased` when the tenant's erasure is certified.
pub async fn refuse_if_erased(svc: &dyn Services, tenant: &TenantId) -> Result<(), StepError> {
    match erased(svc, tenant).await? {
        Some(seq) => Err(StepError::TenantErased {
            tenant_id: tenant.to_string(),
            evidence: format!("erasure certificate seq {seq} on {ERASURE_CHAIN}"),
        }),
        None => Ok(()),
    }
}

async fn get_json<T: DeserializeOwned>(a: &dyn Archive, key: &str) -> Result<Option<T>, StepError> {
    match a.get(key).await? {
        None => Ok(None),
        Some(b) => {
            let v =
                lifecycle::json::parse_strict_bytes(&b).map_err(|e| StepError::BackupCorrupt {
                    backup_id: key.to_owned(),
                    detail: e,
                })?;
            serde_json::from_value(v)
                .map(Some)
                .map_err(|e| StepError::BackupCorrupt {
                    backup_id: key.to_owned(),
                    detail: e.to_string(),
                })
        }
    }
}

async fn put_json<T: Serialize>(a: &dyn Archive, key: &str, v: &T) -> Result<(), StepError> {
    let b = serde_json::to_vec(v).map_err(|e| StepError::Internal(e.to_string()))?;
    Ok(a.put(key, b).await?)
}

fn hex_sha256(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}
