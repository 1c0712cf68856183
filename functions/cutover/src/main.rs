//! Lambda entry point of the cutover step.
tenant_runtime::lambda_main!(cutover::handler);
