//! Lambda entry point of the check-legal-hold step.
tenant_runtime::lambda_main!(check_legal_hold::handler);
