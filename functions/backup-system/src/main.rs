//! Lambda entry point of the backup-system step.
tenant_runtime::lambda_main!(backup_system::handler);
