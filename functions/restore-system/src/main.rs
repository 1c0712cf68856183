//! Lambda entry point of the restore-system step.
tenant_runtime::lambda_main!(restore_system::handler);
