//! Lambda entry point of the rollback step.
tenant_runtime::lambda_main!(rollback::handler);
