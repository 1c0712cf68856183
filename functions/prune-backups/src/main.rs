//! Lambda entry point of the prune-backups step.
tenant_runtime::lambda_main!(prune_backups::handler);
