//! Pruning: deleting a tenant's backups past their retention (in every region), except
//! while a legal hold covers the tenant, and certifying what was deleted.

use super::take::list;
use crate::certify::{Draft, certify};
use lifecycle::backup::PRUNE_CHAIN;
use lifecycle::backup::manifest::backup_prefix;
use lifecycle::backup::policy::{prune_plan, stamp};
use lifecycle::{StepError, TenantId};
use ports::Services;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// What a prune did for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Backups deleted.
    pub deleted: Vec<String>,
    /// Backups kept.
    pub kept: usize,
    /// Legal holds that kept expired backups.
    pub held_by: Vec<String>,
    /// The certificate's position on `tenant-backup-prune`, when something was deleted
    /// or a hold kept something.
    pub certificate_seq: Option<u64>,
    /// Backups begun over [`ABANDONED_AFTER_DAYS`] days ago and never finished, deleted.
    #[serde(default)]
    pub abandoned: Vec<String>,
}

/// Days after which a backup that never finished counts as abandoned: past Step
/// Functions' 14 days of redrive, so a backup that could still be resumed is never touched.
pub const ABANDONED_AFTER_DAYS: i64 = 15;

/// Prunes one tenant's backups as of now.
pub async fn prune(svc: &dyn Services, tenant: &TenantId) -> Result<Pruned, StepError> {
    let all = list(svc, tenant).await?;
    let holds: Vec<String> = svc
        .holds()
        .active(tenant)
        .await?
        .into_iter()
        .map(|h| h.hold_id)
        .collect();
    let now = svc.clock().now();
    let doomed: Vec<String> = prune_plan(&all, !holds.is_empty(), now)
        .into_iter()
        .map(|m| m.backup_id.clone())
        .collect();
    let abandoned = if holds.is_empty() {
        super::take::abandoned(
            svc,
            tenant,
            now - time::Duration::days(ABANDONED_AFTER_DAYS),
        )
        .await?
    } else {
        Vec::new()
    };
    let expired_kept = if holds.is_empty() {
        0
    } else {
        prune_plan(&all, false, now).len()
    };
    // A late finish may have written an abandoned backup's manifest since it was listed.
    let finished_since: Vec<String> = list(svc, tenant)
        .await?
        .into_iter()
        .map(|m| m.backup_id)
        .filter(|id| abandoned.contains(id))
        .collect();
    let abandoned: Vec<String> = abandoned
        .into_iter()
        .filter(|id| !finished_since.contains(id))
        .collect();
    for id in doomed.iter().chain(&abandoned) {
        let prefix = backup_prefix(tenant, id);
        for a in std::iter::once(svc.archive()?).chain(svc.replicas().iter()) {
            loop {
                let pass = a
                    .delete_prefix(&prefix, Instant::now() + Duration::from_secs(60))
                    .await?;
                if pass.complete {
                    break;
                }
            }
        }
    }
    let mut seq = None;
    if !doomed.is_empty() || !abandoned.is_empty() || expired_kept > 0 {
        let at = stamp(now);
        let draft = Draft {
            kind: PRUNE_CHAIN.into(),
            outcome: if doomed.is_empty() && abandoned.is_empty() {
                "kept-by-hold"
            } else {
                "pruned"
            }
            .into(),
            request_id: format!("prune-{}-{}", tenant, at.replace([':', '.'], "")),
            tenant_id: tenant.to_string(),
            details: serde_json::json!({
                "deleted": doomed, "abandoned": abandoned, "kept": all.len() - doomed.len(),
                "legal_holds": holds, "expired_kept_by_hold": expired_kept, "at": at,
            }),
            unique: false,
        };
        let signer = svc.signer().await?;
        seq = Some(
            certify(&**svc.ledger(), &*signer, &**svc.clock(), &draft)
                .await?
                .entry
                .seq,
        );
    }
    Ok(Pruned {
        tenant_id: tenant.clone(),
        kept: all.len() - doomed.len(),
        deleted: doomed,
        held_by: holds,
        certificate_seq: seq,
        abandoned,
    })
}
