//! Issue 14's features: dynamic counts and timeouts, tolerated failures, full JSONPath,
//! Distributed Map (ItemReader, ItemBatcher, ResultWriter).

use crate::tests::{Fake, run};
use crate::{Machine, MemoryObjects, Simulator, Status};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn map(extra: Value, mode: &str, resource: &str) -> Value {
    let mut m = json!({"Type": "Map", "ItemsPath": "$.items",
        "ItemProcessor": {"ProcessorConfig": {"Mode": mode},
            "StartAt": "T", "States": {"T": {"Type": "Task", "Resource": resource, "End": true}}},
        "End": true});
    if mode == "DISTRIBUTED" {
        m["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] = json!("STANDARD");
    }
    for (k, v) in extra.as_object().into_iter().flatten() {
        m[k] = v.clone();
    }
    json!({"StartAt": "M", "States": {"M": m}})
}

#[tokio::test]
async fn max_concurrency_path_bounds_the_map_and_a_bad_value_is_states_runtime() {
    let def = map(
        json!({"MaxConcurrencyPath": "$.c"}),
        "INLINE",
        "${ConcFunctionArn}",
    );
    let m = Machine::load(&def).expect("loads");
    let fake = Arc::new(Fake::default());
    let items: Vec<Value> = (0..8).map(|n| json!({"n": n})).collect();
    let e = Simulator::new(fake.clone())
        .run(&m, "t", json!({"items": items, "c": 2}))
        .await;
    assert_eq!(e.status, Status::Succeeded, "{:?}", e.cause);
    assert_eq!(fake.peak.load(Ordering::SeqCst), 2);
    for bad in [json!(-1), json!(1.5), json!("2")] {
        let e = run(def.clone(), json!({"items": [], "c": bad})).await;
        assert_eq!(e.error.as_deref(), Some("States.Runtime"), "{bad}");
    }
    let both = map(
        json!({"MaxConcurrency": 1, "MaxConcurrencyPath": "$.c"}),
        "INLINE",
        "${EchoFunctionArn}",
    );
    assert!(Machine::load(&both).is_err());
}

#[tokio::test]
async fn tolerated_failures_keep_failed_items_and_past_the_threshold_fail_the_map() {
    let items: Vec<Value> = (0..4).map(|n| json!({"n": n})).collect(); // 1 and 3 fail
    let input = json!({"items": items, "p": 50});
    let ok = |extra: Value| map(extra, "DISTRIBUTED", "${FailOddFunctionArn}");

    for extra in [
        json!({"ToleratedFailureCount": 2}),
        json!({"ToleratedFailurePercentage": 50}),
        json!({"ToleratedFailurePercentagePath": "$.p"}),
    ] {
        let e = run(ok(extra.clone()), input.clone()).await;
        assert_eq!(e.status, Status::Succeeded, "{extra}: {:?}", e.cause);
        let out = e.output.expect("output");
        assert_eq!(out[0], json!({"n": 0}));
        assert_eq!(out[1]["Status"], "FAILED", "{extra}");
        assert_eq!(out[1]["Error"], "OddNumber");
        assert_eq!(out[3]["Cause"], "3 is odd");
    }
    for extra in [
        json!({}),
        json!({"ToleratedFailureCount": 1}),
        json!({"ToleratedFailurePercentage": 49}),
        json!({"ToleratedFailureCountPath": "$.p", "ToleratedFailurePercentage": 10}),
    ] {
        let e = run(ok(extra.clone()), input.clone()).await;
        assert_eq!(
            e.error.as_deref(),
            Some("States.ExceedToleratedFailureThreshold"),
            "{extra}"
        );
        let cause = e.cause.unwrap_or_default();
        assert!(
            cause.contains("OddNumber") && cause.contains("is odd"),
            "{cause}"
        );
    }
    let e = run(
        ok(json!({"ToleratedFailurePercentagePath": "$.p"})),
        json!({"items": [], "p": 101}),
    )
    .await;
    assert_eq!(e.error.as_deref(), Some("States.Runtime"));
    let inline = map(
        json!({"ToleratedFailureCount": 1}),
        "INLINE",
        "${EchoFunctionArn}",
    );
    let e = Machine::load(&inline).expect_err("inline refuses it");
    assert!(e.message.contains("DISTRIBUTED"), "{e}");
}

#[tokio::test]
async fn timeout_and_heartbeat_seconds_paths_must_be_positive_integers() {
    let def = |f: Value| {
        let mut t = json!({"Type": "Task", "Resource": "${SlowFunctionArn}", "End": true});
        for (k, v) in f.as_object().into_iter().flatten() {
            t[k] = v.clone();
        }
        json!({"StartAt": "S", "States": {"S": t}})
    };
    let e = run(def(json!({"TimeoutSecondsPath": "$.t"})), json!({"t": 1})).await;
    assert_eq!(e.error.as_deref(), Some("States.Timeout"));
    for bad in [json!(0), json!(-3), json!(1.5), json!("1")] {
        let e = run(def(json!({"TimeoutSecondsPath": "$.t"})), json!({"t": bad})).await;
        assert_eq!(e.error.as_deref(), Some("States.Runtime"), "{bad}");
        let e = run(
            def(json!({"TimeoutSeconds": 1, "HeartbeatSecondsPath": "$.h"})),
            json!({"h": bad}),
        )
        .await;
        assert_eq!(
            e.error.as_deref(),
            Some("States.Runtime"),
            "heartbeat {bad}"
        );
    }
    let e = run(
        def(json!({"TimeoutSecondsPath": "$.t", "HeartbeatSecondsPath": "$.h"})),
        json!({"t": 5, "h": 5}),
    )
    .await;
    assert_eq!(
        e.error.as_deref(),
        Some("States.Runtime"),
        "a heartbeat must be shorter than the timeout"
    );
    assert!(
        Machine::load(&def(
            json!({"TimeoutSeconds": 1, "TimeoutSecondsPath": "$.t"})
        ))
        .is_err()
    );
    assert!(Machine::load(&def(json!({"TimeoutSecondsPath": "$.t[*]"}))).is_err());
}

#[tokio::test]
async fn jsonpath_wildcards_slices_and_filters_where_asl_allows_them() {
    let def = json!({"StartAt": "P", "States": {
        "P": {"Type": "Pass", "InputPath": "$.orders[?(@.total > 10)]",
              "Parameters": {"ids.$": "$[*].id", "first_two.$": "$[0:2].id",
                             "big.$": "$[?(@.total >= 100 && @.paid == true)].id",
                             "count.$": "States.ArrayLength($[*])"},
              "ResultPath": "$", "OutputPath": "$", "Next": "Q"},
        "Q": {"Type": "Pass", "OutputPath": "$.ids[-2:]", "End": true}}});
    let input = json!({"orders": [
        {"id": "a", "total": 5, "paid": true}, {"id": "b", "total": 50, "paid": false},
        {"id": "c", "total": 150, "paid": true}, {"id": "d", "total": 11, "paid": true}]});
    let e = run(def.clone(), input.clone()).await;
    assert_eq!(e.status, Status::Succeeded, "{:?}", e.cause);
    assert_eq!(e.output, Some(json!(["c", "d"])));
    let e = run(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {
            "ids.$": "$.orders[*].id", "first_two.$": "$.orders[0:2].id",
            "big.$": "$.orders[?(@.total >= 100 && @.paid == true)].id",
            "deep.$": "$..paid", "none.$": "$.orders[?(@.total > 1000)]"}, "End": true}}}),
        input,
    )
    .await;
    assert_eq!(
        e.output,
        Some(
            json!({"ids": ["a", "b", "c", "d"], "first_two": ["a", "b"], "big": ["c"],
                    "deep": [true, false, true, true], "none": []})
        )
    );
    // Reference paths stay simple and refuse the rest at load.
    for bad in [
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "ResultPath": "$.a[*]", "End": true}}}),
        json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [
            {"Variable": "$.a[?(@.x == 1)]", "IsPresent": true, "Next": "E"}]}, "E": {"Type": "Succeed"}}}),
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s[0:1]", "End": true}}}),
        map(
            json!({"ItemsPath": "$.items[*]"}),
            "INLINE",
            "${EchoFunctionArn}",
        ),
    ] {
        let e = Machine::load(&bad).expect_err("refused");
        assert!(e.message.contains("reference path"), "{e}");
    }
}

fn dmap(extra: Value, resource: &str) -> Value {
    let mut d = map(extra, "DISTRIBUTED", resource);
    if d["States"]["M"].get("ItemReader").is_some() {
        d["States"]["M"]
            .as_object_mut()
            .expect("obj")
            .remove("ItemsPath");
    }
    d
}

async fn run_on(def: Value, input: Value, store: Arc<MemoryObjects>) -> crate::Execution {
    let m = Machine::load(&def).expect("loads");
    Simulator::new(Arc::new(Fake::default()))
        .with_objects(store)
        .run(&m, "t", input)
        .await
}

#[tokio::test]
async fn distributed_map_lists_objects_batches_them_and_writes_results_as_aws_does() {
    let store = Arc::new(MemoryObjects::new());
    for i in 0..5 {
        store.insert("data", &format!("tenants/t1/doc-{i}"), vec![b'x'; i + 1]);
    }
    store.insert("data", "tenants/t2/other", b"keep".to_vec());
    let def = dmap(
        json!({
            "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2",
                           "Parameters": {"Bucket": "data", "Prefix.$": "$.prefix"}},
            "ItemSelector": {"key.$": "$$.Map.Item.Value.Key", "size.$": "$$.Map.Item.Value.Size"},
            "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"bucket": "data", "tenant.$": "$.tenant"}},
            "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                             "Parameters": {"Bucket": "results", "Prefix": "runs"}},
            "ToleratedFailurePercentage": 0,
            "ResultPath": "$.map"
        }),
        "${EchoFunctionArn}",
    );
    let e = run_on(
        def,
        json!({"prefix": "tenants/t1/", "tenant": "t1"}),
        store.clone(),
    )
    .await;
    assert_eq!(e.status, Status::Succeeded, "{:?}", e.cause);
    let out = e.output.expect("output");
    let arn = out["map"]["MapRunArn"].as_str().expect("arn");
    let key = out["map"]["ResultWriterDetails"]["Key"]
        .as_str()
        .expect("key");
    assert_eq!(out["map"]["ResultWriterDetails"]["Bucket"], "results");
    let run_id = arn.rsplit(':').next().expect("id");
    assert_eq!(key, format!("runs/{run_id}/manifest.json"));
    let manifest: Value =
        serde_json::from_slice(&store.body("results", key).expect("manifest")).expect("json");
    assert_eq!(manifest["DestinationBucket"], "results");
    assert_eq!(manifest["MapRunArn"], arn);
    assert_eq!(manifest["ResultFiles"]["FAILED"], json!([]));
    let succeeded = &manifest["ResultFiles"]["SUCCEEDED"][0];
    assert_eq!(succeeded["Key"], format!("runs/{run_id}/SUCCEEDED_0.json"));
    let body = store
        .body("results", succeeded["Key"].as_str().expect("k"))
        .expect("file");
    assert_eq!(succeeded["Size"], body.len());
    let results: Vec<Value> = serde_json::from_slice(&body).expect("json");
    assert_eq!(results.len(), 3, "5 objects in batches of 2");
    let first: Value = serde_json::from_str(results[0]["Output"].as_str().expect("o")).expect("o");
    assert_eq!(
        first,
        json!({"BatchInput": {"bucket": "data", "tenant": "t1"},
               "Items": [{"key": "tenants/t1/doc-0", "size": 1}, {"key": "tenants/t1/doc-1", "size": 2}]})
    );
    assert_eq!(results[0]["Status"], "SUCCEEDED");
    assert!(results[0]["ExecutionArn"].is_string() && results[0]["Input"].is_string());
}

#[tokio::test]
async fn distributed_map_reads_json_and_csv_objects_with_max_items() {
    let store = Arc::new(MemoryObjects::new());
    store.insert(
        "b",
        "items.json",
        br#"[{"n": 1}, {"n": 2}, {"n": 3}]"#.to_vec(),
    );
    store.insert(
        "b",
        "rows.csv",
        b"id,name\n1,\"Smith, J\"\n2,Lee\n".to_vec(),
    );
    store.insert("b", "plain.csv", b"1;a\n2;b\n".to_vec());
    let reader = |key: &str, cfg: Value| {
        dmap(
            json!({"ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": cfg, "Parameters": {"Bucket": "b", "Key": key}}}),
            "${EchoFunctionArn}",
        )
    };
    let e = run_on(
        reader("items.json", json!({"InputType": "JSON", "MaxItems": 2})),
        json!({}),
        store.clone(),
    )
    .await;
    assert_eq!(e.output, Some(json!([{"n": 1}, {"n": 2}])), "{:?}", e.cause);
    let e = run_on(
        reader(
            "rows.csv",
            json!({"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}),
        ),
        json!({}),
        store.clone(),
    )
    .await;
    assert_eq!(
        e.output,
        Some(json!([{"id": "1", "name": "Smith, J"}, {"id": "2", "name": "Lee"}]))
    );
    let e = run_on(
        reader(
            "plain.csv",
            json!({"InputType": "CSV", "CSVHeaderLocation": "GIVEN",
                   "CSVHeaders": ["n", "s"], "CSVDelimiter": "SEMICOLON", "MaxItemsPath": "$.max"}),
        ),
        json!({"max": 1}),
        store.clone(),
    )
    .await;
    assert_eq!(e.output, Some(json!([{"n": "1", "s": "a"}])));
    let e = run_on(
        reader("missing.json", json!({"InputType": "JSON"})),
        json!({}),
        store,
    )
    .await;
    assert_eq!(e.error.as_deref(), Some("States.ItemReaderFailed"));
    // Without an object store the simulator says what it needs.
    let e = run(
        reader("items.json", json!({"InputType": "JSON"})),
        json!({}),
    )
    .await;
    assert_eq!(e.error.as_deref(), Some("States.ItemReaderFailed"));
    assert!(e.cause.unwrap_or_default().contains("no S3"));
}

#[tokio::test]
async fn item_batcher_cuts_batches_by_bytes_and_children_keep_their_own_history() {
    let items: Vec<Value> = (0..300)
        .map(|n| json!({"n": n, "pad": "xxxxxxxxxx"}))
        .collect();
    let def = map(
        json!({"ItemBatcher": {"MaxInputBytesPerBatch": 300}}),
        "DISTRIBUTED",
        "${EchoFunctionArn}",
    );
    let e = run(def, json!({"items": items})).await;
    assert_eq!(e.status, Status::Succeeded, "{:?}", e.cause);
    let out = e.output.expect("out");
    let batches = out.as_array().expect("array");
    assert!(batches.len() > 1);
    let mut seen = 0;
    for b in batches {
        assert!(serde_json::to_vec(b).expect("json").len() <= 300);
        seen += b["Items"].as_array().expect("items").len();
    }
    assert_eq!(seen, 300);
    // 300 items but a parent history of a handful of events: the children's are their own.
    assert!(e.history.len() < 20, "{}", e.history.len());
    let bad = map(
        json!({"ItemBatcher": {}}),
        "DISTRIBUTED",
        "${EchoFunctionArn}",
    );
    assert!(Machine::load(&bad).is_err());
}

#[test]
fn every_state_machine_of_the_repository_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../statemachines");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("statemachines/") {
        let p = e.expect("entry").path();
        if p.to_string_lossy().ends_with(".asl.json") {
            let def: Value =
                serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
            Machine::load(&def).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n >= 2);
}

#[tokio::test]
async fn assign_sets_variables_from_entry_values_and_later_states_read_them() {
    let def = json!({"StartAt": "Init", "States": {
        "Init": {"Type": "Pass", "Assign": {"limit": 3, "who.$": "$.user", "a": 1, "b": 2}, "Next": "Swap"},
        // Every expression of an Assign sees the values at the state's entry: a swap works.
        "Swap": {"Type": "Pass", "Assign": {"a.$": "$b", "b.$": "$a"}, "Next": "Call"},
        "Call": {"Type": "Task", "Resource": "${IncFunctionArn}", "Parameters": {"n.$": "$limit"},
                 "ResultSelector": {"got.$": "$.n"}, "Assign": {"after.$": "$.got"},
                 "ResultPath": null, "Next": "Check"},
        "Check": {"Type": "Choice", "Choices": [
            {"Variable": "$after", "NumericEquals": 4, "Assign": {"branch": "four"}, "Next": "Out"}],
            "Default": "Out"},
        "Out": {"Type": "Pass", "Parameters": {"who.$": "$who", "a.$": "$a", "b.$": "$b",
            "after.$": "$after", "branch.$": "$branch", "f.$": "States.Format('{} of {}', $a, $limit)"}, "End": true}}});
    let e = run(def, json!({"user": "ann"})).await;
    assert_eq!(e.status, Status::Succeeded, "{:?}", e.cause);
    assert_eq!(
        e.output,
        Some(json!({"who": "ann", "a": 2, "b": 1, "after": 4, "branch": "four", "f": "2 of 3"}))
    );
    let e = run(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"x.$": "$nope"}, "End": true}}}),
        json!({}),
    )
    .await;
    assert_eq!(
        e.error.as_deref(),
        Some("States.Runtime"),
        "an unset variable"
    );
    for bad in [json!({"states": 1}), json!({"1x": 1}), json!({"a-b": 1})] {
        let def =
            json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Assign": bad, "End": true}}});
        assert!(Machine::load(&def).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn map_iterations_read_outer_variables_but_cannot_assign_them() {
    let body = |assign: Value, mode: &str| {
        let mut d = json!({"StartAt": "Init", "States": {
            "Init": {"Type": "Pass", "Assign": {"tag": "t1"}, "Next": "M"},
            "M": {"Type": "Map", "ItemsPath": "$.items", "ItemSelector": {"v.$": "$$.Map.Item.Value", "tag.$": "$tag"},
                  "ItemProcessor": {"ProcessorConfig": {"Mode": mode}, "StartAt": "In", "States": {
                      "In": {"Type": "Pass", "Assign": assign, "Parameters": {"v.$": "$.v", "outer.$": "$tag"}, "End": true}}},
                  "ResultPath": "$.out", "Next": "After"},
            "After": {"Type": "Pass", "Parameters": {"out.$": "$.out", "tag.$": "$tag"}, "End": true}}});
        if mode == "DISTRIBUTED" {
            d["States"]["M"]["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] =
                json!("STANDARD");
        }
        d
    };
    let e = run(body(json!({"mine": 1}), "INLINE"), json!({"items": [1, 2]})).await;
    assert_eq!(e.status, Status::Succeeded, "{:?}", e.cause);
    assert_eq!(
        e.output,
        Some(json!({"out": [{"v": 1, "outer": "t1"}, {"v": 2, "outer": "t1"}], "tag": "t1"}))
    );
    let e = Machine::load(&body(json!({"tag": "inner"}), "INLINE")).expect_err("refused");
    assert!(e.message.contains("outer scope"), "{e}");
    // An inner variable does not outlive its iteration.
    let mut leak = body(json!({"mine": 1}), "INLINE");
    leak["States"]["After"]["Parameters"]["mine.$"] = json!("$mine");
    assert_eq!(
        run(leak, json!({"items": [1]})).await.error.as_deref(),
        Some("States.Runtime")
    );
    // A distributed child is an execution of its own: the outer variable is not there.
    let e = run(
        body(json!({"mine": 1}), "DISTRIBUTED"),
        json!({"items": [1]}),
    )
    .await;
    assert_eq!(
        e.error.as_deref(),
        Some("States.ExceedToleratedFailureThreshold")
    );
    assert!(e.cause.unwrap_or_default().contains("$tag"));
}

#[tokio::test]
async fn jsonata_states_evaluate_the_subset() {
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "Init", "States": {
        "Init": {"Type": "Pass", "Assign": {"base": "{% $states.input.base %}", "tenant": "{% 'tenant_' & $states.input.id %}"},
                 "Next": "Call"},
        "Call": {"Type": "Task", "Resource": "${IncFunctionArn}", "Arguments": {"n": "{% $base * 10 %}"},
                 "Output": {"n": "{% $states.result.n %}", "items": "{% $states.input.items %}"},
                 "Assign": {"got": "{% $states.result.n %}"}, "Next": "Big?"},
        "Big?": {"Type": "Choice", "Choices": [
            {"Condition": "{% $got > 20 and $exists($states.input.items) %}", "Next": "Each",
             "Assign": {"size": "{% $count($states.input.items) %}"}}], "Default": "Small"},
        "Small": {"Type": "Fail", "Error": "TooSmall"},
        "Each": {"Type": "Map", "Items": "{% $states.input.items[price > 1] %}",
                 "ItemSelector": {"name": "{% $states.context.Map.Item.Value.name %}",
                                  "i": "{% $states.context.Map.Item.Index %}", "t": "{% $tenant %}"},
                 "ItemProcessor": {"StartAt": "E", "States": {"E": {"Type": "Task", "Resource": "${EchoFunctionArn}", "End": true}}},
                 "Next": "Done"},
        "Done": {"Type": "Succeed", "Output": {
            "names": "{% $states.input.name %}", "got": "{% $got %}", "size": "{% $size %}",
            "total": "{% $sum($states.input.i) + $number('0.5') %}", "s": "{% $string($got) & '!' %}",
            "obj": "{% {'k': [1, $base]} %}", "missing": "{% $states.input.nope %}"}}}});
    let input = json!({"base": 3, "id": "7", "items": [
        {"name": "a", "price": 1}, {"name": "b", "price": 2}, {"name": "c", "price": 5}]});
    let e = run(def, input).await;
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    assert_eq!(
        e.output,
        Some(
            json!({"names": ["b", "c"], "got": 31, "size": 3, "total": 1.5, "s": "31!",
                    "obj": {"k": [1, 3]}})
        )
    );
    // Catch: $states.errorOutput; an evaluation error is States.QueryEvaluationError.
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "B", "States": {
        "B": {"Type": "Task", "Resource": "${BoomFunctionArn}", "Catch": [{"ErrorEquals": ["Boom"],
              "Output": {"why": "{% $states.errorOutput.Error %}"}, "Assign": {"e": "{% $states.errorOutput.Cause %}"}, "Next": "Q"}], "End": true},
        "Q": {"Type": "Pass", "Output": "{% $states.input.why & ': ' & $e %}", "Next": "Bad"},
        "Bad": {"Type": "Pass", "Output": "{% 1 + 'a' %}", "End": true}}});
    let e = run(def, json!({})).await;
    assert_eq!(e.error.as_deref(), Some("States.QueryEvaluationError"));
    assert!(
        e.history
            .iter()
            .any(|h| h.details["output"] == json!("\"Boom: ${BoomFunctionArn} exploded\""))
    );
    for bad in [
        json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$.x", "End": true}}}),
        json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass", "Output": "{% $nope() %}", "End": true}}}),
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Output": {}, "End": true}}}),
        json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass", "QueryLanguage": "JSONPath", "End": true}}}),
    ] {
        assert!(Machine::load(&bad).is_err(), "{bad}");
    }
    // A JSONata state inside a JSONPath machine.
    let e = run(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "QueryLanguage": "JSONata",
            "Output": "{% $states.input.a + 1 %}", "End": true}}}),
        json!({"a": 1}),
    )
    .await;
    assert_eq!(e.output, Some(json!(2)));
}

#[tokio::test]
async fn start_execution_sync_runs_the_named_machine_and_fails_as_aws_does() {
    // The child adds one, or fails on odd input.
    let child = Machine::load(&json!({"StartAt": "Inc", "States": {
        "Inc": {"Type": "Task", "Resource": "${FailOddFunctionArn}", "Next": "Add"},
        "Add": {"Type": "Task", "Resource": "${IncFunctionArn}", "End": true}}}))
    .expect("child loads");
    let parent = |resource: &str| {
        json!({"StartAt": "Start", "States": {"Start": {"Type": "Task", "Resource": resource,
            "Parameters": {"StateMachineArn": "${ChildStateMachineArn}", "Input": {"n.$": "$.n"},
                           "Name.$": "$.name"},
            "End": true}}})
    };
    let sim = |fake: Arc<Fake>| {
        Simulator::new(fake).with_machine("${ChildStateMachineArn}", child.clone())
    };
    let m2 =
        Machine::load(&parent("arn:aws:states:::states:startExecution.sync:2")).expect("loads");
    let e = sim(Arc::new(Fake::default()))
        .run(&m2, "p", json!({"n": 4, "name": "child-4"}))
        .await;
    assert_eq!(e.status, Status::Succeeded, "{:?}", e.cause);
    let out = e.output.expect("output");
    assert_eq!(out["Status"], "SUCCEEDED");
    assert_eq!(
        out["Output"],
        json!({"n": 5}),
        ".sync:2 gives the output as JSON"
    );
    assert_eq!(out["Input"], json!({"n": 4}));
    assert_eq!(out["Name"], "child-4");
    assert_eq!(
        out["ExecutionArn"],
        "arn:aws:states:local:000000000000:execution:ChildStateMachine:child-4"
    );
    let kinds: Vec<&str> = e.history.iter().map(|h| h.kind.as_str()).collect();
    assert!(kinds.contains(&"TaskScheduled") && kinds.contains(&"TaskSucceeded"));
    assert!(
        !kinds.contains(&"LambdaFunctionScheduled"),
        "the child's tasks are in its own history, not the parent's"
    );

    let m1 = Machine::load(&parent("arn:aws:states:::states:startExecution.sync")).expect("loads");
    let e = sim(Arc::new(Fake::default()))
        .run(&m1, "p", json!({"n": 2, "name": "c"}))
        .await;
    let out = e.output.expect("output");
    assert_eq!(out["Output"], json!("{\"n\":3}"), ".sync gives JSON text");

    // A failed child fails the task with States.TaskFailed and its own error inside.
    let e = sim(Arc::new(Fake::default()))
        .run(&m2, "p", json!({"n": 3, "name": "c"}))
        .await;
    assert_eq!(e.status, Status::Failed);
    assert_eq!(e.error.as_deref(), Some("States.TaskFailed"));
    let cause: Value =
        serde_json::from_str(e.cause.as_deref().unwrap_or("")).expect("cause is JSON");
    assert_eq!(cause["Status"], "FAILED");
    assert_eq!(cause["Error"], "OddNumber");

    // A machine nobody registered, and a name AWS would refuse.
    let e = Simulator::new(Arc::new(Fake::default()))
        .run(&m2, "p", json!({"n": 2, "name": "c"}))
        .await;
    assert_eq!(
        e.error.as_deref(),
        Some("StepFunctions.StateMachineDoesNotExistException")
    );
    let e = sim(Arc::new(Fake::default()))
        .run(&m2, "p", json!({"n": 2, "name": "x".repeat(81)}))
        .await;
    assert_eq!(e.error.as_deref(), Some("States.Runtime"));
    // Other service integrations are still refused when the definition loads.
    assert!(Machine::load(&parent("arn:aws:states:::states:startExecution")).is_err());
    assert!(Machine::load(&parent("arn:aws:states:::sqs:sendMessage")).is_err());
}
