//! backup-system: exports one system of a backup, chunk by chunk, until done or out of
//! time; the state machine loops on `done`. A killed call resumes after the last chunk
//! it recorded.

use lifecycle::error::from_input;
use lifecycle::{StepError, SystemName, TenantId};
use serde::Deserialize;
use serde_json::Value;
use steps::backup::{Exported, export_step};
use stores::Deps;
use tenant_runtime::Budget;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    tenant_id: TenantId,
    backup_id: lifecycle::RequestId,
    system: SystemName,
    // Echoed back by a continuation; the archive's progress is what counts.
    #[serde(default)]
    #[allow(dead_code)]
    records: u64,
    #[serde(default)]
    #[allow(dead_code)]
    chunks: u64,
    #[serde(default)]
    #[allow(dead_code)]
    done: bool,
}

/// Exports as much as the budget allows.
pub async fn handler(input: Value, deps: &Deps, budget: Budget) -> Result<Value, StepError> {
    let i: Input = from_input(input, "backup-system")?;
    let out: Exported = export_step(
        deps,
        &i.tenant_id,
        i.backup_id.as_str(),
        i.system.as_str(),
        budget.deadline(),
    )
    .await?;
    tracing::info!(backup_id = %i.backup_id, system = %i.system, records = out.records, chunks = out.chunks, done = out.done, "export pass");
    let mut v = serde_json::to_value(&out).map_err(|e| StepError::Internal(e.to_string()))?;
    v["tenant_id"] = Value::String(i.tenant_id.to_string());
    v["backup_id"] = Value::String(i.backup_id.to_string());
    Ok(v)
}
