//! Lambda entry point of the verify-erasure step.
tenant_runtime::lambda_main!(verify_erasure::handler);
