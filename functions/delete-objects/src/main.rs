//! Lambda entry point of the delete-objects step.
tenant_runtime::lambda_main!(delete_objects::handler);
