//! list-tenants: the first step of a scheduled tier run (`tenant-backup-tier`) and of the
//! daily prune (`tenant-prune`): the tenants the catalog's `[backup] tenant_tiers` assigns
//! to one tier, or, when none is named, every listed tenant and every tenant holding a
//! backup. Each becomes one iteration of the machine's Map.

use lifecycle::backup::BackupKind;
use lifecycle::error::from_input;
use lifecycle::{StepError, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stores::Deps;
use tenant_runtime::Budget;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The tier; all tiers when absent.
    #[serde(default)]
    tier: Option<String>,
    /// Passed through for the backups the run starts (full by default).
    #[serde(default)]
    kind: Option<BackupKind>,
}

/// The tenants of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Listed {
    /// The tier listed, or `None` for every tier.
    pub tier: Option<String>,
    /// The backup kind the run takes.
    pub kind: BackupKind,
    /// One entry per tenant, in tenant order.
    pub tenants: Vec<Entry>,
    /// Tenants of the tier whose erasure is certified: nothing of theirs is backed up
    /// again, so the run leaves them out instead of failing on them every time.
    pub erased: Vec<Skipped>,
}

/// A tenant the run leaves out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Skipped {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The seq of its erasure certificate on `gdpr-erasure`.
    pub erasure_seq: u64,
}

/// One tenant of a run, as the Map hands it to its iteration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its tier.
    pub tier: String,
    /// The backup kind.
    pub kind: BackupKind,
}

/// Lists the tenants of one tier (or of all).
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<Listed, StepError> {
    let i: Input = from_input(input, "list-tenants")?;
    let kind = i.kind.unwrap_or(BackupKind::Full);
    let spec = deps.catalog.backup();
    let tiers: Vec<String> = match &i.tier {
        Some(t) => vec![spec.tier(t)?.name.clone()],
        None => spec.tiers.iter().map(|t| t.name.clone()).collect(),
    };
    let mut tenants = Vec::new();
    for tier in &tiers {
        for tenant_id in spec.tenants_of(tier)? {
            tenants.push(Entry {
                tenant_id,
                tier: tier.clone(),
                kind,
            });
        }
    }
    if i.tier.is_none() {
        // Every tenant: also those holding backups that the catalog leaves to its default
        // tier (backed up on demand), so that a prune of all reaches their retention too.
        for tenant_id in steps::backup::tenants_with_backups(deps).await? {
            if !tenants.iter().any(|e| e.tenant_id == tenant_id) {
                let tier = spec.tier_of(tenant_id.as_str())?.name.clone();
                tenants.push(Entry {
                    tenant_id,
                    tier,
                    kind,
                });
            }
        }
    }
    tenants.sort_by(|a, b| a.tenant_id.as_str().cmp(b.tenant_id.as_str()));
    let gone = steps::backup::erased_tenants(deps).await?;
    let mut erased = Vec::new();
    tenants.retain(|e| match gone.get(e.tenant_id.as_str()) {
        Some(&erasure_seq) => {
            erased.push(Skipped {
                tenant_id: e.tenant_id.clone(),
                erasure_seq,
            });
            false
        }
        None => true,
    });
    tracing::info!(tier = ?i.tier, tenants = tenants.len(), erased = erased.len(), "list-tenants");
    Ok(Listed {
        tier: i.tier,
        kind,
        tenants,
        erased,
    })
}
