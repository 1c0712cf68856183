//! clone-system: copies one system of a clone page by page, anonymised, until done or out
//! of time; the state machine loops on `done`. A killed call resumes after the last page
//! it recorded.

use lifecycle::StepError;
use lifecycle::error::from_input;
use serde_json::Value;
use steps::clone::{SystemCall, copy_step};
use stores::Deps;
use tenant_runtime::Budget;

/// Copies as much as the budget allows.
pub async fn handler(input: Value, deps: &Deps, budget: Budget) -> Result<Value, StepError> {
    let i: SystemCall = from_input(input, "clone-system")?;
    let out = copy_step(
        deps,
        &i.tenant_id,
        i.clone_id.as_str(),
        i.system.as_str(),
        budget.deadline(),
    )
    .await?;
    tracing::info!(clone_id = %i.clone_id, system = %i.system, copied = out.copied, done = out.done, "copy pass");
    i.continuation(&out)
}
