//! Lambda entry point of the begin-backup step.
tenant_runtime::lambda_main!(begin_backup::handler);
