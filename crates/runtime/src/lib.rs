//! Glue between `lambda_runtime` and the function handlers.
//!
//! Every handler is `async fn handler(input: serde_json::Value, deps: &Deps, budget: Budget)
//! -> Result<impl Serialize, StepError>`; [`lambda_main!`] turns one into a Lambda binary
//! whose `main.rs` is a single line. Dependencies are built once at init; a handler's
//! `StepError` becomes the runtime diagnostic whose `errorType` ASL `Retry`/`Catch` match.

pub use lambda_runtime;
pub use serde_json;
pub use stores::Deps;
pub use tokio;

use lifecycle::StepError;
use std::time::{Duration, Instant, SystemTime};

/// Time a handler may spend on work before it must return a continuation.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    deadline: Instant,
}

/// Kept back from the Lambda deadline to serialise the answer and return it.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(10);

impl Budget {
    /// A budget ending at `deadline`.
    pub fn until(deadline: Instant) -> Self {
        Self { deadline }
    }

    /// A budget of `d` from now.
    pub fn of(d: Duration) -> Self {
        Self {
            deadline: Instant::now() + d,
        }
    }

    /// The invocation's deadline less [`SAFETY_MARGIN`] (at least one second of work).
    pub fn from_lambda_deadline(deadline: SystemTime) -> Self {
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        Self::of(
            left.saturating_sub(SAFETY_MARGIN)
                .max(Duration::from_secs(1)),
        )
    }

    /// When work must stop.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// True once the deadline has passed.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

/// A handler error on its way to the runtime.
#[derive(Debug)]
pub struct StepFailure(pub StepError);

impl From<StepError> for StepFailure {
    fn from(e: StepError) -> Self {
        Self(e)
    }
}

impl From<StepFailure> for lambda_runtime::Diagnostic {
    fn from(f: StepFailure) -> Self {
        lambda_runtime::Diagnostic {
            error_type: f.0.error_type().to_owned(),
            error_message: f.0.to_string(),
        }
    }
}

/// Logs as JSON lines (what CloudWatch Logs Insights reads), level from `RUST_LOG`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Builds the dependencies once, reporting a configuration error as a cold-start failure.
pub async fn init_deps() -> Result<std::sync::Arc<Deps>, lambda_runtime::Error> {
    match Deps::from_env().await {
        Ok(d) => Ok(std::sync::Arc::new(d)),
        Err(e) => {
            tracing::error!(error_type = e.error_type(), error = %e, "cannot start");
            Err(Box::new(std::io::Error::other(e.to_string())))
        }
    }
}

/// The largest event a handler accepts (Step Functions passes at most 256 KiB of state).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Parses an event strictly: over [`MAX_EVENT_BYTES`] or with a key twice in one object
/// is `InvalidRequest` (serde_json would silently keep the last of two `tenant_id`s).
pub fn parse_event(raw: &str) -> Result<serde_json::Value, StepError> {
    if raw.len() > MAX_EVENT_BYTES {
        return Err(StepError::invalid(format!(
            "event is {} bytes; the limit is {MAX_EVENT_BYTES}",
            raw.len()
        )));
    }
    lifecycle::json::parse_strict(raw)
        .map_err(|e| StepError::invalid(format!("event is not acceptable JSON: {e}")))
}

/// Expands to a Lambda `main` that serves one handler.
#[macro_export]
macro_rules! lambda_main {
    ($handler:path) => {
        fn main() -> Result<(), $crate::lambda_runtime::Error> {
            $crate::tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(async {
                    $crate::init_tracing();
                    let deps = $crate::init_deps().await?;
                    $crate::lambda_runtime::run($crate::lambda_runtime::service_fn(
                        move |event: $crate::lambda_runtime::LambdaEvent<
                            ::std::boxed::Box<$crate::serde_json::value::RawValue>,
                        >| {
                            let deps = deps.clone();
                            async move {
                                let budget =
                                    $crate::Budget::from_lambda_deadline(event.context.deadline());
                                let input = $crate::parse_event(event.payload.get())
                                    .map_err($crate::StepFailure::from)?;
                                // Boxed: the handlers' futures are deep, and boxing keeps the
                                // runtime's future type shallow.
                                ::std::boxed::Box::pin($handler(input, &deps, budget))
                                    .await
                                    .map_err($crate::StepFailure::from)
                            }
                        },
                    ))
                    .await
                })
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_carries_the_stable_error_type() {
        let d: lambda_runtime::Diagnostic = StepFailure(StepError::invalid("bad")).into();
        assert_eq!(d.error_type, "InvalidRequest");
        assert!(d.error_message.contains("bad"));
    }

    #[test]
    fn events_with_a_key_twice_or_too_large_are_invalid() {
        let e = parse_event(r#"{"tenant_id":"a","tenant_id":"b"}"#).expect_err("dup");
        assert_eq!(e.error_type(), "InvalidRequest");
        assert!(e.to_string().contains("duplicate key"), "{e}");
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_EVENT_BYTES));
        assert_eq!(
            parse_event(&big).expect_err("big").error_type(),
            "InvalidRequest"
        );
        assert!(parse_event(r#"{"a":1}"#).is_ok());
    }

    #[test]
    fn budget_keeps_a_margin_and_a_floor() {
        let b = Budget::from_lambda_deadline(SystemTime::now() + Duration::from_secs(60));
        let left = b.deadline().saturating_duration_since(Instant::now());
        assert!(left <= Duration::from_secs(50) && left > Duration::from_secs(45));
        let b = Budget::from_lambda_deadline(SystemTime::now());
        assert!(b.deadline() > Instant::now());
    }
}
