//! Restoring a backup into a new location: plan (nothing erased comes back, every
//! manifest matches its certificate, every chunk matches its digest, every schema has a
//! path, the target holds nothing of the tenant), then copy each system chunk by chunk
//! through the schema transform, then fingerprint the target and certify.

use super::take::{data_key, list, read_chunk};
use super::{hex_sha256, live, refuse_if_erased};
use crate::certify::{Draft, certify, existing};
use lifecycle::backup::manifest::{self, Manifest};
use lifecycle::backup::policy::{instant, restore_chain, schema_path};
use lifecycle::backup::{BACKUP_CHAIN, RESTORE_CHAIN, RestoreRequest};
use lifecycle::migration::{Fingerprint, Transform};
use lifecycle::{StepError, TenantId};
use ports::Claim;
use ports::Services;
use ports::migrate::Rec;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// One system's part of a restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemPlan {
    /// The system.
    pub system: String,
    /// Schema of the backed-up bodies.
    pub from_schema: u32,
    /// Schema written.
    pub to_schema: u32,
    /// The transform between them.
    pub transform: Transform,
}

/// What a restore will do, checked before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePlan {
    /// The restore's id.
    pub restore_id: String,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The backups replayed, the full one first.
    pub chain: Vec<String>,
    /// The location written.
    pub to: String,
    /// The instant asked for, if any.
    pub to_time: Option<String>,
    /// The systems restored.
    pub systems: Vec<SystemPlan>,
    /// Whether the tenant's traffic moves to `to` once the restore is verified.
    #[serde(default)]
    pub in_place: bool,
    /// Where the tenant lives now: the `from` of an in-place restore's migration.
    #[serde(default)]
    pub live: String,
    /// The systems an in-place restore cuts over: those that move record by record (logs
    /// without locations are restored into `to` and stay where they are live).
    #[serde(default)]
    pub cut_over: Vec<String>,
}

async fn manifests_for(
    svc: &dyn Services,
    tenant: &TenantId,
    req: &RestoreRequest,
) -> Result<Vec<Manifest>, StepError> {
    let all = list(svc, tenant).await?;
    let named = all
        .iter()
        .find(|m| m.backup_id == req.backup_id)
        .ok_or_else(|| {
            StepError::invalid(format!(
                "no backup {} of tenant {tenant} (see `tenantctl backup list {tenant}`)",
                req.backup_id
            ))
        })?;
    let to = match &req.to_time {
        Some(t) => instant(t)?,
        None => instant(&named.created_at)?,
    };
    let chain = restore_chain(&all, Some(to))?;
    if req.to_time.is_none() && chain.last().map(|m| &m.backup_id) != Some(&named.backup_id) {
        return Err(StepError::invalid(format!(
            "backup {} shares its instant with another; restore it with --to-time",
            req.backup_id
        )));
    }
    Ok(chain.into_iter().cloned().collect())
}

/// Checks everything a restore depends on and claims its id; writes nothing else.
pub async fn plan_restore(
    svc: &dyn Services,
    req: &RestoreRequest,
    tenant: &TenantId,
) -> Result<RestorePlan, StepError> {
    refuse_if_erased(svc, tenant).await?;
    let chain = manifests_for(svc, tenant, req).await?;
    let mut systems: Vec<SystemPlan> = Vec::new();
    for m in &chain {
        // The manifest must be the one certified: the archive is not trusted.
        let cert = existing(&**svc.ledger(), BACKUP_CHAIN, &m.backup_id)
            .await?
            .ok_or_else(|| StepError::BackupCorrupt {
                backup_id: m.backup_id.clone(),
                detail: "no certificate on tenant-backup records it".into(),
            })?;
        let certified = cert.certificate.certificate.details["manifest_sha256"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if certified != m.digest() {
            return Err(StepError::BackupCorrupt {
                backup_id: m.backup_id.clone(),
                detail: format!(
                    "its manifest's SHA-256 {} is not the certified {certified}",
                    m.digest()
                ),
            });
        }
        let archive = svc.archive()?;
        for part in &m.systems {
            for c in &part.chunks {
                let key = manifest::chunk_key(tenant, &m.backup_id, &part.system, c.index);
                let ok = archive
                    .get(&key)
                    .await?
                    .is_some_and(|b| hex_sha256(&b) == c.sha256);
                if !ok {
                    return Err(StepError::BackupCorrupt {
                        backup_id: m.backup_id.clone(),
                        detail: format!(
                            "{} chunk {} is missing or differs from its SHA-256",
                            part.system, c.index
                        ),
                    });
                }
            }
            if !systems.iter().any(|s| s.system == part.system) {
                let (_, live_schema) = live(svc, tenant, &part.system).await?;
                let to_schema = req.schema_version.unwrap_or(live_schema);
                let transform = schema_path(&part.system, part.schema_version, to_schema)?
                    .for_kind(svc.kind(&part.system)?);
                svc.dataset(&part.system, &req.to)?;
                systems.push(SystemPlan {
                    system: part.system.clone(),
                    from_schema: part.schema_version,
                    to_schema,
                    transform,
                });
            }
        }
        // The key must still open: a destroyed key means an erased tenant.
        data_key(svc, m).await?;
    }
    let (live_at, _) = live(svc, tenant, "").await?;
    let cut_over = if req.in_place {
        in_place_allowed(svc, tenant, req, &systems, &live_at).await?
    } else {
        Vec::new()
    };
    let restore_id = req.id();
    let digest = lifecycle::erasure::json_digest(
        &serde_json::to_value(req).map_err(|e| StepError::Internal(e.to_string()))?,
    );
    match svc
        .requests()
        .claim(&restore_id, &digest, "", &svc.clock().now_rfc3339())
        .await?
    {
        Claim::Other(claimed) => {
            return Err(StepError::RequestConflict {
                request_id: restore_id,
                claimed,
            });
        }
        // A resumed restore may find its own records in the target.
        Claim::Same => {}
        Claim::New => {
            for s in &systems {
                let ds = svc.dataset(&s.system, &req.to)?;
                // An empty location (schema, table) is made first, so the check can read it.
                ds.provision(tenant).await?;
                if !ds.scan(tenant, None, 1).await?.is_empty() {
                    return Err(StepError::invalid(format!(
                        "location {} of system {} already holds records of tenant {tenant}; a restore never writes over data: choose another location",
                        req.to, s.system
                    )));
                }
            }
        }
    }
    Ok(RestorePlan {
        restore_id,
        tenant_id: tenant.clone(),
        chain: chain.iter().map(|m| m.backup_id.clone()).collect(),
        to: req.to.clone(),
        to_time: req.to_time.clone(),
        systems,
        in_place: req.in_place,
        live: live_at,
        cut_over,
    })
}

/// What an in-place restore needs before anything is written: no migration running, a
/// system that moves record by record, and the live schema kept (the router dual-writes
/// live writes to the restored location as they are). Returns the systems it cuts over.
async fn in_place_allowed(
    svc: &dyn Services,
    tenant: &TenantId,
    req: &RestoreRequest,
    systems: &[SystemPlan],
    live_at: &str,
) -> Result<Vec<String>, StepError> {
    if let Some(m) = svc.migrations()?.get(tenant).await?
        && !m.phase.is_terminal()
    {
        return Err(StepError::invalid(format!(
            "tenant {tenant} is mid-migration {} ({:?}); an in-place restore waits until it ends",
            m.migration_id, m.phase
        )));
    }
    if req.to == live_at {
        return Err(StepError::invalid(format!(
            "tenant {tenant} lives in {live_at}: restore into another location, which the restore then cuts over to"
        )));
    }
    // Routing is per tenant: once cut over, every migratable system is served from `to`,
    // so every one of them must have been restored there.
    if let Some(missing) = svc
        .catalog()
        .systems
        .iter()
        .filter(|s| s.migratable())
        .find(|s| !systems.iter().any(|p| p.system == s.name.as_str()))
    {
        return Err(StepError::invalid(format!(
            "system {} is not in the backup, so it could not be served from {} after the cutover; take a new backup, or restore without --in-place",
            missing.name, req.to
        )));
    }
    let mut moved = Vec::new();
    for sp in systems {
        let spec = svc.catalog().system(&sp.system).ok_or_else(|| {
            StepError::invalid(format!("system {} is not in the catalog", sp.system))
        })?;
        if !spec.migratable() {
            continue;
        }
        let (_, live_schema) = live(svc, tenant, &sp.system).await?;
        if sp.to_schema != live_schema {
            return Err(StepError::invalid(format!(
                "an in-place restore keeps the live schema v{live_schema} of {}; restore at v{live_schema} (or into a location, without --in-place)",
                sp.system
            )));
        }
        moved.push(sp.system.clone());
    }
    if moved.is_empty() {
        return Err(StepError::invalid(
            "no restored system moves record by record, so nothing can be cut over; restore into a location instead",
        ));
    }
    Ok(moved)
}

/// One system's restore progress: the continuation the state machine loops on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RestoreProgress {
    /// The system.
    pub system: String,
    /// Position in the plan's chain.
    pub backup_index: usize,
    /// Next chunk of that backup's part.
    pub chunk_index: usize,
    /// Records written.
    pub applied: u64,
    /// True when every backup of the chain is replayed.
    pub done: bool,
}

/// Replays chunks of one system into the target until done or `deadline`.
pub async fn restore_step(
    svc: &dyn Services,
    plan: &RestorePlan,
    mut p: RestoreProgress,
    deadline: Instant,
) -> Result<RestoreProgress, StepError> {
    let sp = plan
        .systems
        .iter()
        .find(|s| s.system == p.system)
        .ok_or_else(|| {
            StepError::invalid(format!(
                "system {} is not in restore {}",
                p.system, plan.restore_id
            ))
        })?;
    let target = svc.dataset(&sp.system, &plan.to)?;
    target.provision(&plan.tenant_id).await?;
    let all = list(svc, &plan.tenant_id).await?;
    while p.backup_index < plan.chain.len() {
        let id = &plan.chain[p.backup_index];
        let m = all.iter().find(|m| &m.backup_id == id).ok_or_else(|| {
            StepError::invalid(format!(
                "backup {id} is gone (pruned or erased) since the restore was planned"
            ))
        })?;
        let key = data_key(svc, m).await?;
        let chunks = m.part(&sp.system).map_or(&[][..], |part| &part.chunks[..]);
        while p.chunk_index < chunks.len() {
            let recs = read_chunk(svc, m, &key, &sp.system, &chunks[p.chunk_index]).await?;
            let recs = recs
                .into_iter()
                .map(|r| {
                    let body = r
                        .body
                        .map(|b| sp.transform.forward(&b))
                        .transpose()
                        .map_err(|e| {
                            StepError::invalid(format!(
                                "a record of {} cannot be migrated to v{}: {e}",
                                sp.system, sp.to_schema
                            ))
                        })?;
                    Ok(Rec {
                        key: r.key,
                        rev: r.rev,
                        body,
                    })
                })
                .collect::<Result<Vec<_>, StepError>>()?;
            p.applied += target.apply_many(&plan.tenant_id, &recs).await?;
            p.chunk_index += 1;
            crate::progress::records("restore", &sp.system, p.applied);
            if Instant::now() >= deadline {
                return Ok(p);
            }
        }
        p.backup_index += 1;
        p.chunk_index = 0;
    }
    p.done = true;
    Ok(p)
}

/// What a finished restore certified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    /// The restore.
    pub restore_id: String,
    /// Records in the target, over every system.
    pub records: u64,
    /// True when the plan restored one backup at its own instant and every fingerprint
    /// equals the manifest's.
    pub matches_manifest: bool,
    /// The certificate's position on `tenant-restore`.
    pub certificate_seq: u64,
}

/// Fingerprints the target, compares it with the manifest for a restore to a backup's
/// own instant (a mismatch is `ChecksumMismatch`), and certifies on `tenant-restore`.
pub async fn finish_restore(svc: &dyn Services, plan: &RestorePlan) -> Result<Restored, StepError> {
    let all = list(svc, &plan.tenant_id).await?;
    let single = match plan.chain.as_slice() {
        [one] => all.iter().find(|m| &m.backup_id == one),
        _ => None,
    };
    let mut total = 0;
    let mut systems = Vec::new();
    for sp in &plan.systems {
        let target = svc.dataset(&sp.system, &plan.to)?;
        let got = fingerprint(&*target, &plan.tenant_id).await?;
        total += got.count;
        if let Some(m) = single {
            let want = match m.part(&sp.system) {
                Some(p) if sp.transform == Transform::None => Some(p.fingerprint),
                Some(_) => None,
                None => Some(Fingerprint::default()),
            };
            if let Some(want) = want
                && want != got
            {
                return Err(StepError::ChecksumMismatch {
                    system: sp.system.clone(),
                    detail: format!(
                        "restored {} records (fingerprint {:032x}); backup {} holds {} ({:032x})",
                        got.count, got.sum, m.backup_id, want.count, want.sum
                    ),
                });
            }
        }
        systems.push(serde_json::json!({
            "system": sp.system, "records": got.count, "fingerprint": got,
            "schema_from": sp.from_schema, "schema_to": sp.to_schema,
        }));
    }
    let matches = single.is_some() && plan.systems.iter().all(|s| s.transform == Transform::None);
    let draft = Draft {
        kind: RESTORE_CHAIN.into(),
        outcome: "restored".into(),
        request_id: plan.restore_id.clone(),
        tenant_id: plan.tenant_id.to_string(),
        details: serde_json::json!({
            "chain": plan.chain, "to": plan.to, "to_time": plan.to_time,
            "records": total, "matches_manifest": matches, "systems": systems,
        }),
        unique: true,
    };
    let signer = svc.signer().await?;
    let done = certify(&**svc.ledger(), &*signer, &**svc.clock(), &draft).await?;
    Ok(Restored {
        restore_id: plan.restore_id.clone(),
        records: total,
        matches_manifest: matches,
        certificate_seq: done.entry.seq,
    })
}

/// The fingerprint of every record with a body.
pub async fn fingerprint(
    ds: &dyn ports::migrate::Dataset,
    tenant: &TenantId,
) -> Result<Fingerprint, StepError> {
    let mut f = Fingerprint::default();
    let mut after: Option<String> = None;
    loop {
        let page = ds.scan(tenant, after.as_deref(), 1000).await?;
        for r in &page {
            if let Some(b) = &r.body {
                f.add(&r.key, b);
            }
        }
        match page.last() {
            Some(l) if page.len() == 1000 => after = Some(l.key.clone()),
            _ => return Ok(f),
        }
    }
}

/// The certificate of a verified restore of `tenant` into `to`, which a migration of kind
/// `restore` moves the tenant onto; its seq on `tenant-restore`. Each of `systems` must
/// be in it and hold exactly what it certified: a restore whose location has been
/// written since (by an earlier cutover, say) cannot be cut over to again.
pub async fn certified_restore(
    svc: &dyn Services,
    tenant: &TenantId,
    restore_id: &str,
    to: &str,
    systems: &[String],
) -> Result<u64, StepError> {
    let entry = existing(&**svc.ledger(), RESTORE_CHAIN, restore_id)
        .await?
        .ok_or_else(|| {
            StepError::invalid(format!(
                "no restore {restore_id} is certified on {RESTORE_CHAIN}: restore first, then cut over"
            ))
        })?;
    let c = &entry.certificate.certificate;
    if c.tenant_id != tenant.as_str() || c.details["to"] != to {
        return Err(StepError::invalid(format!(
            "restore {restore_id} wrote tenant {} into {}, not tenant {tenant} into {to}",
            c.tenant_id, c.details["to"]
        )));
    }
    let certified = c.details["systems"].as_array().cloned().unwrap_or_default();
    for system in systems {
        let want = certified
            .iter()
            .find(|e| e["system"] == system.as_str())
            .map(|e| e["fingerprint"].clone())
            .ok_or_else(|| {
                StepError::invalid(format!(
                    "restore {restore_id} did not restore system {system}; an in-place cutover moves only what was restored"
                ))
            })?;
        let target = svc.dataset(system, to)?;
        let got = serde_json::to_value(fingerprint(&*target, tenant).await?)
            .map_err(|e| StepError::Internal(e.to_string()))?;
        if got != want {
            return Err(StepError::invalid(format!(
                "location {to} of system {system} no longer holds what restore {restore_id} certified; restore again into a new location"
            )));
        }
    }
    Ok(entry.seq)
}
