use lifecycle::StepError;
use std::fmt;
use std::sync::Arc;
use thiserror::Error;

/// The underlying error a [`StoreError`] came from (an SDK, driver or I/O error), shared
/// so the error stays cheap to clone.
#[derive(Clone)]
pub struct Source(pub Arc<dyn std::error::Error + Send + Sync>);

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for Source {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

// Errors compare by what they say: two sources with the same message are the same answer.
impl PartialEq for Source {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}
impl Eq for Source {}

/// What a conditional write found changed under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contended {
    /// A ledger chain's head moved past the one the entry was sealed on.
    LedgerHead {
        /// The chain.
        chain: String,
        /// The seq the writer expected at the head (`None`: an empty chain).
        expected: Option<u64>,
    },
    /// A tenant's routing record is no longer at the epoch the writer read.
    RoutingEpoch {
        /// The tenant.
        tenant: String,
        /// The epoch the writer expected (`None`: no record).
        expected: Option<u64>,
    },
    /// A tenant's migration record is no longer at the version the writer read.
    MigrationVersion {
        /// The tenant.
        tenant: String,
        /// The version the writer expected (`None`: no record).
        expected: Option<u64>,
    },
    /// A checkpoint of another text is already published for this chain and size.
    Checkpoint {
        /// The chain.
        chain: String,
        /// The tree size.
        size: u64,
    },
}

impl fmt::Display for Contended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: &Option<u64>| v.map_or_else(|| "none".to_owned(), |n| n.to_string());
        match self {
            Self::LedgerHead { chain, expected } => {
                write!(f, "ledger chain {chain} head (expected {})", opt(expected))
            }
            Self::RoutingEpoch { tenant, expected } => {
                write!(f, "routing of {tenant} (expected epoch {})", opt(expected))
            }
            Self::MigrationVersion { tenant, expected } => {
                write!(
                    f,
                    "migration of {tenant} (expected version {})",
                    opt(expected)
                )
            }
            Self::Checkpoint { chain, size } => write!(f, "checkpoint of {chain} at size {size}"),
        }
    }
}

/// A backend's failure, in terms the domain understands.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The service asked us to slow down and retries ran out.
    #[error("{0}: throttled")]
    Throttled(String),
    /// The service failed or could not be reached.
    #[error("{0}")]
    Unavailable(String),
    /// A conditional write lost: what it expected has changed.
    #[error("conflict on {what}: {detail}")]
    Conflict {
        /// What changed.
        what: Contended,
        /// What the backend saw.
        detail: String,
        /// The backend's own error (a failed condition), when there is one.
        #[source]
        source: Option<Source>,
    },
    /// The request id is already recorded on the chain.
    #[error("request {0} is already recorded")]
    Duplicate(String),
    /// Nothing matched.
    #[error("not found: {0}")]
    NotFound(String),
    /// Stored data is unreadable.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// The backend is misconfigured (missing table, bucket, key...).
    #[error("{0}")]
    Config(String),
    /// The tenant's key-encryption key is destroyed (its erasure shredded it).
    #[error("the key of tenant {tenant} is destroyed ({detail})")]
    KeyDestroyed {
        /// The tenant.
        tenant: String,
        /// When and where.
        detail: String,
    },
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Throttled(m) => StepError::Throttled(m),
            StoreError::Unavailable(m) => StepError::StoreUnavailable(m),
            StoreError::Conflict { what, detail, .. } => match what {
                Contended::LedgerHead { chain, expected } => StepError::LedgerConflict {
                    chain,
                    expected: expected.and_then(|n| i64::try_from(n).ok()).unwrap_or(-1),
                },
                Contended::Checkpoint { chain, .. } => StepError::LedgerConflict {
                    chain,
                    expected: -1,
                },
                what @ (Contended::RoutingEpoch { .. } | Contended::MigrationVersion { .. }) => {
                    StepError::MigrationConflict(format!("{what}: {detail}"))
                }
            },
            StoreError::Duplicate(m) => {
                StepError::Internal(format!("request {m} is already recorded"))
            }
            StoreError::NotFound(m) => StepError::invalid(format!("not found: {m}")),
            StoreError::Corrupt(m) => StepError::LedgerCorrupt(m),
            StoreError::Config(m) => StepError::Configuration(m),
            StoreError::KeyDestroyed { tenant, detail } => StepError::TenantErased {
                tenant_id: tenant,
                evidence: format!("its backup key was destroyed: {detail}"),
            },
        }
    }
}

impl StoreError {
    /// A lost conditional write on `what`, with what the backend saw.
    pub fn conflict(what: Contended, detail: impl Into<String>) -> Self {
        Self::Conflict {
            what,
            detail: detail.into(),
            source: None,
        }
    }

    /// A lost conditional write that keeps the backend's own error as its source.
    pub fn conflict_from(
        what: Contended,
        detail: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Conflict {
            what,
            detail: detail.into(),
            source: Some(Source(Arc::new(source))),
        }
    }

    /// True for a lost conditional write.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}
