//! Lambda entry point of the list-tenants step.
tenant_runtime::lambda_main!(list_tenants::handler);
