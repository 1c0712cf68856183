//! Lambda entry point of the begin-clone step.
tenant_runtime::lambda_main!(begin_clone::handler);
