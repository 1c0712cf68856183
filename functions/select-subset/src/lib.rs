//! select-subset: finds the records a subset clone copies (its roots, what they
//! reference, their dependants when asked) in rounds over the source, until a round adds
//! nothing or the budget is spent; the state machine loops on `done`. A killed call
//! resumes from the closure it saved last.

use lifecycle::StepError;
use lifecycle::error::from_input;
use serde::Deserialize;
use serde_json::Value;
use steps::clone::subset_step;
use stores::Deps;
use tenant_runtime::Budget;

/// The clone whose subset is searched.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    tenant_id: lifecycle::TenantId,
    clone_id: lifecycle::RequestId,
}

/// Searches as much of the subset as the budget allows.
pub async fn handler(input: Value, deps: &Deps, budget: Budget) -> Result<Value, StepError> {
    let i: Input = from_input(input, "select-subset")?;
    let out = subset_step(deps, &i.tenant_id, i.clone_id.as_str(), budget.deadline()).await?;
    tracing::info!(clone_id = %i.clone_id, rounds = out.rounds, members = out.members, done = out.done, "subset pass");
    let mut v = serde_json::to_value(&out).map_err(|e| StepError::Internal(e.to_string()))?;
    if let Some(m) = v.as_object_mut() {
        m.insert("tenant_id".into(), i.tenant_id.to_string().into());
        m.insert("clone_id".into(), i.clone_id.to_string().into());
    }
    Ok(v)
}
