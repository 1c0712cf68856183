//! sign-certificate: builds the certificate, signs it and appends it to the ledger.
//!
//! `erased` is issued only when every requested system is verified with zero residue and
//! every catalog system was scanned, and is recorded once per request id. `refused` is
//! issued only while a legal hold really is active (re-read here, not taken from the
//! input). `incomplete` records an erasure that stopped after it began: what was erased
//! (from the persisted progress) and where a re-scan still finds the tenant. Nothing free
//! text reaches a certificate: ids, counts, digests and error types only.

use lifecycle::erasure::{
    ERASURE_CHAIN, ErasureRequest, SystemVerification, erased_details, incomplete_details,
    refused_details, require_verified, scope,
};
use lifecycle::error::{ERROR_TYPES, from_input};
use lifecycle::{HoldId, SignedCertificate, StepError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use steps::certify::{Draft, certify};
use stores::Deps;
use tenant_runtime::Budget;

/// What happened to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Erased,
    Refused,
    Incomplete,
}

/// What the step takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    request: Value,
    outcome: Outcome,
    #[serde(default)]
    verifications: Option<Vec<SystemVerification>>,
    /// Systems outside the request that the re-scan found clean.
    #[serde(default)]
    discovered_clean: Option<Vec<String>>,
    /// The error that stopped an incomplete erasure (`Error` of a Catch); only a known
    /// error type is certified.
    #[serde(default)]
    error: Option<String>,
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

/// A hold id as it may go on the ledger: a valid id, or the digest of one that is not
/// (a hold placed by another tool with free text in its id).
fn certifiable_hold(id: &str) -> String {
    match HoldId::parse(id) {
        Ok(h) => h.to_string(),
        Err(_) => format!("sha256:{}", hex::encode(Sha256::digest(id.as_bytes()))),
    }
}

/// An error type as it may go on the ledger.
fn certifiable_error(e: Option<&str>) -> &'static str {
    let e = e.unwrap_or("Unknown");
    ERROR_TYPES
        .iter()
        .chain(
            [
                "States.ALL",
                "States.Timeout",
                "States.TaskFailed",
                "States.Runtime",
            ]
            .iter(),
        )
        .find(|t| **t == e)
        .copied()
        .unwrap_or("Unknown")
}

/// Issues the certificate for `input.outcome`.
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<Output, StepError> {
    let input: Input = from_input(input, "sign-certificate")?;
    let request = ErasureRequest::parse(&input.request, &deps.catalog)?;
    let digest = request.digest(&deps.catalog);
    let id = request.request_id.as_str();
    let (details, unique, outcome) = match input.outcome {
        Outcome::Erased => {
            let verified = input.verifications.ok_or_else(|| {
                StepError::VerificationIncomplete("no verification results were given".into())
            })?;
            require_verified(&request.systems, &verified)?;
            let mut scanned: Vec<String> = verified.iter().map(|v| v.system.clone()).collect();
            scanned.extend(input.discovered_clean.unwrap_or_default());
            // "Everywhere" means every system of the catalog; say which catalog.
            if let Some(missing) = deps
                .catalog
                .system_names()
                .into_iter()
                .find(|s| !scanned.contains(s))
            {
                return Err(StepError::VerificationIncomplete(format!(
                    "system {missing} of the catalog was not scanned"
                )));
            }
            let scope = scope(&deps.catalog, &scanned);
            (
                erased_details(&request, &digest, &verified, scope),
                true,
                "erased",
            )
        }
        Outcome::Refused => {
            let holds: Vec<String> = deps
                .holds
                .active(&request.tenant_id)
                .await?
                .into_iter()
                .map(|h| certifiable_hold(&h.hold_id))
                .collect();
            if holds.is_empty() {
                return Err(StepError::invalid(
                    "no legal hold is active on the tenant; there is nothing to refuse",
                ));
            }
            let progress = deps.requests.progress(id).await?;
            (
                refused_details(&request, &digest, &holds, &progress),
                false,
                "refused",
            )
        }
        Outcome::Incomplete => {
            let progress = deps.requests.progress(id).await?;
            // Where the tenant still is, by an independent re-scan of the whole catalog.
            let mut residue = Vec::new();
            let mut scanned = Vec::new();
            for name in deps.catalog.system_names() {
                let n = deps.store(&name)?.count(&request.tenant_id).await?;
                if n > 0 {
                    residue.push((name.clone(), n));
                }
                scanned.push(name);
            }
            let scope = scope(&deps.catalog, &scanned);
            let error = certifiable_error(input.error.as_deref());
            (
                incomplete_details(&request, &digest, error, &progress, &residue, scope),
                false,
                "incomplete",
            )
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
    if done.already_recorded
        && done.entry.certificate.certificate.details["request_sha256"]
            .as_str()
            .is_some_and(|d| d != digest)
    {
        return Err(StepError::RequestConflict {
            request_id: id.to_owned(),
            claimed: digest,
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_and_known_error_types_reach_the_ledger() {
        assert_eq!(certifiable_hold("LIT-2025-0042"), "LIT-2025-0042");
        let personal = certifiable_hold("Jane Doe, born 1980-02-03\n\u{1b}[31m");
        assert!(personal.starts_with("sha256:") && personal.len() == 71);
        assert_eq!(
            certifiable_error(Some("ResidualDataFound")),
            "ResidualDataFound"
        );
        assert_eq!(certifiable_error(Some("jane@example.com")), "Unknown");
        assert_eq!(certifiable_error(None), "Unknown");
    }
}
