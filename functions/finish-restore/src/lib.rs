//! finish-restore: fingerprints the restored location, compares it with the manifest for
//! a restore to a backup's own instant, and certifies on `tenant-restore`.

use lifecycle::StepError;
use lifecycle::error::from_input;
use serde::Deserialize;
use serde_json::Value;
use steps::backup::{RestorePlan, Restored, finish_restore};
use stores::Deps;
use tenant_runtime::Budget;

#[derive(Debug, Deserialize)]
struct Input {
    plan: RestorePlan,
}

/// Verifies and certifies the restore.
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<Restored, StepError> {
    let i: Input = from_input(input, "finish-restore")?;
    finish_restore(deps, &i.plan).await
}
