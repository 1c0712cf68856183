//! finish-backup: writes the manifest (from here the backup exists), copies the backup to
//! the regions its tier asks for, and certifies it on `tenant-backup`.

use lifecycle::error::from_input;
use lifecycle::{StepError, TenantId};
use serde::Deserialize;
use serde_json::Value;
use steps::backup::{Finished, finish};
use stores::Deps;
use tenant_runtime::Budget;

#[derive(Debug, Deserialize)]
struct Input {
    tenant_id: TenantId,
    backup_id: lifecycle::RequestId,
}

/// Finishes and certifies the backup.
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<Finished, StepError> {
    let i: Input = from_input(input, "finish-backup")?;
    finish(deps, &i.tenant_id, i.backup_id.as_str()).await
}
