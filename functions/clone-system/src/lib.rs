//! clone-system: copies one system of a clone page by page, anonymised, until done or out
//! of time; the state machine loops on `done`. A killed call resumes after the last page
//! it recorded.

use lifecycle::error::from_input;
use lifecycle::{RequestId, StepError, SystemName, TenantId};
use serde::Deserialize;
use serde_json::Value;
use steps::clone::copy_step;
use stores::Deps;
use tenant_runtime::Budget;

#[derive(Debug, Deserialize)]
struct Input {
    tenant_id: TenantId,
    clone_id: RequestId,
    system: SystemName,
    // A continuation echoes the previous output; the archive's progress is what counts.
    #[serde(flatten)]
    _rest: serde_json::Map<String, Value>,
}

/// Copies as much as the budget allows.
pub async fn handler(input: Value, deps: &Deps, budget: Budget) -> Result<Value, StepError> {
    let i: Input = from_input(input, "clone-system")?;
    let out = copy_step(
        deps,
        &i.tenant_id,
        i.clone_id.as_str(),
        i.system.as_str(),
        budget.deadline(),
    )
    .await?;
    tracing::info!(clone_id = %i.clone_id, system = %i.system, copied = out.copied, done = out.done, "copy pass");
    let mut v = serde_json::to_value(&out).map_err(|e| StepError::Internal(e.to_string()))?;
    v["tenant_id"] = Value::String(i.tenant_id.to_string());
    v["clone_id"] = Value::String(i.clone_id.to_string());
    if let Some(m) = v.as_object_mut() {
        m.remove("cursor");
    }
    Ok(v)
}
