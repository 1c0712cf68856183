//! Lambda entry point of the finish-clone step.
tenant_runtime::lambda_main!(finish_clone::handler);
