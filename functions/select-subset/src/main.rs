//! Lambda entry point of the select-subset step.
tenant_runtime::lambda_main!(select_subset::handler);
