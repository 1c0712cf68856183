//! check-legal-hold: reports the tenant's active legal holds by id (never their reasons).

use lifecycle::error::from_input;
use lifecycle::{StepError, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stores::Deps;
use tenant_runtime::Budget;

/// What the step takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    tenant_id: TenantId,
}

/// What the step returns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Output {
    /// True when at least one hold is active.
    pub held: bool,
    /// Ids of the active holds.
    pub holds: Vec<String>,
}

/// Looks up the active legal holds of `input.tenant_id`.
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<Output, StepError> {
    let input: Input = from_input(input, "check-legal-hold")?;
    let holds: Vec<String> = deps
        .holds
        .active(&input.tenant_id)
        .await?
        .into_iter()
        .map(|h| h.hold_id)
        .collect();
    tracing::info!(
        held = !holds.is_empty(),
        holds = holds.len(),
        "legal holds checked"
    );
    Ok(Output {
        held: !holds.is_empty(),
        holds,
    })
}
