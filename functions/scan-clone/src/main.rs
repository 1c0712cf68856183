//! Lambda entry point of the scan-clone step.
tenant_runtime::lambda_main!(scan_clone::handler);
