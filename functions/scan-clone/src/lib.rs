//! scan-clone: reads one system of the clone's target back and counts original values
//! and addresses that are not fakes, until done or out of time; the machine loops on
//! `done`.

use lifecycle::StepError;
use lifecycle::error::from_input;
use serde_json::Value;
use steps::clone::{SystemCall, scan_step};
use stores::Deps;
use tenant_runtime::Budget;

/// Scans as much as the budget allows.
pub async fn handler(input: Value, deps: &Deps, budget: Budget) -> Result<Value, StepError> {
    let i: SystemCall = from_input(input, "scan-clone")?;
    let out = scan_step(
        deps,
        &i.tenant_id,
        i.clone_id.as_str(),
        i.system.as_str(),
        budget.deadline(),
    )
    .await?;
    tracing::info!(clone_id = %i.clone_id, system = %i.system, scanned = out.findings.scanned, hits = out.findings.hits(), done = out.done, "scan pass");
    i.continuation(&out)
}
