//! validate-request: the first step of an erasure. Checks the request against the catalog
//! (every failure is `InvalidRequest`, nothing is changed) and, for a request already
//! certified, returns the existing certificate so nothing is erased twice.

use lifecycle::erasure::{ERASURE_CHAIN, ErasureRequest};
use lifecycle::{SignedCertificate, StepError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stores::Deps;
use stores::certify::existing;
use tenant_runtime::Budget;

/// What the step returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    /// The validated request.
    pub request: ErasureRequest,
    /// True when this request id already has an erasure certificate.
    pub already_certified: bool,
    /// That certificate, when there is one.
    pub certificate: Option<SignedCertificate>,
}

/// Validates `input` (an erasure request) and looks for an earlier certificate.
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<Output, StepError> {
    let request = ErasureRequest::parse(&input, &deps.catalog)?;
    let earlier = existing(&*deps.ledger, ERASURE_CHAIN, request.request_id.as_str()).await?;
    tracing::info!(
        request_id = %request.request_id,
        systems = request.systems.len(),
        already_certified = earlier.is_some(),
        "request validated"
    );
    Ok(Output {
        request,
        already_certified: earlier.is_some(),
        certificate: earlier.map(|e| e.certificate),
    })
}
