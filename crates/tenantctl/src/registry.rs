//! Maps Task resources to the function handlers, so the simulator runs the very code the
//! Lambda binaries run. `${ValidateRequestFunctionArn}` names the crate `validate-request`.

use async_trait::async_trait;
use lifecycle::StepError;
use serde::Serialize;
use serde_json::Value;
use sim::{TaskError, TaskInvoker};
use std::sync::Arc;
use std::time::Duration;
use stores::Deps;
use tenant_runtime::Budget;

/// Every function crate, by name.
pub const FUNCTIONS: &[&str] = &[
    "validate-request",
    "check-legal-hold",
    "delete-system",
    "delete-objects",
    "verify-erasure",
    "sign-certificate",
    "provision",
    "sync",
    "verify",
    "cutover",
    "check-health",
    "rollback",
    "finalize",
    "publish-checkpoint",
    "begin-backup",
    "backup-system",
    "finish-backup",
    "plan-restore",
    "restore-system",
    "finish-restore",
    "prune-backups",
    "list-tenants",
    "begin-clone",
    "clone-system",
    "select-subset",
    "scan-clone",
    "finish-clone",
];

/// The function a Task resource names: `${FooBarFunctionArn}` or a Lambda ARN ending in
/// `:function:foo-bar`.
pub fn function_for(resource: &str) -> Option<String> {
    if let Some(inner) = resource
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix("FunctionArn}"))
    {
        return Some(kebab(inner));
    }
    resource
        .rsplit_once(":function:")
        .map(|(_, f)| f.split(':').next().unwrap_or(f).to_owned())
}

/// `TenantBackup` -> `tenant-backup`.
fn kebab(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The file (in statemachines/, without `.asl.json`) a `startExecution` task's
/// `${FooBarStateMachineArn}` names: `foo-bar`.
pub fn machine_file(arn: &str) -> Option<String> {
    arn.strip_prefix("${")
        .and_then(|r| r.strip_suffix("StateMachineArn}"))
        .filter(|s| !s.is_empty())
        .map(kebab)
}

/// `foo-bar` -> `${FooBarStateMachineArn}`: how the shipped machines name each other.
pub fn machine_arn(file: &str) -> String {
    let camel: String = file
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("${{{camel}StateMachineArn}}")
}

/// Runs Task states in-process against one set of dependencies.
#[derive(Debug, Clone)]
pub struct LocalFunctions {
    deps: Arc<Deps>,
}

impl LocalFunctions {
    /// Handlers sharing `deps`.
    pub fn new(deps: Arc<Deps>) -> Self {
        Self { deps }
    }
}

fn done<T: Serialize>(r: Result<T, StepError>) -> Result<Value, TaskError> {
    match r {
        Ok(v) => serde_json::to_value(v).map_err(|e| TaskError {
            error: "InternalError".into(),
            cause: e.to_string(),
        }),
        Err(e) => Err(TaskError {
            error: e.error_type().to_owned(),
            cause: e.to_string(),
        }),
    }
}

/// Calls the handler of `function` once.
pub async fn call(
    function: &str,
    input: Value,
    deps: &Deps,
    budget: Budget,
) -> Result<Value, TaskError> {
    match function {
        "validate-request" => done(validate_request::handler(input, deps, budget).await),
        "check-legal-hold" => done(check_legal_hold::handler(input, deps, budget).await),
        "publish-checkpoint" => done(publish_checkpoint::handler(input, deps, budget).await),
        "delete-system" => done(delete_system::handler(input, deps, budget).await),
        "delete-objects" => done(delete_objects::handler(input, deps, budget).await),
        "verify-erasure" => done(verify_erasure::handler(input, deps, budget).await),
        "sign-certificate" => done(sign_certificate::handler(input, deps, budget).await),
        "provision" => done(provision::handler(input, deps, budget).await),
        "sync" => done(sync::handler(input, deps, budget).await),
        "verify" => done(verify::handler(input, deps, budget).await),
        "cutover" => done(cutover::handler(input, deps, budget).await),
        "check-health" => done(check_health::handler(input, deps, budget).await),
        "rollback" => done(rollback::handler(input, deps, budget).await),
        "finalize" => done(finalize::handler(input, deps, budget).await),
        "begin-backup" => done(begin_backup::handler(input, deps, budget).await),
        "backup-system" => done(backup_system::handler(input, deps, budget).await),
        "finish-backup" => done(finish_backup::handler(input, deps, budget).await),
        "plan-restore" => done(plan_restore::handler(input, deps, budget).await),
        "restore-system" => done(restore_system::handler(input, deps, budget).await),
        "finish-restore" => done(finish_restore::handler(input, deps, budget).await),
        "prune-backups" => done(prune_backups::handler(input, deps, budget).await),
        "list-tenants" => done(list_tenants::handler(input, deps, budget).await),
        "begin-clone" => done(begin_clone::handler(input, deps, budget).await),
        "clone-system" => done(clone_system::handler(input, deps, budget).await),
        "select-subset" => done(select_subset::handler(input, deps, budget).await),
        "scan-clone" => done(scan_clone::handler(input, deps, budget).await),
        "finish-clone" => done(finish_clone::handler(input, deps, budget).await),

        other => Err(TaskError {
            error: "States.Runtime".into(),
            cause: format!(
                "no function {other} in this bundle (known: {})",
                FUNCTIONS.join(", ")
            ),
        }),
    }
}

#[async_trait]
impl TaskInvoker for LocalFunctions {
    async fn invoke(
        &self,
        resource: &str,
        input: Value,
        budget: Duration,
    ) -> Result<Value, TaskError> {
        let f = function_for(resource).ok_or_else(|| TaskError {
            error: "States.Runtime".into(),
            cause: format!("resource {resource} names no function"),
        })?;
        call(&f, input, &self.deps, Budget::of(budget)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_name_crates() {
        assert_eq!(
            function_for("${ValidateRequestFunctionArn}").as_deref(),
            Some("validate-request")
        );
        assert_eq!(
            function_for("${SignCertificateFunctionArn}").as_deref(),
            Some("sign-certificate")
        );
        assert_eq!(
            function_for("arn:aws:lambda:eu-west-1:1:function:delete-system:live").as_deref(),
            Some("delete-system")
        );
        assert_eq!(function_for("nope"), None);
    }
}
