//! Lambda entry point of the plan-restore step.
tenant_runtime::lambda_main!(plan_restore::handler);
