//! Lambda entry point of the publish-checkpoint step.
tenant_runtime::lambda_main!(publish_checkpoint::handler);
