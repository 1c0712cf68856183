//! Lambda entry point of the sign-certificate step.
tenant_runtime::lambda_main!(sign_certificate::handler);
