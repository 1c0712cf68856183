//! Lambda entry point of the clone-system step.
tenant_runtime::lambda_main!(clone_system::handler);
