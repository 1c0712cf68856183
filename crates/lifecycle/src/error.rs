//! The error contract between handlers and Step Functions: each variant has a stable
//! `error_type` that ASL `Retry`/`Catch` blocks name.

use thiserror::Error;

/// A handler's failure; `error_type()` is what Step Functions sees as the error name.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepError {
    /// The input is malformed; nothing was changed. Not retryable.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// An active legal hold forbids erasing this tenant.
    #[error("tenant {tenant_id} is under {} active legal hold(s): {}", holds.len(), holds.join(", "))]
    LegalHoldActive {
        /// The tenant that is held.
        tenant_id: String,
        /// Identifiers of the active holds (never their free-text reasons).
        holds: Vec<String>,
    },
    /// A verification scan still found records of the tenant.
    #[error("residual data found: {records} record(s) of the tenant remain in {system}")]
    ResidualDataFound {
        /// The system that still holds data.
        system: String,
        /// How many records were found.
        records: u64,
    },
    /// A certificate was requested before every system was verified.
    #[error("verification incomplete: {0}")]
    VerificationIncomplete(String),
    /// The ledger head moved between read and append; retry from the new head.
    #[error("ledger conflict on chain {chain}: head moved past seq {expected}")]
    LedgerConflict {
        /// The chain appended to.
        chain: String,
        /// The head the writer expected (`-1` for an empty chain).
        expected: i64,
    },
    /// A stored ledger entry or certificate failed verification.
    #[error("ledger corrupt: {0}")]
    LedgerCorrupt(String),
    /// A backing service asked us to slow down; retry with backoff.
    #[error("throttled: {0}")]
    Throttled(String),
    /// A backing service failed or could not be reached; retryable.
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    /// The deployment's configuration (catalog, environment) is wrong.
    #[error("configuration error: {0}")]
    Configuration(String),
    /// A bug or an invariant broken inside the handler.
    #[error("internal error: {0}")]
    Internal(String),
    /// A migration's health gate closed (error rate above 1 % or p95 above twice the
    /// baseline); the state machine rolls back.
    #[error("health gate breached: {0}")]
    HealthGateBreached(String),
    /// Source and target differ; a FULL verification repairs the differing records.
    #[error("checksum mismatch in {system}: {detail}")]
    ChecksumMismatch {
        /// The system compared.
        system: String,
        /// What differed (counts and fingerprints, never record contents).
        detail: String,
    },
    /// Catch-up could not get the target's lag under the limit before the deadline.
    #[error("catch-up timed out with {lag} change(s) still to apply")]
    CatchUpTimeout {
        /// Changes not yet applied when the deadline passed.
        lag: u64,
    },
    /// The migration or routing record changed under us (another step or operator);
    /// retry reads the new state.
    #[error("migration conflict: {0}")]
    MigrationConflict(String),
    /// The request id was already claimed by a request that asks for something else
    /// (another tenant, other systems, another catalog).
    #[error(
        "request {request_id} was already made with different content (digest {claimed}); use a new request id"
    )]
    RequestConflict {
        /// The request id.
        request_id: String,
        /// The digest the id is bound to.
        claimed: String,
    },
    /// The tenant's erasure is certified: its backups must never bring data back.
    #[error("tenant {tenant_id} was erased ({evidence}); its data is never restored")]
    TenantErased {
        /// The tenant.
        tenant_id: String,
        /// What shows it: the erasure certificate, or the destroyed key.
        evidence: String,
    },
    /// A backup's stored bytes do not match its manifest, or do not decrypt.
    #[error("backup {backup_id} is corrupt: {detail}")]
    BackupCorrupt {
        /// The backup.
        backup_id: String,
        /// What failed to check.
        detail: String,
    },
    /// Strict mode: a record holds a field that looks personal and no clone rule names.
    #[error(
        "system {system}: field {field} looks personal and no [clone] rule names it; add a rule (keep, if it is not personal)"
    )]
    UnruledPersonalData {
        /// The system.
        system: String,
        /// The field's pointer (array indexes as `*`), never its value.
        field: String,
    },
    /// A clone's bookkeeping (plan, progress, tags) does not open under the clone key:
    /// altered or damaged; nothing is written or certified on it.
    #[error("clone {clone_id}: its stored state is corrupt: {detail}")]
    CloneStateCorrupt {
        /// The clone.
        clone_id: String,
        /// What failed to check.
        detail: String,
    },
    /// A clone's scan found original personal data in the target; the clone is removed.
    #[error(
        "the scan of clone {clone_id} found {hits} original value(s) or unmasked address(es) in the target; the clone is removed"
    )]
    PersonalDataFound {
        /// The clone.
        clone_id: String,
        /// How many hits (never what they were).
        hits: u64,
    },
}

/// Every error type a handler can raise, as named in ASL `ErrorEquals`.
pub const ERROR_TYPES: &[&str] = &[
    "InvalidRequest",
    "LegalHoldActive",
    "ResidualDataFound",
    "VerificationIncomplete",
    "LedgerConflict",
    "LedgerCorrupt",
    "Throttled",
    "StoreUnavailable",
    "ConfigurationError",
    "InternalError",
    "HealthGateBreached",
    "ChecksumMismatch",
    "CatchUpTimeout",
    "MigrationConflict",
    "RequestConflict",
    "TenantErased",
    "BackupCorrupt",
    "UnruledPersonalData",
    "CloneStateCorrupt",
    "PersonalDataFound",
];

/// Errors a state machine itself ends with (its Fail states), after a Catch has handled
/// the handler's error: the execution's outcome, never raised by a handler.
pub const MACHINE_OUTCOMES: &[&str] = &[
    "MigrationNotStarted",
    "MigrationRolledBack",
    "ErasureIncomplete",
    "CloneRemoved",
    "TierRunIncomplete",
    "InPlaceCutOverFailed",
];

impl StepError {
    /// The stable name Step Functions matches in `ErrorEquals`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "InvalidRequest",
            Self::LegalHoldActive { .. } => "LegalHoldActive",
            Self::ResidualDataFound { .. } => "ResidualDataFound",
            Self::VerificationIncomplete(_) => "VerificationIncomplete",
            Self::LedgerConflict { .. } => "LedgerConflict",
            Self::LedgerCorrupt(_) => "LedgerCorrupt",
            Self::Throttled(_) => "Throttled",
            Self::StoreUnavailable(_) => "StoreUnavailable",
            Self::Configuration(_) => "ConfigurationError",
            Self::Internal(_) => "InternalError",
            Self::HealthGateBreached(_) => "HealthGateBreached",
            Self::ChecksumMismatch { .. } => "ChecksumMismatch",
            Self::CatchUpTimeout { .. } => "CatchUpTimeout",
            Self::MigrationConflict(_) => "MigrationConflict",
            Self::RequestConflict { .. } => "RequestConflict",
            Self::TenantErased { .. } => "TenantErased",
            Self::BackupCorrupt { .. } => "BackupCorrupt",
            Self::UnruledPersonalData { .. } => "UnruledPersonalData",
            Self::CloneStateCorrupt { .. } => "CloneStateCorrupt",
            Self::PersonalDataFound { .. } => "PersonalDataFound",
        }
    }

    /// Whether a retry of the same input may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled(_)
                | Self::StoreUnavailable(_)
                | Self::LedgerConflict { .. }
                | Self::MigrationConflict(_)
        )
    }

    /// Shorthand for an [`StepError::InvalidRequest`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidRequest(msg.into())
    }
}

/// Deserialises a handler's input, turning any mismatch into an actionable `InvalidRequest`.
pub fn from_input<T: serde::de::DeserializeOwned>(
    input: serde_json::Value,
    step: &str,
) -> Result<T, StepError> {
    serde_json::from_value(input)
        .map_err(|e| StepError::invalid(format!("{step} input is malformed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_listed_type() {
        let all = [
            StepError::invalid("x"),
            StepError::LegalHoldActive {
                tenant_id: "t".into(),
                holds: vec!["h".into()],
            },
            StepError::ResidualDataFound {
                system: "s3".into(),
                records: 1,
            },
            StepError::VerificationIncomplete("x".into()),
            StepError::LedgerConflict {
                chain: "c".into(),
                expected: 1,
            },
            StepError::LedgerCorrupt("x".into()),
            StepError::Throttled("x".into()),
            StepError::StoreUnavailable("x".into()),
            StepError::Configuration("x".into()),
            StepError::Internal("x".into()),
            StepError::HealthGateBreached("x".into()),
            StepError::ChecksumMismatch {
                system: "s".into(),
                detail: "d".into(),
            },
            StepError::CatchUpTimeout { lag: 1 },
            StepError::MigrationConflict("x".into()),
            StepError::RequestConflict {
                request_id: "r".into(),
                claimed: "d".into(),
            },
            StepError::TenantErased {
                tenant_id: "t".into(),
                evidence: "e".into(),
            },
            StepError::BackupCorrupt {
                backup_id: "b".into(),
                detail: "d".into(),
            },
            StepError::UnruledPersonalData {
                system: "s".into(),
                field: "/f".into(),
            },
            StepError::CloneStateCorrupt {
                clone_id: "c".into(),
                detail: "d".into(),
            },
            StepError::PersonalDataFound {
                clone_id: "c".into(),
                hits: 1,
            },
        ];
        for e in &all {
            assert!(
                ERROR_TYPES.contains(&e.error_type()),
                "{} missing",
                e.error_type()
            );
        }
        assert_eq!(all.len(), ERROR_TYPES.len());
    }

    #[test]
    fn only_transient_errors_are_retryable() {
        assert!(StepError::Throttled("x".into()).is_retryable());
        assert!(!StepError::invalid("x").is_retryable());
        assert!(
            !StepError::LegalHoldActive {
                tenant_id: "t".into(),
                holds: vec![]
            }
            .is_retryable()
        );
    }
}
