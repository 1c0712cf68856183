use lifecycle::StepError;
use thiserror::Error;

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
    /// A precondition failed: the ledger head moved.
    #[error("conflict: {0}")]
    Conflict(String),
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
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Throttled(m) => StepError::Throttled(m),
            StoreError::Unavailable(m) => StepError::StoreUnavailable(m),
            StoreError::Conflict(m) => StepError::LedgerConflict {
                chain: m,
                expected: -1,
            },
            StoreError::Duplicate(m) => {
                StepError::Internal(format!("request {m} is already recorded"))
            }
            StoreError::NotFound(m) => StepError::invalid(format!("not found: {m}")),
            StoreError::Corrupt(m) => StepError::LedgerCorrupt(m),
            StoreError::Config(m) => StepError::Configuration(m),
        }
    }
}

/// Error codes that mean "slow down" across S3, DynamoDB and KMS.
pub(crate) fn is_throttle_code(code: &str) -> bool {
    matches!(
        code,
        "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "ServiceUnavailable"
            | "InternalError"
            | "RequestTimeout"
    )
}

/// Turns an SDK error into a [`StoreError`], classifying throttling by code and status.
pub(crate) fn sdk_error<E>(
    op: &str,
    e: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StoreError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata as _};
    let code = e.code().map(str::to_owned);
    let status = e.raw_response().map(|r| r.status().as_u16());
    let msg = format!("{op}: {}", DisplayErrorContext(&e));
    match code.as_deref() {
        Some(c) if is_throttle_code(c) => StoreError::Throttled(msg),
        _ if matches!(status, Some(429 | 503)) => StoreError::Throttled(msg),
        Some(
            "NoSuchBucket"
            | "ResourceNotFoundException"
            | "NotFoundException"
            | "AccessDenied"
            | "AccessDeniedException"
            | "NotFound",
        ) => StoreError::Config(msg),
        _ => StoreError::Unavailable(msg),
    }
}
