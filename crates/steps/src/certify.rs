//! Signing a certificate and appending it to its chain, retrying lost races from the new
//! head. The certificate names its position, so a lost race means re-signing.

use lifecycle::StepError;
use lifecycle::certificate::{Certificate, SignedCertificate, signature_block};
use lifecycle::ledger::{Head, LedgerEntry, leaf_of};
use ports::retry::backoff;
use ports::{Clock, Ledger, NewEntry, Signer, StoreError};
use serde_json::Value;

/// How many lost races an append survives before it reports `LedgerConflict`.
const MAX_RACES: u32 = 64;

/// The parts of a certificate that do not depend on its ledger position.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Certificate kind, also the chain name.
    pub kind: String,
    /// Outcome, e.g. `erased`.
    pub outcome: String,
    /// Request id.
    pub request_id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Kind-specific details (integers only, no floats).
    pub details: Value,
    /// Whether this request id may appear once only on the chain.
    pub unique: bool,
}

/// What `certify` did.
#[derive(Debug, Clone)]
pub struct Certified {
    /// The recorded entry (new, or the earlier one for a duplicate request).
    pub entry: LedgerEntry,
    /// True when the request was already certified and nothing new was appended.
    pub already_recorded: bool,
}

/// Reads the certificate already recorded for a unique request, if any.
pub async fn existing(
    ledger: &dyn Ledger,
    chain: &str,
    request_id: &str,
) -> Result<Option<LedgerEntry>, StepError> {
    match ledger.find_request(chain, request_id).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_str(&raw).map(Some).map_err(|e| {
            StepError::LedgerCorrupt(format!("entry recording request {request_id}: {e}"))
        }),
    }
}

/// Signs `draft` at the chain's head and appends it, retrying from the new head on conflict.
pub async fn certify(
    ledger: &dyn Ledger,
    signer: &dyn Signer,
    clock: &dyn Clock,
    draft: &Draft,
) -> Result<Certified, StepError> {
    let chain = draft.kind.as_str();
    for attempt in 1..=MAX_RACES {
        let head = ledger.head(chain).await?;
        let (seq, prev_hash) = Head::next(head.as_ref());
        let now = clock.now_rfc3339();
        let cert = Certificate {
            kind: draft.kind.clone(),
            format: 1,
            outcome: draft.outcome.clone(),
            request_id: draft.request_id.clone(),
            tenant_id: draft.tenant_id.clone(),
            issued_at: now.clone(),
            chain: chain.to_owned(),
            seq,
            prev_hash,
            key_id: signer.key_id().to_owned(),
            details: draft.details.clone(),
        };
        let bytes = cert
            .signing_bytes()
            .map_err(|e| StepError::InvalidRequest(e.to_string()))?;
        let der = signer.sign(&bytes).await?;
        let signed = SignedCertificate {
            signature: signature_block(signer.key_id(), &der),
            certificate: cert,
        };
        let entry =
            LedgerEntry::seal(signed, now).map_err(|e| StepError::Internal(e.to_string()))?;
        let json = entry
            .to_json()
            .map_err(|e| StepError::Internal(e.to_string()))?;
        let leaf = leaf_of(&entry.certificate).map_err(|e| StepError::Internal(e.to_string()))?;
        let new = NewEntry {
            seq,
            entry_hash: &entry.entry_hash,
            json: &json,
            unique_request: draft.unique.then_some(draft.request_id.as_str()),
            leaf,
        };
        match ledger.append(chain, head.as_ref(), new).await {
            Ok(()) => {
                return Ok(Certified {
                    entry,
                    already_recorded: false,
                });
            }
            Err(StoreError::Conflict { .. }) => {
                tracing::debug!(
                    chain,
                    attempt,
                    "ledger head moved; retrying from the new head"
                );
                tokio::time::sleep(backoff(attempt.min(4))).await;
            }
            Err(StoreError::Duplicate(_)) => {
                let found = existing(ledger, chain, &draft.request_id)
                    .await?
                    .ok_or_else(|| {
                        StepError::LedgerCorrupt(format!(
                            "request {} is marked but its entry is missing",
                            draft.request_id
                        ))
                    })?;
                return Ok(Certified {
                    entry: found,
                    already_recorded: true,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StepError::LedgerConflict {
        chain: chain.to_owned(),
        expected: -1,
    })
}
