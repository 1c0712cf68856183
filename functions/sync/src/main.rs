//! Lambda entry point of the sync step.
tenant_runtime::lambda_main!(sync::handler);
