//! Lambda entry point of the validate-request step.
tenant_runtime::lambda_main!(validate_request::handler);
