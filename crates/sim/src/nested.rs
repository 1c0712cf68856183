//! `arn:aws:states:::states:startExecution.sync` and `.sync:2`: a Task that starts another
//! state machine (registered with [`crate::Simulator::with_machine`]) as an execution of its
//! own, with its own history, and waits for it. As on AWS, `.sync:2` returns the child's
//! input and output as JSON, `.sync` as JSON text; a failed child fails the task with
//! `States.TaskFailed` and the child's description (its `Error` and `Cause` inside) as
//! the cause.

use crate::asl::State;
use crate::exec::{Failure, Shared, run_execution, text};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const SYNC: &str = "arn:aws:states:::states:startExecution.sync";
const SYNC2: &str = "arn:aws:states:::states:startExecution.sync:2";

/// How a resource starts an execution: `Some(true)` for `.sync:2` (JSON), `Some(false)`
/// for `.sync` (text), `None` when it is no such integration.
pub(crate) fn mode(resource: &str) -> Option<bool> {
    match resource {
        SYNC2 => Some(true),
        SYNC => Some(false),
        _ => None,
    }
}

/// The name of the machine an ARN names: `${FooStateMachineArn}` gives `FooStateMachine`,
/// `arn:aws:states:r:a:stateMachine:Foo` gives `Foo`.
fn machine_name(arn: &str) -> &str {
    if let Some(inner) = arn.strip_prefix("${").and_then(|a| a.strip_suffix('}')) {
        return inner.strip_suffix("Arn").unwrap_or(inner);
    }
    arn.rsplit(':').next().unwrap_or(arn)
}

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Runs the task: starts the child and waits for it (at most `timeout` seconds).
pub(crate) async fn start(
    shared: &Arc<Shared>,
    state: &State,
    resource: &str,
    params: Value,
    timeout: Option<u64>,
) -> Result<Value, Failure> {
    let json_io = mode(resource).unwrap_or(true);
    let fail = |m: String| Failure::new("States.Runtime", format!("{}: {m}", state.name));
    let arn = params
        .get("StateMachineArn")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("startExecution needs a StateMachineArn string".into()))?
        .to_owned();
    let input = match params.get("Input") {
        None => json!({}),
        // AWS takes the input as JSON text or as JSON.
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
            Failure::new(
                "StepFunctions.InvalidExecutionInputException",
                format!("{}: Input is not JSON text: {e}", state.name),
            )
        })?,
        Some(v) => v.clone(),
    };
    let name = match params.get("Name") {
        None => crate::template::uuid(),
        Some(Value::String(n)) if !n.is_empty() && n.len() <= 80 => n.clone(),
        Some(v) => return Err(fail(format!("Name must be 1 to 80 characters, got {v}"))),
    };
    shared.emit(
        "TaskScheduled",
        json!({"resourceType": "states", "resource": resource.trim_start_matches("arn:aws:states:::states:"),
               "parameters": text(&params)}),
    )?;
    let Some(machine) = shared.machines.get(&arn).cloned() else {
        let f = Failure::new(
            "StepFunctions.StateMachineDoesNotExistException",
            format!("State Machine Does Not Exist: '{arn}'"),
        );
        shared.emit("TaskFailed", json!({"error": f.error, "cause": f.cause}))?;
        return Err(f);
    };
    shared.emit("TaskStarted", json!({}))?;
    let exec_arn = format!(
        "arn:aws:states:local:000000000000:execution:{}:{name}",
        machine_name(&arn)
    );
    let started = shared.now();
    let child = shared.child(json!({"Id": exec_arn, "Name": name, "Input": input,
                         "StartTime": started.format(&Rfc3339).unwrap_or_default()}));
    let run = run_execution(child.clone(), machine, input.clone());
    let result = match timeout {
        Some(t) => match tokio::time::timeout(Duration::from_secs(t), run).await {
            Ok(r) => r,
            Err(_) => {
                shared.emit("TaskTimedOut", json!({"error": "States.Timeout"}))?;
                return Err(Failure::new(
                    "States.Timeout",
                    format!("{} waited longer than {t}s for {exec_arn}", state.name),
                ));
            }
        },
        None => run.await,
    };
    // The child's clock moved on with its Waits; so does the parent's.
    let child_offset = *child.offset.lock().unwrap_or_else(|p| p.into_inner());
    {
        let mut off = shared.offset.lock().unwrap_or_else(|p| p.into_inner());
        *off = (*off).max(child_offset);
    }
    let io = |v: &Value| if json_io { v.clone() } else { json!(text(v)) };
    let mut out = json!({
        "ExecutionArn": exec_arn,
        "StateMachineArn": arn,
        "Name": name,
        "Input": io(&input),
        "InputDetails": {"Included": true},
        "StartDate": millis(started),
        "StopDate": millis(shared.now()),
    });
    match result {
        Ok(v) => {
            out["Status"] = json!("SUCCEEDED");
            out["Output"] = io(&v);
            out["OutputDetails"] = json!({"Included": true});
            shared.emit("TaskSucceeded", json!({"output": text(&out)}))?;
            Ok(out)
        }
        Err(f) => {
            out["Status"] = json!("FAILED");
            out["Error"] = json!(f.error);
            out["Cause"] = json!(f.cause);
            let failure = Failure::new("States.TaskFailed", text(&out));
            shared.emit(
                "TaskFailed",
                json!({"error": failure.error, "cause": failure.cause}),
            )?;
            Err(failure)
        }
    }
}
