//! begin-clone: validates the request against the catalog's `[clone]` rules, claims the
//! clone's id, makes or finds the named clone key and records the plan; lists the
//! systems the state machine's Maps copy and scan.

use lifecycle::StepError;
use lifecycle::clone::CloneRequest;
use serde_json::Value;
use steps::clone::{Begun, begin};
use stores::Deps;
use tenant_runtime::Budget;

/// Validates the request and begins the clone.
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<Begun, StepError> {
    let req = CloneRequest::parse(&input)?;
    begin(deps, &req).await
}
