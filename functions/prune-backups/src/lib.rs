//! prune-backups: deletes backups past their retention (every region), keeps everything
//! while a legal hold covers the tenant, and certifies what it did.

use lifecycle::error::from_input;
use lifecycle::{StepError, TenantId};
use serde::Deserialize;
use serde_json::Value;
use steps::backup::{Pruned, prune};
use stores::Deps;
use tenant_runtime::Budget;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    tenant_id: TenantId,
}

/// Prunes one tenant.
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<Pruned, StepError> {
    let i: Input = from_input(input, "prune-backups")?;
    prune(deps, &i.tenant_id).await
}
