//! Lambda entry point of the provision step.
tenant_runtime::lambda_main!(provision::handler);
