//! Lambda entry point of the finish-backup step.
tenant_runtime::lambda_main!(finish_backup::handler);
