//! finish-clone: certifies a clean clone on `tenant-clone`; after a scan with hits it
//! removes the clone (looping on `removing`), certifies the removal and fails with
//! `PersonalDataFound`.

use lifecycle::error::from_input;
use lifecycle::{RequestId, StepError, TenantId};
use serde::Deserialize;
use serde_json::Value;
use steps::clone::{Finished, finish};
use stores::Deps;
use tenant_runtime::Budget;

#[derive(Debug, Deserialize)]
struct Input {
    tenant_id: TenantId,
    clone_id: RequestId,
    #[serde(flatten)]
    _rest: serde_json::Map<String, Value>,
}

/// Finishes the clone.
pub async fn handler(input: Value, deps: &Deps, budget: Budget) -> Result<Finished, StepError> {
    let i: Input = from_input(input, "finish-clone")?;
    finish(deps, &i.tenant_id, i.clone_id.as_str(), budget.deadline()).await
}
