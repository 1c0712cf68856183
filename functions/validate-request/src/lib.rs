//! validate-request: the first step of an erasure. Checks the request against the catalog
//! (every failure is `InvalidRequest`, nothing is changed), binds its id to a digest of what
//! it asks (tenant, systems, catalog) with an atomic claim, and for a request already
//! certified returns the existing certificate so nothing is erased twice. The same id
//! asking for anything else is refused with `RequestConflict`.

use lifecycle::erasure::{ERASURE_CHAIN, ErasureRequest};
use lifecycle::{SignedCertificate, StepError};
use ports::Claim;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steps::certify::existing;
use stores::Deps;
use tenant_runtime::Budget;

/// What the step returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    /// The validated request.
    pub request: ErasureRequest,
    /// What the request id is bound to.
    pub request_sha256: String,
    /// True when this request id already has an erasure certificate.
    pub already_certified: bool,
    /// That certificate, when there is one.
    pub certificate: Option<SignedCertificate>,
}

/// Validates `input` (an erasure request), claims its id and looks for an earlier
/// certificate.
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<Output, StepError> {
    let request = ErasureRequest::parse(&input, &deps.catalog)?;
    let digest = request.digest(&deps.catalog);
    let id = request.request_id.as_str();
    let conflict = |claimed: String| StepError::RequestConflict {
        request_id: id.to_owned(),
        claimed,
    };
    match deps
        .requests
        .claim(id, &digest, &request.reason, &deps.clock.now_rfc3339())
        .await?
    {
        Claim::Other(held) => return Err(conflict(held)),
        Claim::New | Claim::Same => {}
    }
    let earlier = existing(&*deps.ledger, ERASURE_CHAIN, id).await?;
    if let Some(e) = &earlier {
        // Certificates name the digest they were issued for; one that names another is a
        // different request under the same id (claims were written since this one).
        if let Some(d) = e.certificate.certificate.details["request_sha256"].as_str()
            && d != digest
        {
            return Err(conflict(d.to_owned()));
        }
    }
    tracing::info!(
        request_id = %request.request_id,
        systems = request.systems.len(),
        already_certified = earlier.is_some(),
        "request validated"
    );
    Ok(Output {
        request,
        request_sha256: digest,
        already_certified: earlier.is_some(),
        certificate: earlier.map(|e| e.certificate),
    })
}
