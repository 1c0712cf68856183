//! begin-backup: fixes a backup's instant, its data key (wrapped by the tenant's key) and
//! each system's feed position, and lists the systems the state machine's Map exports.

use lifecycle::StepError;
use lifecycle::backup::BackupRequest;
use serde_json::Value;
use steps::backup::{Begun, begin};
use stores::Deps;
use tenant_runtime::Budget;

/// Validates the request and begins the backup.
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<Begun, StepError> {
    let req = BackupRequest::parse(&input)?;
    begin(deps, &req).await
}
