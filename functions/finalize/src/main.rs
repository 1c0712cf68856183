//! Lambda entry point of the finalize step.
tenant_runtime::lambda_main!(finalize::handler);
