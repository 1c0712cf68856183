//! plan-restore: refuses a restore of an erased tenant, checks every manifest against its
//! certificate and every chunk against its digest, finds each system's schema path and
//! checks the target holds nothing, all before anything is written.

use lifecycle::StepError;
use lifecycle::backup::RestoreRequest;
use serde_json::Value;
use steps::backup::{RestorePlan, plan_restore};
use stores::Deps;
use tenant_runtime::Budget;

/// Validates the request and plans the restore.
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<RestorePlan, StepError> {
    let (req, tenant) = RestoreRequest::parse(&input)?;
    plan_restore(deps, &req, &tenant).await
}
