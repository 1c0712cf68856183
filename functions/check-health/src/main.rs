//! Lambda entry point of the check-health step.
tenant_runtime::lambda_main!(check_health::handler);
