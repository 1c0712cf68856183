//! Lambda entry point of the finish-restore step.
tenant_runtime::lambda_main!(finish_restore::handler);
