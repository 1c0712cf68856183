//! What every AWS product shares: loading the SDK configuration, the region a location
//! is named after, and one classification of SDK errors into [`StoreError`]s.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ports::StoreError;

/// Loads AWS configuration from the environment.
pub async fn load() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The AWS region a location is named after (`eu-west-1`, `us-gov-west-1`), if it is.
pub fn region_of(location: &str) -> Option<aws_config::Region> {
    let parts: Vec<&str> = location.split('-').collect();
    let looks = (3..=4).contains(&parts.len())
        && parts[0].len() == 2
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok();
    looks.then(|| aws_config::Region::new(location.to_owned()))
}

/// Error codes that mean "slow down" across S3, DynamoDB, KMS, CloudWatch Logs and S3 Vectors.
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
            | "ServiceUnavailableException"
            | "InternalError"
            | "InternalServerException"
            | "RequestTimeoutException"
            | "RequestTimeout"
    )
}

/// Turns an SDK error into a [`StoreError`], classifying throttling by code and status.
pub(crate) fn sdk_error<E>(op: &str, e: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_smithy_types::error::display::DisplayErrorContext;
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
            | "NotFound"
            | "ValidationException"
            | "InvalidParameterException"
            | "InvalidParameterValueException"
            | "LimitExceededException"
            | "ExpiredTokenException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException",
        ) => StoreError::Config(msg),
        _ => StoreError::Unavailable(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::region_of;

    #[test]
    fn a_location_named_after_a_region_is_reached_there() {
        for r in ["eu-west-1", "us-east-1", "ap-southeast-2", "us-gov-west-1"] {
            assert_eq!(region_of(r).map(|x| x.to_string()), Some(r.to_owned()));
        }
        for l in [
            "green",
            "v2",
            "eu-west",
            "blue-green-1x",
            "EU-WEST-1",
            "e-west-1",
            "",
        ] {
            assert!(region_of(l).is_none(), "{l}");
        }
    }
}
