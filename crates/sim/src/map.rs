//! Map states. Inline: iterations run in the parent's history and the first failure fails
//! the state. Distributed (`ProcessorConfig.Mode` `DISTRIBUTED`): items come from the input
//! or from S3 (`ItemReader`), may be grouped (`ItemBatcher`), and every item or batch runs as
//! a child execution with its own history (so its events do not count against the
//! parent's 25,000) that cannot see the parent's variables; failures up to the tolerated
//! threshold are kept in the results, past it the state fails with
//! `States.ExceedToleratedFailureThreshold`; `ResultWriter` writes the results to S3 as AWS
//! does (a `manifest.json` and `SUCCEEDED_0.json` / `FAILED_0.json` under
//! `<Prefix>/<map run id>/`) and the output becomes `{MapRunArn, ResultWriterDetails}`.

use crate::asl::{
    ItemBatcher, ItemReader, MapSpec, ReaderSource, State, non_negative_int, percentage,
    positive_int,
};
use crate::exec::{
    DEFAULT_DISTRIBUTED_CONCURRENCY, DEFAULT_MAP_CONCURRENCY, Failure, LOCAL_MACHINE_ARN,
    MAX_PAYLOAD_BYTES, Shared, resolve, run_execution, run_machine, text,
};
use crate::path::Env;
use futures::StreamExt;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;

const NO_S3: &str = "this simulator has no S3: ItemReader and ResultWriter read and write through the object store given to Simulator::with_objects (tenantctl gives it S3 when the catalog runs on AWS or moto; the embedded world has no buckets)";

/// How many failed items a cause names.
const ERRORS_NAMED: usize = 5;

/// Runs a Map state on its effective input.
pub(crate) async fn run(
    shared: &Arc<Shared>,
    state: &State,
    spec: &MapSpec,
    input: Value,
    env: Env<'_>,
) -> Result<Value, Failure> {
    if let Some(j) = state.jsonata.as_deref() {
        // JSONata: Items (default the input) and ItemSelector with
        // $states.context.Map.Item.
        let states = json!({"input": input, "context": env.ctx});
        let items = match &j.items {
            Some(t) => crate::exec::jeval(t, &states, env)?,
            None => input.clone(),
        };
        let Value::Array(items) = items else {
            return Err(Failure::new(
                "States.QueryEvaluationError",
                format!("the Items of {} are not an array", state.name),
            ));
        };
        shared.emit("MapStateStarted", json!({"length": items.len()}))?;
        let mut inputs = Vec::with_capacity(items.len());
        let mut map_items = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let map_item = json!({"Index": i, "Value": item});
            let item_input = match &j.item_selector {
                Some(t) => {
                    let mut st = states.clone();
                    st["context"]["Map"] = json!({"Item": map_item});
                    crate::exec::jeval(t, &st, env)?
                }
                None => map_item["Value"].clone(),
            };
            inputs.push(item_input);
            map_items.push(map_item);
        }
        return dispatch(shared, state, spec, inputs, map_items, &input, env).await;
    }
    let items = match &spec.reader {
        Some(r) => read_items(shared, &state.name, r, &input, env).await?,
        None => match spec.items_path.value(&input, env) {
            Some(Value::Array(a)) => a,
            _ => {
                return Err(Failure::runtime(format!(
                    "ItemsPath {} of {} is not an array",
                    spec.items_path, state.name
                )));
            }
        },
    };
    shared.emit("MapStateStarted", json!({"length": items.len()}))?;
    let mut inputs = Vec::with_capacity(items.len());
    let mut map_items = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let map_item = json!({"Index": i, "Value": item});
        let item_input = match &spec.item_selector {
            Some(t) => {
                let mut item_ctx = env.ctx.clone();
                item_ctx["Map"] = json!({"Item": map_item});
                let e = Env {
                    ctx: &item_ctx,
                    vars: env.vars,
                };
                t.eval(&input, e).map_err(Failure::runtime)?
            }
            None => map_item["Value"].clone(),
        };
        inputs.push(item_input);
        map_items.push(map_item);
    }
    dispatch(shared, state, spec, inputs, map_items, &input, env).await
}

/// Runs the items' inputs inline or as child executions.
async fn dispatch(
    shared: &Arc<Shared>,
    state: &State,
    spec: &MapSpec,
    inputs: Vec<Value>,
    map_items: Vec<Value>,
    input: &Value,
    env: Env<'_>,
) -> Result<Value, Failure> {
    let limit = match spec
        .max_concurrency
        .as_ref()
        .map(|c| resolve(c, input, env, "MaxConcurrency", non_negative_int))
        .transpose()?
    {
        Some(n) if n >= 1.0 => n as usize,
        _ if spec.distributed => DEFAULT_DISTRIBUTED_CONCURRENCY,
        _ => DEFAULT_MAP_CONCURRENCY,
    };
    if !spec.distributed {
        return inline(shared, state, spec, inputs, map_items, limit, env).await;
    }
    let inputs = match &spec.batcher {
        Some(b) => batch(b, inputs, input, env)?,
        None => inputs,
    };
    distributed(shared, state, spec, inputs, limit, input, env).await
}

async fn inline(
    shared: &Arc<Shared>,
    state: &State,
    spec: &MapSpec,
    inputs: Vec<Value>,
    map_items: Vec<Value>,
    limit: usize,
    env: Env<'_>,
) -> Result<Value, Failure> {
    let vars = Arc::new(env.vars.clone());
    let runs = inputs
        .into_iter()
        .zip(map_items)
        .enumerate()
        .map(|(i, (item_input, map_item))| {
            let (sh, proc_, name, vars) = (
                shared.clone(),
                spec.processor.clone(),
                state.name.clone(),
                vars.clone(),
            );
            async move {
                sh.emit("MapIterationStarted", json!({"name": name, "index": i}))?;
                let r = run_machine(sh.clone(), proc_, item_input, Some(map_item), vars).await;
                match &r {
                    Ok(_) => sh.emit("MapIterationSucceeded", json!({"name": name, "index": i}))?,
                    Err(f) => sh.emit(
                        "MapIterationFailed",
                        json!({"name": name, "index": i, "error": f.error}),
                    )?,
                }
                r
            }
        });
    let results: Vec<Result<Value, Failure>> =
        futures::stream::iter(runs).buffered(limit).collect().await;
    let mut out = Vec::new();
    for r in results {
        match r {
            Ok(v) => out.push(v),
            Err(f) => {
                shared.emit("MapStateFailed", json!({"error": f.error}))?;
                return Err(f);
            }
        }
    }
    shared.emit("MapStateSucceeded", json!({}))?;
    Ok(Value::Array(out))
}

/// One child execution of a Distributed Map, as its result files describe it.
struct Child {
    index: usize,
    name: String,
    arn: String,
    input: Value,
    result: Result<Value, Failure>,
    start: String,
    stop: String,
}

impl Child {
    /// The child in the form AWS writes to the result files (Transformation NONE).
    fn record(&self, machine_arn: &str) -> Value {
        let mut m = json!({
            "ExecutionArn": self.arn,
            "Input": text(&self.input),
            "InputDetails": {"Included": true},
            "Name": self.name,
            "RedriveCount": 0,
            "RedriveStatus": "NOT_REDRIVABLE",
            "StartDate": self.start,
            "StateMachineArn": machine_arn,
            "StopDate": self.stop,
        });
        match &self.result {
            Ok(v) => {
                m["Output"] = json!(text(v));
                m["OutputDetails"] = json!({"Included": true});
                m["Status"] = json!("SUCCEEDED");
                m["RedriveStatusReason"] = json!("Execution is SUCCEEDED and cannot be redriven");
            }
            Err(f) => {
                m["Error"] = json!(f.error);
                m["Cause"] = json!(f.cause);
                m["Status"] = json!("FAILED");
                m["RedriveStatusReason"] = json!("Execution is a child of a Map Run");
            }
        }
        m
    }
}

async fn run_child(
    parent: Arc<Shared>,
    machine: crate::asl::Machine,
    map_run_id: String,
    index: usize,
    input: Value,
) -> Child {
    let name = format!("{map_run_id}:{index}");
    let arn = format!("arn:aws:states:local:000000000000:execution:local/{name}");
    let start = parent.now().format(&Rfc3339).unwrap_or_default();
    let child = parent.child(json!({"Id": arn, "Name": name, "Input": input, "StartTime": start}));
    // A child execution starts with no variables: it cannot see the parent's.
    let result = run_execution(child.clone(), machine, input.clone()).await;
    Child {
        index,
        name,
        arn,
        input,
        result,
        start,
        stop: child.now().format(&Rfc3339).unwrap_or_default(),
    }
}

async fn distributed(
    shared: &Arc<Shared>,
    state: &State,
    spec: &MapSpec,
    inputs: Vec<Value>,
    limit: usize,
    input: &Value,
    env: Env<'_>,
) -> Result<Value, Failure> {
    let run_id = crate::template::uuid();
    let map_run_arn = format!(
        "arn:aws:states:local:000000000000:mapRun:local/{}:{run_id}",
        state.name
    );
    let machine_arn = format!("{LOCAL_MACHINE_ARN}/{}", state.name);
    let total = inputs.len();
    let count = spec
        .tolerated_count
        .as_ref()
        .map(|c| resolve(c, input, env, "ToleratedFailureCount", non_negative_int))
        .transpose()?;
    let pct = spec
        .tolerated_percentage
        .as_ref()
        .map(|c| resolve(c, input, env, "ToleratedFailurePercentage", percentage))
        .transpose()?;
    // AWS tolerates no failure unless told otherwise; past either threshold the run fails.
    let exceeded = |failed: usize| match (count, pct) {
        (None, None) => failed > 0,
        (c, p) => {
            c.is_some_and(|c| failed as f64 > c)
                || p.is_some_and(|p| total > 0 && failed as f64 * 100.0 / total as f64 > p)
        }
    };
    shared.emit(
        "MapRunStarted",
        json!({"name": state.name, "mapRunArn": map_run_arn, "items": total}),
    )?;
    let runs = inputs.into_iter().enumerate().map(|(i, item)| {
        run_child(
            shared.clone(),
            spec.processor.clone(),
            format!("{}:{run_id}", state.name),
            i,
            item,
        )
    });
    let mut children: Vec<Option<Child>> = (0..total).map(|_| None).collect();
    let mut failed = 0usize;
    let mut over = false;
    {
        let mut stream = futures::stream::iter(runs).buffer_unordered(limit.max(1));
        while let Some(c) = stream.next().await {
            let i = c.index;
            if c.result.is_err() {
                failed += 1;
            }
            if let Some(slot) = children.get_mut(i) {
                *slot = Some(c);
            }
            if exceeded(failed) {
                // AWS stops starting children once the threshold is crossed.
                over = true;
                break;
            }
        }
    }
    let done: Vec<&Child> = children.iter().flatten().collect();
    let details = match &spec.writer {
        Some(w) => Some(
            write_results(
                shared,
                &state.name,
                w,
                &done,
                &map_run_arn,
                &machine_arn,
                input,
                env,
            )
            .await?,
        ),
        None => None,
    };
    if over {
        let named: Vec<String> = done
            .iter()
            .filter_map(|c| {
                c.result
                    .as_ref()
                    .err()
                    .map(|f| format!("{}: {}: {}", c.index, f.error, f.cause))
            })
            .take(ERRORS_NAMED)
            .collect();
        let cause = format!(
            "The specified tolerated failure threshold was exceeded: {failed} of {total} items failed (tolerated: {}, {}%); items {}",
            count.map_or("0".into(), |c| c.to_string()),
            pct.map_or("0".into(), |p| p.to_string()),
            named.join("; ")
        );
        shared.emit(
            "MapRunFailed",
            json!({"mapRunArn": map_run_arn, "failed": failed}),
        )?;
        return Err(Failure::new(
            "States.ExceedToleratedFailureThreshold",
            cause,
        ));
    }
    shared.emit(
        "MapRunSucceeded",
        json!({"mapRunArn": map_run_arn, "succeeded": total - failed, "failed": failed}),
    )?;
    shared.emit("MapStateSucceeded", json!({}))?;
    if let Some(d) = details {
        return Ok(json!({"MapRunArn": map_run_arn, "ResultWriterDetails": d}));
    }
    Ok(Value::Array(
        children
            .into_iter()
            .flatten()
            .map(|c| match &c.result {
                Ok(v) => v.clone(),
                // A tolerated failure stays in the output in the NONE form, as on AWS.
                Err(_) => c.record(&machine_arn),
            })
            .collect(),
    ))
}

#[allow(clippy::too_many_arguments)]
async fn write_results(
    shared: &Arc<Shared>,
    state: &str,
    w: &crate::asl::ResultWriter,
    done: &[&Child],
    map_run_arn: &str,
    machine_arn: &str,
    input: &Value,
    env: Env<'_>,
) -> Result<Value, Failure> {
    let fail = |m: String| Failure::new("States.ResultWriterFailed", format!("{state}: {m}"));
    let store = shared.objects.clone().ok_or_else(|| fail(NO_S3.into()))?;
    let p = w.parameters.eval(input, env).map_err(Failure::runtime)?;
    let bucket = p
        .get("Bucket")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("ResultWriter Bucket is not a string".into()))?
        .to_owned();
    let prefix = p.get("Prefix").and_then(Value::as_str).unwrap_or("");
    let run_id = map_run_arn.rsplit(':').next().unwrap_or("run");
    let base = if prefix.is_empty() {
        run_id.to_owned()
    } else {
        format!("{}/{run_id}", prefix.trim_end_matches('/'))
    };
    let mut files = Map::new();
    for (status, ok) in [("SUCCEEDED", true), ("FAILED", false)] {
        let recs: Vec<Value> = done
            .iter()
            .filter(|c| c.result.is_ok() == ok)
            .map(|c| c.record(machine_arn))
            .collect();
        let mut list = Vec::new();
        if !recs.is_empty() {
            let key = format!("{base}/{status}_0.json");
            let body = serde_json::to_vec(&recs).map_err(|e| fail(e.to_string()))?;
            let size = body.len();
            store.put(&bucket, &key, body).await.map_err(&fail)?;
            list.push(json!({"Key": key, "Size": size}));
        }
        files.insert(status.to_owned(), Value::Array(list));
    }
    files.insert("PENDING".into(), json!([]));
    let manifest = json!({
        "DestinationBucket": bucket,
        "MapRunArn": map_run_arn,
        "ResultFiles": files,
    });
    let key = format!("{base}/manifest.json");
    let body = serde_json::to_vec(&manifest).map_err(|e| fail(e.to_string()))?;
    store.put(&bucket, &key, body).await.map_err(&fail)?;
    Ok(json!({"Bucket": bucket, "Key": key}))
}

async fn read_items(
    shared: &Arc<Shared>,
    state: &str,
    r: &ItemReader,
    input: &Value,
    env: Env<'_>,
) -> Result<Vec<Value>, Failure> {
    let fail = |m: String| Failure::new("States.ItemReaderFailed", format!("{state}: {m}"));
    let store = shared.objects.clone().ok_or_else(|| fail(NO_S3.into()))?;
    let p = r.parameters.eval(input, env).map_err(Failure::runtime)?;
    let field = |k: &str| -> Result<Option<String>, Failure> {
        match p.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(fail(format!("ItemReader {k} must be a string, got {v}"))),
        }
    };
    let bucket = field("Bucket")?.ok_or_else(|| fail("ItemReader needs a Bucket".into()))?;
    let max = r
        .max_items
        .as_ref()
        .map(|c| resolve(c, input, env, "MaxItems", non_negative_int))
        .transpose()?
        .filter(|n| *n >= 1.0)
        .map(|n| n as usize);
    let mut items: Vec<Value> = match &r.source {
        ReaderSource::ListObjects => {
            let prefix = field("Prefix")?.unwrap_or_default();
            store
                .list(&bucket, &prefix)
                .await
                .map_err(&fail)?
                .into_iter()
                .map(|o| {
                    json!({"Etag": o.etag, "Key": o.key, "LastModified": o.last_modified,
                           "Size": o.size, "StorageClass": o.storage_class})
                })
                .collect()
        }
        source => {
            let key =
                field("Key")?.ok_or_else(|| fail("ItemReader getObject needs a Key".into()))?;
            let body = store.get(&bucket, &key).await.map_err(&fail)?;
            let text = String::from_utf8(body)
                .map_err(|_| fail(format!("s3://{bucket}/{key} is not UTF-8 text")))?;
            match source {
                ReaderSource::Json => match serde_json::from_str(&text) {
                    Ok(Value::Array(a)) => a,
                    Ok(_) => {
                        return Err(fail(format!(
                            "s3://{bucket}/{key} does not hold a JSON array"
                        )));
                    }
                    Err(e) => return Err(fail(format!("s3://{bucket}/{key} is not JSON: {e}"))),
                },
                ReaderSource::JsonLines => text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                    .map(|(n, l)| {
                        serde_json::from_str(l)
                            .map_err(|e| fail(format!("s3://{bucket}/{key} line {}: {e}", n + 1)))
                    })
                    .collect::<Result<_, _>>()?,
                ReaderSource::Csv { headers, delimiter } => {
                    csv_items(&text, headers.as_deref(), *delimiter)
                        .map_err(|m| fail(format!("s3://{bucket}/{key}: {m}")))?
                }
                ReaderSource::ListObjects => Vec::new(),
            }
        }
    };
    if let Some(m) = max {
        items.truncate(m);
    }
    Ok(items)
}

/// CSV rows as objects of strings keyed by the header (RFC 4180 quoting).
fn csv_items(text: &str, given: Option<&[String]>, delim: char) -> Result<Vec<Value>, String> {
    let mut rows = csv_rows(text, delim)?.into_iter();
    let headers: Vec<String> = match given {
        Some(h) => h.to_vec(),
        None => rows.next().ok_or("the file is empty: no header row")?,
    };
    let mut out = Vec::new();
    for (n, row) in rows.enumerate() {
        if row.len() != headers.len() {
            return Err(format!(
                "row {} has {} fields, the header {}",
                n + 1,
                row.len(),
                headers.len()
            ));
        }
        let mut m = Map::new();
        for (h, v) in headers.iter().zip(row) {
            m.insert(h.clone(), Value::String(v));
        }
        out.push(Value::Object(m));
    }
    Ok(out)
}

fn csv_rows(text: &str, delim: char) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            c if c == delim => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                if !(row.len() == 1 && row[0].is_empty()) {
                    rows.push(std::mem::take(&mut row));
                } else {
                    row.clear();
                }
                any = false;
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    if any {
        row.push(field);
        if !(row.len() == 1 && row[0].is_empty()) {
            rows.push(row);
        }
    }
    Ok(rows)
}

fn batch(
    b: &ItemBatcher,
    items: Vec<Value>,
    input: &Value,
    env: Env<'_>,
) -> Result<Vec<Value>, Failure> {
    let max_items = b
        .max_items
        .as_ref()
        .map(|c| resolve(c, input, env, "MaxItemsPerBatch", positive_int))
        .transpose()?
        .map_or(usize::MAX, |n| n as usize);
    let max_bytes = b
        .max_bytes
        .as_ref()
        .map(|c| resolve(c, input, env, "MaxInputBytesPerBatch", positive_int))
        .transpose()?
        .map_or(MAX_PAYLOAD_BYTES, |n| (n as usize).min(MAX_PAYLOAD_BYTES));
    let batch_input = b
        .batch_input
        .as_ref()
        .map(|t| t.eval(input, env).map_err(Failure::runtime))
        .transpose()?;
    let wrap = |items: Vec<Value>| {
        let mut m = Map::new();
        if let Some(bi) = &batch_input {
            m.insert("BatchInput".into(), bi.clone());
        }
        m.insert("Items".into(), Value::Array(items));
        Value::Object(m)
    };
    let size = |v: &Value| serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
    let base = size(&wrap(Vec::new()));
    let mut out = Vec::new();
    let mut cur: Vec<Value> = Vec::new();
    let mut cur_bytes = base;
    for (i, it) in items.into_iter().enumerate() {
        let n = size(&it);
        if base + n > max_bytes {
            return Err(Failure::runtime(format!(
                "item {i} makes a batch of {} bytes, more than MaxInputBytesPerBatch ({max_bytes})",
                base + n
            )));
        }
        let comma = usize::from(!cur.is_empty());
        if !cur.is_empty() && (cur.len() >= max_items || cur_bytes + comma + n > max_bytes) {
            out.push(wrap(std::mem::take(&mut cur)));
            cur_bytes = base;
        }
        cur_bytes += n + usize::from(!cur.is_empty());
        cur.push(it);
    }
    if !cur.is_empty() {
        out.push(wrap(cur));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_blank_lines() {
        let rows = csv_rows("a,b\n\"x, y\",\"he said \"\"hi\"\"\"\n\n1,2", ',').expect("csv");
        assert_eq!(
            rows,
            vec![
                vec!["a".to_owned(), "b".to_owned()],
                vec!["x, y".to_owned(), "he said \"hi\"".to_owned()],
                vec!["1".to_owned(), "2".to_owned()]
            ]
        );
        assert!(csv_rows("\"open", ',').is_err());
    }
}
