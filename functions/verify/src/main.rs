//! Lambda entry point of the verify step.
tenant_runtime::lambda_main!(verify::handler);
