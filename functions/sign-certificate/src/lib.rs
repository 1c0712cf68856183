//! sign-certificate: builds the certificate, signs it and appends it to the ledger.
//!
//! `erased` is issued only when every requested system is verified with zero residue and
//! is recorded once per request id. `refused` is issued only while a legal hold really is
//! active (re-read here, not taken from the input).

use lifecycle::erasure::{
    ERASURE_CHAIN, ErasureRequest, SystemVerification, erased_details, refused_details,
    require_verified,
};
use lifecycle::error::from_input;
use lifecycle::{SignedCertificate, StepError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stores::Deps;
use stores::certify::{Draft, certify};
use tenant_runtime::Budget;

/// What happened to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Erased,
    Refused,
}

/// What the step takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    request: Value,
    outcome: Outcome,
    #[serde(default)]
    verifications: Option<Vec<SystemVerification>>,
}

/// Where the certificate was recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerPosition {
    /// Chain name.
    pub chain: String,
    /// Seq on the chain.
    pub seq: u64,
    /// Hash of the entry.
    pub entry_hash: String,
}

/// What the step returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    /// The signed certificate.
    pub certificate: SignedCertificate,
    /// Its ledger position.
    pub ledger: LedgerPosition,
    /// True when the request was already certified and nothing new was appended.
    pub already_recorded: bool,
}

/// Issues the certificate for `input.outcome`.
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<Output, StepError> {
    let input: Input = from_input(input, "sign-certificate")?;
    let request = ErasureRequest::parse(&input.request, &deps.catalog)?;
    let (details, unique, outcome) = match input.outcome {
        Outcome::Erased => {
            let verified = input.verifications.ok_or_else(|| {
                StepError::VerificationIncomplete("no verification results were given".into())
            })?;
            require_verified(&request.systems, &verified)?;
            (erased_details(&request, &verified), true, "erased")
        }
        Outcome::Refused => {
            let holds: Vec<String> = deps
                .holds
                .active(&request.tenant_id)
                .await?
                .into_iter()
                .map(|h| h.hold_id)
                .collect();
            if holds.is_empty() {
                return Err(StepError::invalid(
                    "no legal hold is active on the tenant; there is nothing to refuse",
                ));
            }
            (refused_details(&request, &holds), false, "refused")
        }
    };
    let draft = Draft {
        kind: ERASURE_CHAIN.to_owned(),
        outcome: outcome.to_owned(),
        request_id: request.request_id.to_string(),
        tenant_id: request.tenant_id.to_string(),
        details,
        unique,
    };
    let signer = deps.signer().await?;
    let done = certify(&*deps.ledger, &*signer, &*deps.clock, &draft).await?;
    tracing::info!(
        request_id = %request.request_id,
        outcome,
        seq = done.entry.seq,
        already_recorded = done.already_recorded,
        "certificate recorded"
    );
    Ok(Output {
        ledger: LedgerPosition {
            chain: done.entry.chain.clone(),
            seq: done.entry.seq,
            entry_hash: done.entry.entry_hash.clone(),
        },
        certificate: done.entry.certificate,
        already_recorded: done.already_recorded,
    })
}
