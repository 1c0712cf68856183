//! Lambda entry point of the delete-system step.
tenant_runtime::lambda_main!(delete_system::handler);
