use crate::{Machine, Simulator, Status, TaskError, TaskInvoker};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A fake invoker: each resource name is a behaviour.
#[derive(Default)]
pub(crate) struct Fake {
    flaky: AtomicU32,
    running: AtomicU32,
    /// Most calls of `${ConcFunctionArn}` running at once.
    pub(crate) peak: AtomicU32,
}

#[async_trait]
impl TaskInvoker for Fake {
    async fn invoke(
        &self,
        resource: &str,
        input: Value,
        _budget: Duration,
    ) -> Result<Value, TaskError> {
        match resource {
            "${EchoFunctionArn}" => Ok(input),
            "${IncFunctionArn}" => Ok(json!({"n": input["n"].as_i64().unwrap_or(0) + 1})),
            "${FlakyFunctionArn}" => {
                if self.flaky.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(TaskError {
                        error: "Throttled".into(),
                        cause: "slow down".into(),
                    })
                } else {
                    Ok(json!("ok"))
                }
            }
            "${SlowFunctionArn}" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(json!(null))
            }
            "${BigFunctionArn}" => Ok(json!("x".repeat(300 * 1024))),
            "${ConcFunctionArn}" => {
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.running.fetch_sub(1, Ordering::SeqCst);
                Ok(input)
            }
            "${FailOddFunctionArn}" => match input["n"].as_i64() {
                Some(n) if n % 2 == 1 => Err(TaskError {
                    error: "OddNumber".into(),
                    cause: format!("{n} is odd"),
                }),
                _ => Ok(input),
            },
            _ => Err(TaskError {
                error: "Boom".into(),
                cause: format!("{resource} exploded"),
            }),
        }
    }
}

/// Loads `def` and runs it on the fake invoker.
pub(crate) async fn run(def: Value, input: Value) -> crate::Execution {
    let m = Machine::load(&def).expect("loads");
    Simulator::new(Arc::new(Fake::default()))
        .run(&m, "t", input)
        .await
}

#[tokio::test]
async fn data_flow_paths_and_result_path() {
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "${EchoFunctionArn}", "InputPath": "$.in",
              "Parameters": {"v.$": "$.x", "name.$": "$$.Execution.Name", "fixed": 1},
              "ResultSelector": {"got.$": "$.v"}, "ResultPath": "$.res", "Next": "P"},
        "P": {"Type": "Pass", "Result": {"k": "v"}, "ResultPath": "$.pass", "OutputPath": "$", "Next": "Drop"},
        "Drop": {"Type": "Pass", "ResultPath": null, "Parameters": {"ignored": true}, "End": true}}});
    let e = run(def, json!({"in": {"x": 7}, "keep": true})).await;
    assert_eq!(e.status, Status::Succeeded, "{:?}", e.cause);
    assert_eq!(
        e.output,
        Some(json!({"in": {"x": 7}, "keep": true, "res": {"got": 7}, "pass": {"k": "v"}}))
    );
    assert_eq!(e.states_entered(), ["T", "P", "Drop"]);
}

#[tokio::test]
async fn retry_backs_off_on_the_virtual_clock_then_succeeds() {
    let def = json!({"StartAt": "F", "States": {"F": {"Type": "Task", "Resource": "${FlakyFunctionArn}",
        "Retry": [{"ErrorEquals": ["Throttled"], "IntervalSeconds": 600, "MaxAttempts": 3, "BackoffRate": 2}], "End": true}}});
    let started = std::time::Instant::now();
    let e = run(def, json!({})).await;
    assert_eq!(e.status, Status::Succeeded);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "retries must not sleep for real"
    );
    let fails = e
        .history
        .iter()
        .filter(|h| h.kind == "LambdaFunctionFailed")
        .count();
    assert_eq!(fails, 2);
    let first = time::OffsetDateTime::parse(
        &e.history[0].timestamp,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("ts");
    let last = time::OffsetDateTime::parse(
        &e.history.last().expect("h").timestamp,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("ts");
    assert!(
        (last - first).whole_seconds() >= 1800,
        "600 s + 1200 s of virtual backoff"
    );
}

#[tokio::test]
async fn catch_routes_errors_and_uncaught_errors_fail_the_execution() {
    let def = json!({"StartAt": "B", "States": {
        "B": {"Type": "Task", "Resource": "${BoomFunctionArn}", "Retry": [{"ErrorEquals": ["Throttled"]}],
              "Catch": [{"ErrorEquals": ["Boom"], "ResultPath": "$.err", "Next": "Handled"}], "End": true},
        "Handled": {"Type": "Pass", "End": true}}});
    let e = run(def, json!({"a": 1})).await;
    assert_eq!(e.status, Status::Succeeded);
    let out = e.output.expect("out");
    assert_eq!(out["err"]["Error"], "Boom");
    assert_eq!(out["a"], 1);

    let def = json!({"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": "${BoomFunctionArn}", "End": true}}});
    let e = run(def, json!({})).await;
    assert_eq!(
        (e.status, e.error.as_deref()),
        (Status::Failed, Some("Boom"))
    );
    assert_eq!(
        e.history.last().map(|h| h.kind.as_str()),
        Some("ExecutionFailed")
    );

    let def = json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "LegalHoldActive", "Cause": "held"}}});
    let e = run(def, json!({})).await;
    assert_eq!(e.error.as_deref(), Some("LegalHoldActive"));
}

#[tokio::test]
async fn choice_operators_and_loops() {
    let def = json!({"StartAt": "Inc", "States": {
        "Inc": {"Type": "Task", "Resource": "${IncFunctionArn}", "Next": "Again?"},
        "Again?": {"Type": "Choice", "Choices": [
            {"And": [{"Variable": "$.n", "NumericLessThan": 5}, {"Not": {"Variable": "$.n", "NumericEquals": 99}}], "Next": "Inc"},
            {"Variable": "$.missing", "IsPresent": true, "Next": "Bad"}],
         "Default": "Done"},
        "Bad": {"Type": "Fail"},
        "Done": {"Type": "Succeed"}}});
    let e = run(def, json!({"n": 0})).await;
    assert_eq!(e.output, Some(json!({"n": 5})));
    assert_eq!(e.states_entered().iter().filter(|s| *s == "Inc").count(), 5);

    let def = json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [
        {"Variable": "$.s", "StringMatches": "gdpr_*_001", "Next": "Y"},
        {"Variable": "$.b", "BooleanEquals": true, "Next": "N"}]}, "Y": {"Type": "Succeed"}, "N": {"Type": "Succeed"}}});
    assert_eq!(
        run(def.clone(), json!({"s": "gdpr_req_001"}))
            .await
            .states_entered(),
        ["C", "Y"]
    );
    let e = run(def, json!({"s": "x", "b": false})).await;
    assert_eq!(e.error.as_deref(), Some("States.NoChoiceMatched"));
}

#[tokio::test]
async fn map_keeps_order_and_uses_item_selector_and_context() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2,
        "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index", "tag.$": "$.tag"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "E", "States": {"E": {"Type": "Task", "Resource": "${EchoFunctionArn}", "End": true}}},
        "ResultPath": "$.out", "End": true}}});
    let e = run(def, json!({"items": ["a", "b", "c"], "tag": "t"})).await;
    let out = e.output.expect("out");
    assert_eq!(
        out["out"],
        json!([{"v": "a", "i": 0, "tag": "t"}, {"v": "b", "i": 1, "tag": "t"}, {"v": "c", "i": 2, "tag": "t"}])
    );
    // A distributed Map's children are executions of their own: the parent records the
    // map run, not their states.
    assert!(e.history.iter().any(|h| h.kind == "MapRunStarted"));
    assert!(
        !e.history
            .iter()
            .any(|h| h.kind.starts_with("MapIteration") || h.kind.starts_with("Task"))
    );
}

#[tokio::test]
async fn parallel_runs_every_branch() {
    let branch = |r: &str| json!({"StartAt": "X", "States": {"X": {"Type": "Task", "Resource": r, "End": true}}});
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": [branch("${EchoFunctionArn}"), branch("${IncFunctionArn}")], "End": true}}});
    let e = run(def, json!({"n": 1})).await;
    assert_eq!(e.output, Some(json!([{"n": 1}, {"n": 2}])));
}

#[tokio::test]
async fn waits_use_the_virtual_clock() {
    let def = json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 86400, "Next": "W2"},
        "W2": {"Type": "Wait", "SecondsPath": "$.s", "End": true}}});
    let started = std::time::Instant::now();
    let e = run(def, json!({"s": 3600})).await;
    assert_eq!(e.status, Status::Succeeded);
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test]
async fn task_timeout_is_states_timeout() {
    let def = json!({"StartAt": "S", "States": {"S": {"Type": "Task", "Resource": "${SlowFunctionArn}", "TimeoutSeconds": 1, "End": true}}});
    let e = run(def, json!({})).await;
    assert_eq!(e.error.as_deref(), Some("States.Timeout"));
}

#[tokio::test]
async fn standard_workflow_limits_are_enforced() {
    let def = json!({"StartAt": "Loop", "States": {"Loop": {"Type": "Pass", "Next": "Loop"}}});
    let e = run(def, json!({})).await;
    assert_eq!(e.error.as_deref(), Some("States.Runtime"));
    assert!(e.cause.as_deref().unwrap_or_default().contains("25000"));
    let def = json!({"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": "${BigFunctionArn}", "End": true}}});
    assert_eq!(
        run(def, json!({})).await.error.as_deref(),
        Some("States.DataLimitExceeded")
    );
}

#[tokio::test]
async fn a_fail_state_with_neither_error_nor_cause_records_neither() {
    let e = run(
        json!({"StartAt": "F", "States": {"F": {"Type": "Fail"}}}),
        json!({}),
    )
    .await;
    assert_eq!(e.status, Status::Failed);
    assert_eq!((e.error.as_deref(), e.cause.as_deref()), (None, None));
    let last = e.history.last().expect("history");
    assert_eq!(last.kind, "ExecutionFailed");
    assert_eq!(last.details, json!({}), "AWS records neither field");
    let e = run(
        json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E"}}}),
        json!({}),
    )
    .await;
    assert_eq!((e.error.as_deref(), e.cause.as_deref()), (Some("E"), None));
}

#[tokio::test]
async fn a_wait_seconds_path_that_is_negative_or_not_an_integer_fails_the_execution() {
    for secs in [json!(-1), json!(1.5), json!("3")] {
        let e = run(
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": true}}}),
            json!({"s": secs}),
        )
        .await;
        assert_eq!(e.status, Status::Failed, "{secs}");
        assert_eq!(e.error.as_deref(), Some("States.Runtime"), "{secs}");
    }
    let e = run(
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": true}}}),
        json!({"s": 2}),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded);
}

#[tokio::test]
async fn a_fail_state_takes_its_error_and_cause_from_paths_and_intrinsics() {
    let e = run(
        json!({"StartAt": "F", "States": {"F": {"Type": "Fail",
            "ErrorPath": "$.kind", "CausePath": "States.Format('tenant {} is held', $.t)"}}}),
        json!({"kind": "LegalHoldActive", "t": "t1"}),
    )
    .await;
    assert_eq!(e.error.as_deref(), Some("LegalHoldActive"));
    assert_eq!(e.cause.as_deref(), Some("tenant t1 is held"));
    let e = run(
        json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "$.n"}}}),
        json!({"n": 3}),
    )
    .await;
    assert_eq!(
        e.error.as_deref(),
        Some("States.Runtime"),
        "a path to a non-string"
    );
    let bad = json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}}});
    assert!(
        Machine::load(&bad).is_err(),
        "Error and ErrorPath together are refused"
    );
}

#[tokio::test]
async fn timestamps_must_be_rfc3339_with_a_t_and_a_zone_as_aws_requires() {
    for bad in ["2026-01-01 00:00:00Z", "2026-01-01T00:00:00", "2026-01-01"] {
        let def = json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Timestamp": bad, "End": true}}});
        assert!(
            Machine::load(&def).is_err(),
            "a Timestamp literal {bad:?} is refused at load"
        );
        let e = run(
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "TimestampPath": "$.t", "End": true}}}),
            json!({"t": bad}),
        )
        .await;
        assert_eq!(
            e.error.as_deref(),
            Some("States.Runtime"),
            "TimestampPath {bad:?}"
        );
        let e = run(
            json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [
                {"Variable": "$.t", "IsTimestamp": true, "Next": "Yes"}], "Default": "No"},
                "Yes": {"Type": "Succeed"}, "No": {"Type": "Fail", "Error": "NotATimestamp"}}}),
            json!({"t": bad}),
        )
        .await;
        assert_eq!(
            e.error.as_deref(),
            Some("NotATimestamp"),
            "IsTimestamp {bad:?}"
        );
    }
    let ok = json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Timestamp": "2020-01-01T00:00:00+01:00", "End": true}}});
    assert!(Machine::load(&ok).is_ok());
}
