//! Starting erasures and migrations on AWS Step Functions.

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Starts an execution of the erasure state machine named after the request id, so a
/// request submitted twice cannot run twice at once. Returns the execution ARN.
pub async fn start_erasure(
    cfg: &aws_config::SdkConfig,
    state_machine_arn: &str,
    request: &Value,
) -> Result<String> {
    let id = request
        .get("request_id")
        .and_then(Value::as_str)
        .context("the request has no request_id (it becomes the execution name)")?;
    lifecycle::RequestId::parse(id)?;
    let sfn = aws_sdk_sfn::Client::new(cfg);
    let out = sfn
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .name(id)
        .input(request.to_string())
        .send()
        .await;
    match out {
        Ok(o) => Ok(o.execution_arn().to_owned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_execution_already_exists()) =>
        {
            bail!(
                "an execution named {id} already exists with other input: this request id was already submitted"
            )
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_state_machine_does_not_exist()) =>
        {
            bail!(
                "no state machine {state_machine_arn}: check --state-machine-arn (the stack output GdprErasureStateMachineArn)"
            )
        }
        Err(e) => Err(anyhow::anyhow!(
            aws_sdk_sfn::error::DisplayErrorContext(e).to_string()
        ))
        .context("StartExecution failed"),
    }
}

/// Starts an execution of the migration state machine, named after the tenant and a
/// timestamp. Returns the execution ARN.
pub async fn start_migration(
    cfg: &aws_config::SdkConfig,
    state_machine_arn: &str,
    request: &Value,
) -> Result<String> {
    let tenant = request
        .get("tenant_id")
        .and_then(Value::as_str)
        .context("the request has no tenant_id")?;
    lifecycle::TenantId::parse(tenant)?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name: String = format!("migrate-{tenant}-{secs}")
        .chars()
        .take(80)
        .collect();
    start(cfg, state_machine_arn, &name, request).await
}

/// Starts an execution named `name` of any state machine with `input`. Returns the
/// execution ARN.
pub async fn start(
    cfg: &aws_config::SdkConfig,
    state_machine_arn: &str,
    name: &str,
    input: &Value,
) -> Result<String> {
    aws_sdk_sfn::Client::new(cfg)
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .name(name)
        .input(input.to_string())
        .send()
        .await
        .map(|o| o.execution_arn().to_owned())
        .map_err(|e| anyhow::anyhow!(aws_sdk_sfn::error::DisplayErrorContext(e).to_string()))
        .with_context(|| format!("StartExecution of {state_machine_arn} failed"))
}
