//! The interpreter: runs a checked [`Machine`] with a virtual clock (Waits and retry delays
//! advance it instead of sleeping), dispatching Task states to a [`TaskInvoker`], recording
//! the execution history under Step Functions event names, and enforcing the Standard
//! workflow limits (25,000 events, 256 KiB of state) so local runs fail where AWS would.

use crate::asl::{
    Assign, Catcher, Count, Io, Kind, Machine, ResultPath, Retrier, Rule, State, WaitFor,
};
use crate::jsonata::JTemplate;
use crate::objects::ObjectStore;
use crate::path::Env;
use async_trait::async_trait;
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Most events a Standard execution may record.
pub const MAX_HISTORY_EVENTS: usize = 25_000;
/// Largest state payload, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// Map concurrency when `MaxConcurrency` is 0 (what an inline Map runs at most on AWS).
pub const DEFAULT_MAP_CONCURRENCY: usize = 40;
/// A Distributed Map's concurrency when `MaxConcurrency` is 0 (AWS's default of 10,000
/// child executions at once).
pub const DEFAULT_DISTRIBUTED_CONCURRENCY: usize = 10_000;
/// Where a Distributed Map's child executions and results name their state machine.
pub(crate) const LOCAL_MACHINE_ARN: &str = "arn:aws:states:local:000000000000:stateMachine:local";

/// A task's failure: the error name ASL matches, and a cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// Error name (the handler's `error_type`).
    pub error: String,
    /// Human-readable cause.
    pub cause: String,
}

/// Runs Task states.
#[async_trait]
pub trait TaskInvoker: Send + Sync {
    /// Calls `resource` with `input`; `budget` is the time it may spend.
    async fn invoke(
        &self,
        resource: &str,
        input: Value,
        budget: Duration,
    ) -> Result<Value, TaskError>;
}

/// Sees every history event as it is recorded (to print transitions live).
pub trait Observer: Send + Sync {
    /// Called once per event, in order.
    fn event(&self, e: &HistoryEvent);
}

/// One history event, shaped like `GetExecutionHistory`'s.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEvent {
    /// 1-based id.
    pub id: u64,
    /// The id of the event before it in this branch.
    pub previous_event_id: u64,
    /// Virtual time, RFC 3339.
    pub timestamp: String,
    /// Step Functions event type, e.g. `TaskStateEntered`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Event details (`name`, `input`, `output`, `error`, `cause`, `resource`, `index`).
    pub details: Value,
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Reached a Succeed state or an End.
    Succeeded,
    /// Failed with an uncaught error.
    Failed,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Execution {
    /// Execution name.
    pub name: String,
    /// How it ended.
    pub status: Status,
    /// Final output, when it succeeded.
    pub output: Option<Value>,
    /// Error name, when it failed.
    pub error: Option<String>,
    /// Cause, when it failed.
    pub cause: Option<String>,
    /// The whole history.
    pub history: Vec<HistoryEvent>,
}

impl Execution {
    /// Names of the states entered, in order.
    pub fn states_entered(&self) -> Vec<String> {
        self.history
            .iter()
            .filter(|e| e.kind.ends_with("StateEntered"))
            .filter_map(|e| {
                e.details
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect()
    }
}

/// A state's failure: an error name and a cause.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) error: String,
    pub(crate) cause: String,
}

impl Failure {
    pub(crate) fn new(error: &str, cause: impl Into<String>) -> Self {
        Self {
            error: error.to_owned(),
            cause: cause.into(),
        }
    }
    pub(crate) fn runtime(cause: impl Into<String>) -> Self {
        Self::new("States.Runtime", cause)
    }
}

/// What every state of one execution shares: the handlers, the history, the clock.
pub(crate) struct Shared {
    pub(crate) invoker: Arc<dyn TaskInvoker>,
    pub(crate) observer: Option<Arc<dyn Observer>>,
    pub(crate) history: Mutex<Vec<HistoryEvent>>,
    pub(crate) started: std::time::Instant,
    pub(crate) start_time: OffsetDateTime,
    pub(crate) offset: Mutex<Duration>,
    pub(crate) exec_ctx: Value,
    pub(crate) task_budget: Duration,
    pub(crate) wait_scale: f64,
    pub(crate) objects: Option<Arc<dyn ObjectStore>>,
    /// State machines a `states:startExecution` task may start, by the ARN it names.
    pub(crate) machines: Arc<BTreeMap<String, Machine>>,
}

impl Shared {
    /// A child execution (a Distributed Map item, a started machine): the parent's
    /// invoker, clock, limits, buckets and machines, with a history and context of its own.
    pub(crate) fn child(&self, exec_ctx: Value) -> Arc<Shared> {
        Arc::new(Shared {
            invoker: self.invoker.clone(),
            observer: None,
            history: Mutex::new(Vec::new()),
            started: self.started,
            start_time: self.start_time,
            offset: Mutex::new(*self.offset.lock().unwrap_or_else(|p| p.into_inner())),
            exec_ctx,
            task_budget: self.task_budget,
            wait_scale: self.wait_scale,
            objects: self.objects.clone(),
            machines: self.machines.clone(),
        })
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        let off = *self.offset.lock().unwrap_or_else(|p| p.into_inner());
        self.start_time + self.started.elapsed() + off
    }

    /// Moves the virtual clock on by `d`. With a wait scale, also sleeps `d * scale` of
    /// real time, so work running beside the execution (a workload under a soak) gets
    /// real time to act while the history still shows the full wait.
    pub(crate) async fn advance(&self, d: Duration) {
        if self.wait_scale > 0.0 {
            let real = d.mul_f64(self.wait_scale);
            tokio::time::sleep(real).await;
            *self.offset.lock().unwrap_or_else(|p| p.into_inner()) += d.saturating_sub(real);
        } else {
            *self.offset.lock().unwrap_or_else(|p| p.into_inner()) += d;
        }
    }

    pub(crate) fn emit(&self, kind: &str, details: Value) -> Result<(), Failure> {
        let ts = self.now().format(&Rfc3339).unwrap_or_default();
        let ev = {
            let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            if h.len() >= MAX_HISTORY_EVENTS {
                return Err(Failure::runtime(format!(
                    "the execution exceeded {MAX_HISTORY_EVENTS} history events (the Standard workflow limit); loop less or use a continuation"
                )));
            }
            let id = h.len() as u64 + 1;
            let ev = HistoryEvent {
                id,
                previous_event_id: id - 1,
                timestamp: ts,
                kind: kind.to_owned(),
                details,
            };
            h.push(ev.clone());
            ev
        };
        if let Some(o) = &self.observer {
            o.event(&ev);
        }
        Ok(())
    }
}

/// Runs state machines locally.
#[derive(Clone)]
pub struct Simulator {
    invoker: Arc<dyn TaskInvoker>,
    observer: Option<Arc<dyn Observer>>,
    task_budget: Duration,
    wait_scale: f64,
    objects: Option<Arc<dyn ObjectStore>>,
    machines: BTreeMap<String, Machine>,
}

pub(crate) fn text(v: &Value) -> String {
    v.to_string()
}

fn check_size(state: &str, v: &Value) -> Result<(), Failure> {
    let n = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
    if n > MAX_PAYLOAD_BYTES {
        return Err(Failure::new(
            "States.DataLimitExceeded",
            format!("state {state} produced {n} bytes; the limit is {MAX_PAYLOAD_BYTES}"),
        ));
    }
    Ok(())
}

fn matches(list: &[String], error: &str) -> bool {
    list.iter().any(|e| {
        e == "States.ALL" || e == error || (e == "States.TaskFailed" && error != "States.Timeout")
    })
}

impl Simulator {
    /// A simulator dispatching tasks to `invoker`.
    pub fn new(invoker: Arc<dyn TaskInvoker>) -> Self {
        Self {
            invoker,
            observer: None,
            task_budget: Duration::from_secs(900),
            wait_scale: 0.0,
            objects: None,
            machines: BTreeMap::new(),
        }
    }

    /// A state machine that `arn:aws:states:::states:startExecution.sync` (and `.sync:2`)
    /// tasks start when their `StateMachineArn` is `arn` (as the definition names it, e.g.
    /// `${TenantBackupStateMachineArn}`); other ARNs fail with
    /// `StepFunctions.StateMachineDoesNotExistException`.
    pub fn with_machine(mut self, arn: impl Into<String>, machine: Machine) -> Self {
        self.machines.insert(arn.into(), machine);
        self
    }

    /// The S3 a Distributed Map's ItemReader reads and ResultWriter writes; without one,
    /// those fail with `States.ItemReaderFailed` / `States.ResultWriterFailed`.
    pub fn with_objects(mut self, objects: Arc<dyn ObjectStore>) -> Self {
        self.objects = Some(objects);
        self
    }

    /// Makes Waits and retry delays also pass in real time, scaled by `scale` (0 = purely
    /// virtual, the default; 0.1 = a 10 s soak takes 1 s).
    pub fn with_wait_scale(mut self, scale: f64) -> Self {
        self.wait_scale = if scale.is_finite() {
            scale.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Reports every event to `observer` as it happens.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The time budget handed to tasks without `TimeoutSeconds` (Lambda's 15 minutes by default).
    pub fn with_task_budget(mut self, d: Duration) -> Self {
        self.task_budget = d;
        self
    }

    /// Runs `machine` on `input` as execution `name`.
    pub async fn run(&self, machine: &Machine, name: &str, input: Value) -> Execution {
        let start_time = OffsetDateTime::now_utc();
        let shared = Arc::new(Shared {
            invoker: self.invoker.clone(),
            observer: self.observer.clone(),
            history: Mutex::new(Vec::new()),
            started: std::time::Instant::now(),
            start_time,
            offset: Mutex::new(Duration::ZERO),
            exec_ctx: json!({
                "Id": format!("arn:aws:states:local:000000000000:execution:local:{name}"),
                "Name": name,
                "Input": input.clone(),
                "StartTime": start_time.format(&Rfc3339).unwrap_or_default(),
            }),
            task_budget: self.task_budget,
            wait_scale: self.wait_scale,
            objects: self.objects.clone(),
            machines: Arc::new(self.machines.clone()),
        });
        let result = match shared.emit("ExecutionStarted", json!({"input": text(&input)})) {
            Ok(()) => {
                run_machine(
                    shared.clone(),
                    machine.clone(),
                    input,
                    None,
                    Arc::new(json!({})),
                )
                .await
            }
            Err(f) => Err(f),
        };
        let (status, output, error, cause) = match result {
            Ok(out) => {
                let _ = shared.emit("ExecutionSucceeded", json!({"output": text(&out)}));
                (Status::Succeeded, Some(out), None, None)
            }
            Err(f) => {
                // The history may be full; record the end regardless.
                let mut h = shared.history.lock().unwrap_or_else(|p| p.into_inner());
                let id = h.len() as u64 + 1;
                let ev = HistoryEvent {
                    id,
                    previous_event_id: id - 1,
                    timestamp: shared.now().format(&Rfc3339).unwrap_or_default(),
                    kind: "ExecutionFailed".into(),
                    details: {
                        let mut d = serde_json::Map::new();
                        if !f.error.is_empty() {
                            d.insert("error".into(), json!(f.error));
                        }
                        if !f.cause.is_empty() {
                            d.insert("cause".into(), json!(f.cause));
                        }
                        Value::Object(d)
                    },
                };
                if let Some(o) = &shared.observer {
                    o.event(&ev);
                }
                h.push(ev);
                (
                    Status::Failed,
                    None,
                    (!f.error.is_empty()).then_some(f.error),
                    (!f.cause.is_empty()).then_some(f.cause),
                )
            }
        };
        let history =
            std::mem::take(&mut *shared.history.lock().unwrap_or_else(|p| p.into_inner()));
        Execution {
            name: name.to_owned(),
            status,
            output,
            error,
            cause,
            history,
        }
    }
}

/// Runs a child execution from its start; it sees none of its parent's variables.
pub(crate) async fn run_execution(
    child: Arc<Shared>,
    machine: Machine,
    input: Value,
) -> Result<Value, Failure> {
    child.emit("ExecutionStarted", json!({"input": text(&input)}))?;
    run_machine(child, machine, input, None, Arc::new(json!({}))).await
}

pub(crate) fn run_machine(
    shared: Arc<Shared>,
    machine: Machine,
    input: Value,
    map_item: Option<Value>,
    vars: Arc<Value>,
) -> BoxFuture<'static, Result<Value, Failure>> {
    Box::pin(async move {
        let mut current = machine.start_at.clone();
        let mut data = input;
        // The variables of this scope: the outer scope's, read-only, plus this one's own.
        let mut vars: Value = (*vars).clone();
        loop {
            let state = machine
                .states
                .get(&current)
                .ok_or_else(|| Failure::runtime(format!("no state {current}")))?
                .clone();
            let ty = type_name(&state.kind);
            shared.emit(
                &format!("{ty}StateEntered"),
                json!({"name": state.name, "input": text(&data)}),
            )?;
            let ctx = json!({
                "Execution": shared.exec_ctx,
                "State": {"Name": state.name, "EnteredTime": shared.now().format(&Rfc3339).unwrap_or_default(), "RetryCount": 0},
                "StateMachine": {"Id": LOCAL_MACHINE_ARN, "Name": "local"},
                "Map": map_item.clone().map(|item| json!({"Item": item})).unwrap_or(Value::Null),
            });
            let env = Env {
                ctx: &ctx,
                vars: &vars,
            };
            let stepped = match state.jsonata.as_deref() {
                Some(j) => step_jsonata(&shared, &state, j, data.clone(), env).await,
                None => step(&shared, &state, data.clone(), env).await,
            };
            let (out, next, assigned) = match stepped {
                Ok(x) => x,
                Err(f) if f.error == "States.Runtime" && f.cause.contains("history events") => {
                    return Err(f);
                }
                Err(f) => {
                    let Some(c) = catcher(&state, &f) else {
                        return Err(f);
                    };
                    let err_obj = json!({"Error": f.error, "Cause": f.cause});
                    let assigned = match &c.assign {
                        None => None,
                        Some(Assign::Path(t)) => {
                            Some(t.eval(&err_obj, env).map_err(Failure::runtime)?)
                        }
                        Some(Assign::Jsonata(t)) => {
                            let st = json!({"input": data, "context": ctx, "errorOutput": err_obj});
                            Some(jeval(t, &st, env)?)
                        }
                    };
                    data = if state.jsonata.is_some() {
                        match &c.output {
                            Some(t) => {
                                let st =
                                    json!({"input": data, "context": ctx, "errorOutput": err_obj});
                                jeval(t, &st, env)?
                            }
                            None => err_obj,
                        }
                    } else {
                        apply_result_path(&c.result_path, data, err_obj)?
                    };
                    merge(&mut vars, assigned);
                    shared.emit(
                        &format!("{ty}StateExited"),
                        json!({"name": state.name, "output": text(&data), "caught": f.error}),
                    )?;
                    current = c.next.clone();
                    continue;
                }
            };
            check_size(&state.name, &out)?;
            if !matches!(state.kind, Kind::Fail { .. }) {
                shared.emit(
                    &format!("{ty}StateExited"),
                    json!({"name": state.name, "output": text(&out)}),
                )?;
            }
            merge(&mut vars, assigned.map(Value::Object));
            match next {
                Some(n) => {
                    current = n;
                    data = out;
                }
                None => return Ok(out),
            }
        }
    })
}

/// Sets the variables a state assigned (all evaluated against the values at its entry).
fn merge(vars: &mut Value, assigned: Option<Value>) {
    if let (Value::Object(v), Some(Value::Object(a))) = (vars, assigned) {
        v.extend(a);
    }
}

/// Evaluates a JSONata template with `$states` and the variables in scope; a failure is
/// `States.QueryEvaluationError`, as on AWS.
pub(crate) fn jeval(t: &JTemplate, states: &Value, env: Env<'_>) -> Result<Value, Failure> {
    let look = |n: &str| {
        if n == "states" {
            Some(states.clone())
        } else {
            env.vars.get(n).cloned()
        }
    };
    t.eval(&look)
        .map_err(|m| Failure::new("States.QueryEvaluationError", m))
}

/// A JSONPath state's `Assign`, with `$` the value AWS gives it.
fn path_assign(
    a: &Option<Assign>,
    dollar: &Value,
    env: Env<'_>,
) -> Result<Option<Map<String, Value>>, Failure> {
    match a {
        Some(Assign::Path(t)) => match t.eval(dollar, env).map_err(Failure::runtime)? {
            Value::Object(m) => Ok(Some(m)),
            _ => Ok(None),
        },
        Some(Assign::Jsonata(t)) => match jeval(t, &json!({"input": dollar}), env)? {
            Value::Object(m) => Ok(Some(m)),
            _ => Ok(None),
        },
        None => Ok(None),
    }
}

/// What a state did: its output, the next state, the variables it assigned.
type Stepped = (Value, Option<String>, Option<Map<String, Value>>);

/// Runs one JSONata state: `$states.input` is its input, `Arguments` its payload,
/// `$states.result` the work's result, `Output` its output (default: the result for
/// Task, Parallel and Map, the input otherwise), `Assign` its variables.
async fn step_jsonata(
    shared: &Arc<Shared>,
    state: &State,
    j: &crate::asl::JsonataIo,
    raw: Value,
    env: Env<'_>,
) -> Result<Stepped, Failure> {
    let mut states = json!({"input": raw, "context": env.ctx});
    let (mut output_t, mut assign_t, mut next) = (&j.output, &state.assign, state.next.clone());
    let mut default = raw.clone();
    match &state.kind {
        Kind::Pass { .. } => {}
        Kind::Succeed => next = None,
        Kind::Fail { error, cause, .. } => {
            return Err(Failure::new(
                error.as_deref().unwrap_or_default(),
                cause.clone().unwrap_or_default(),
            ));
        }
        Kind::Wait(w) => {
            let secs = match w {
                WaitFor::Seconds(s) => *s as f64,
                WaitFor::Timestamp(t) => until(shared, t)?,
                _ => {
                    return Err(Failure::runtime(
                        "a JSONata Wait takes Seconds or Timestamp",
                    ));
                }
            };
            shared.advance(Duration::from_secs_f64(secs.max(0.0))).await;
        }
        Kind::Choice {
            choices,
            default: dflt,
        } => {
            let mut taken = None;
            for c in choices {
                let Rule::Condition(t) = &c.rule else {
                    return Err(Failure::runtime("a JSONata choice rule needs a Condition"));
                };
                match jeval(t, &states, env)? {
                    Value::Bool(true) => {
                        taken = Some(c);
                        break;
                    }
                    Value::Bool(false) => {}
                    other => {
                        return Err(Failure::new(
                            "States.QueryEvaluationError",
                            format!(
                                "the Condition of a rule of {} is {other}, not a boolean",
                                state.name
                            ),
                        ));
                    }
                }
            }
            match (taken, dflt) {
                (Some(c), _) => {
                    next = Some(c.next.clone());
                    if c.output.is_some() {
                        output_t = &c.output;
                    }
                    assign_t = &c.assign;
                }
                (None, Some(d)) => next = Some(d.clone()),
                (None, None) => {
                    return Err(Failure::new(
                        "States.NoChoiceMatched",
                        format!("no choice of {} matched", state.name),
                    ));
                }
            }
        }
        Kind::Task { .. } | Kind::Parallel { .. } | Kind::Map(_) => {
            let timeout = match timeout_of(&state.kind) {
                Some(Count::Fixed(t)) => Some(*t as u64),
                _ => None,
            };
            let params = match &j.arguments {
                Some(t) => jeval(t, &states, env)?,
                None => raw.clone(),
            };
            let result = with_retries(shared, state, &params, env, timeout).await?;
            states["result"] = result.clone();
            default = result;
        }
    }
    let out = match output_t {
        Some(t) => jeval(t, &states, env)?,
        None => default,
    };
    let assigned = match assign_t {
        Some(Assign::Jsonata(t)) => match jeval(t, &states, env)? {
            Value::Object(m) => Some(m),
            _ => None,
        },
        _ => None,
    };
    Ok((out, next, assigned))
}

fn timeout_of(k: &Kind) -> Option<&Count> {
    match k {
        Kind::Task { timeout, .. } => timeout.as_ref(),
        _ => None,
    }
}

fn catcher<'a>(state: &'a State, f: &Failure) -> Option<&'a Catcher> {
    if matches!(state.kind, Kind::Fail { .. }) {
        return None;
    }
    state.catch.iter().find(|c| matches(&c.errors, &f.error))
}

fn type_name(k: &Kind) -> &'static str {
    match k {
        Kind::Pass { .. } => "Pass",
        Kind::Task { .. } => "Task",
        Kind::Choice { .. } => "Choice",
        Kind::Wait(_) => "Wait",
        Kind::Succeed => "Succeed",
        Kind::Fail { .. } => "Fail",
        Kind::Parallel { .. } => "Parallel",
        Kind::Map(_) => "Map",
    }
}

fn apply_input(io: &Io, raw: &Value, env: Env<'_>) -> Result<Value, Failure> {
    match &io.input_path {
        None => Ok(json!({})),
        Some(p) => p
            .value(raw, env)
            .ok_or_else(|| Failure::runtime(format!("InputPath {p} matched nothing in the input"))),
    }
}

fn apply_result_path(rp: &ResultPath, raw: Value, result: Value) -> Result<Value, Failure> {
    match rp {
        ResultPath::Discard => Ok(raw),
        ResultPath::At(p) => p.set(raw, result).map_err(Failure::runtime),
    }
}

fn apply_output(io: &Io, v: Value, env: Env<'_>) -> Result<Value, Failure> {
    match &io.output_path {
        None => Ok(json!({})),
        Some(p) => p
            .value(&v, env)
            .ok_or_else(|| Failure::runtime(format!("OutputPath {p} matched nothing"))),
    }
}

/// A number from the definition or read from the effective input, checked as the field
/// requires; a path to anything else is `States.Runtime`.
pub(crate) fn resolve(
    c: &Count,
    input: &Value,
    env: Env<'_>,
    what: &str,
    check: fn(f64) -> Result<(), String>,
) -> Result<f64, Failure> {
    match c {
        Count::Fixed(n) => Ok(*n),
        Count::Path(p) => {
            let v = p.value(input, env).ok_or_else(|| {
                Failure::runtime(format!("{what}Path {p} matched nothing in the input"))
            })?;
            let n = v
                .as_f64()
                .ok_or_else(|| Failure::runtime(format!("{what}Path {p} is {v}, not a number")))?;
            check(n).map_err(|m| Failure::runtime(format!("{what}Path {p} {m}")))?;
            Ok(n)
        }
    }
}

/// Runs one state; returns its output and the next state (`None` when the machine ends).
async fn step(
    shared: &Arc<Shared>,
    state: &State,
    raw: Value,
    env: Env<'_>,
) -> Result<Stepped, Failure> {
    let io = &state.io;
    let effective = apply_input(io, &raw, env)?;
    match &state.kind {
        Kind::Choice { choices, default } => {
            for c in choices {
                if eval_rule(&c.rule, &effective, env)? {
                    let a = path_assign(&c.assign, &effective, env)?;
                    return Ok((apply_output(io, effective, env)?, Some(c.next.clone()), a));
                }
            }
            match default {
                Some(d) => {
                    let a = path_assign(&state.assign, &effective, env)?;
                    Ok((apply_output(io, effective, env)?, Some(d.clone()), a))
                }
                None => Err(Failure::new(
                    "States.NoChoiceMatched",
                    format!("no choice of {} matched", state.name),
                )),
            }
        }
        Kind::Succeed => Ok((apply_output(io, effective, env)?, None, None)),
        // AWS records only what the state names: no Error, no Cause, is neither.
        Kind::Fail {
            error,
            cause,
            error_path,
            cause_path,
        } => {
            let resolve = |t: &Option<crate::template::Template>,
                           what: &str|
             -> Result<Option<String>, Failure> {
                let Some(t) = t else { return Ok(None) };
                let v = t.eval(&effective, env).map_err(Failure::runtime)?;
                match v.get("v") {
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    other => Err(Failure::runtime(format!(
                        "{what} of {} is not a string: {other:?}",
                        state.name
                    ))),
                }
            };
            let error = match resolve(error_path, "ErrorPath")? {
                Some(e) => e,
                None => error.clone().unwrap_or_default(),
            };
            let cause = match resolve(cause_path, "CausePath")? {
                Some(c) => c,
                None => cause.clone().unwrap_or_default(),
            };
            Err(Failure::new(&error, cause))
        }
        Kind::Wait(w) => {
            let secs = match w {
                WaitFor::Seconds(s) => *s as f64,
                WaitFor::SecondsPath(p) => p
                    .value(&effective, env)
                    .and_then(|v| v.as_u64())
                    .ok_or_else(|| {
                        Failure::runtime(format!("SecondsPath {p} is not a non-negative integer"))
                    })? as f64,
                WaitFor::Timestamp(t) => until(shared, t)?,
                WaitFor::TimestampPath(p) => {
                    let t = p
                        .value(&effective, env)
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .ok_or_else(|| {
                            Failure::runtime(format!("TimestampPath {p} is not a string"))
                        })?;
                    until(shared, &t)?
                }
            };
            shared.advance(Duration::from_secs_f64(secs.max(0.0))).await;
            let a = path_assign(&state.assign, &effective, env)?;
            Ok((apply_output(io, effective, env)?, state.next.clone(), a))
        }
        Kind::Pass { result } => {
            let res = match (result, &io.parameters) {
                (Some(r), _) => r.clone(),
                (None, Some(t)) => t.eval(&effective, env).map_err(Failure::runtime)?,
                (None, None) => effective,
            };
            let a = path_assign(&state.assign, &res, env)?;
            let merged = apply_result_path(&io.result_path, raw, res)?;
            Ok((apply_output(io, merged, env)?, state.next.clone(), a))
        }
        Kind::Task { .. } | Kind::Parallel { .. } | Kind::Map(_) => {
            let mut timeout = None;
            if let Kind::Task {
                timeout: t,
                heartbeat,
                ..
            } = &state.kind
            {
                let t = t
                    .as_ref()
                    .map(|c| {
                        resolve(
                            c,
                            &effective,
                            env,
                            "TimeoutSeconds",
                            crate::asl::positive_int,
                        )
                    })
                    .transpose()?;
                let h = heartbeat
                    .as_ref()
                    .map(|c| {
                        resolve(
                            c,
                            &effective,
                            env,
                            "HeartbeatSeconds",
                            crate::asl::positive_int,
                        )
                    })
                    .transpose()?;
                if let (Some(t), Some(h)) = (t, h)
                    && h >= t
                {
                    return Err(Failure::runtime(format!(
                        "HeartbeatSeconds ({h}) of {} must be smaller than TimeoutSeconds ({t})",
                        state.name
                    )));
                }
                timeout = t.map(|t| t as u64);
            }
            let params = match (&io.parameters, &state.kind) {
                (Some(t), Kind::Task { .. } | Kind::Parallel { .. }) => {
                    t.eval(&effective, env).map_err(Failure::runtime)?
                }
                _ => effective,
            };
            let result = with_retries(shared, state, &params, env, timeout).await?;
            let selected = match &io.result_selector {
                Some(t) => t.eval(&result, env).map_err(Failure::runtime)?,
                None => result,
            };
            let a = path_assign(&state.assign, &selected, env)?;
            let merged = apply_result_path(&io.result_path, raw, selected)?;
            Ok((apply_output(io, merged, env)?, state.next.clone(), a))
        }
    }
}

/// A timestamp as AWS takes it: RFC 3339 with an upper-case `T` between date and time
/// and a zone (`Z` or an offset); the `time` crate alone would also take a space.
pub(crate) fn timestamp(t: &str) -> Option<OffsetDateTime> {
    let b = t.as_bytes();
    let zoned = t.ends_with('Z') || (b.len() > 6 && matches!(b[b.len() - 6], b'+' | b'-'));
    if b.get(10) != Some(&b'T') || !zoned {
        return None;
    }
    OffsetDateTime::parse(t, &Rfc3339).ok()
}

fn until(shared: &Shared, t: &str) -> Result<f64, Failure> {
    let at = timestamp(t).ok_or_else(|| {
        Failure::runtime(format!(
            "timestamp {t:?} is not RFC 3339 with a T and a zone"
        ))
    })?;
    Ok((at - shared.now()).as_seconds_f64().max(0.0))
}

async fn with_retries(
    shared: &Arc<Shared>,
    state: &State,
    params: &Value,
    env: Env<'_>,
    timeout: Option<u64>,
) -> Result<Value, Failure> {
    let mut counts = vec![0u32; state.retry.len()];
    loop {
        match work(shared, state, params.clone(), env, timeout).await {
            Ok(v) => return Ok(v),
            Err(f) if f.error == "States.Runtime" && f.cause.contains("history events") => {
                return Err(f);
            }
            Err(f) => {
                let Some((i, r)) = state
                    .retry
                    .iter()
                    .enumerate()
                    .find(|(_, r)| matches(&r.errors, &f.error))
                else {
                    return Err(f);
                };
                if counts[i] >= r.max_attempts {
                    return Err(f);
                }
                counts[i] += 1;
                shared.advance(delay(r, counts[i])).await;
            }
        }
    }
}

fn delay(r: &Retrier, attempt: u32) -> Duration {
    let d = r.interval * r.backoff_rate.powi(attempt.saturating_sub(1) as i32);
    Duration::from_secs_f64(r.max_delay.map_or(d, |m| d.min(m)).min(86_400.0))
}

async fn work(
    shared: &Arc<Shared>,
    state: &State,
    input: Value,
    env: Env<'_>,
    timeout: Option<u64>,
) -> Result<Value, Failure> {
    match &state.kind {
        Kind::Task { resource, .. } if crate::nested::mode(resource).is_some() => {
            crate::nested::start(shared, state, resource, input, timeout).await
        }
        Kind::Task { resource, .. } => {
            let budget = timeout
                .map(Duration::from_secs)
                .unwrap_or(shared.task_budget);
            shared.emit(
                "LambdaFunctionScheduled",
                json!({"resource": resource, "input": text(&input)}),
            )?;
            shared.emit("LambdaFunctionStarted", json!({}))?;
            let call = shared.invoker.invoke(resource, input, budget);
            let res = match timeout {
                Some(t) => match tokio::time::timeout(Duration::from_secs(t), call).await {
                    Ok(r) => r,
                    Err(_) => {
                        shared
                            .emit("LambdaFunctionTimedOut", json!({"error": "States.Timeout"}))?;
                        return Err(Failure::new(
                            "States.Timeout",
                            format!("{} ran longer than {t}s", state.name),
                        ));
                    }
                },
                None => call.await,
            };
            match res {
                Ok(out) => {
                    shared.emit("LambdaFunctionSucceeded", json!({"output": text(&out)}))?;
                    Ok(out)
                }
                Err(e) => {
                    shared.emit(
                        "LambdaFunctionFailed",
                        json!({"error": e.error, "cause": e.cause}),
                    )?;
                    Err(Failure::new(&e.error, e.cause))
                }
            }
        }
        Kind::Parallel { branches } => {
            shared.emit("ParallelStateStarted", json!({}))?;
            let vars = Arc::new(env.vars.clone());
            let runs = branches
                .iter()
                .map(|b| run_machine(shared.clone(), b.clone(), input.clone(), None, vars.clone()));
            let results = futures::future::join_all(runs).await;
            let mut out = Vec::new();
            for r in results {
                match r {
                    Ok(v) => out.push(v),
                    Err(f) => {
                        shared.emit(
                            "ParallelStateFailed",
                            json!({"error": f.error, "cause": f.cause}),
                        )?;
                        return Err(f);
                    }
                }
            }
            shared.emit("ParallelStateSucceeded", json!({}))?;
            Ok(Value::Array(out))
        }
        Kind::Map(spec) => crate::map::run(shared, state, spec, input, env).await,
        _ => Err(Failure::runtime("not a working state")),
    }
}

fn eval_rule(rule: &Rule, data: &Value, ctx: Env<'_>) -> Result<bool, Failure> {
    match rule {
        Rule::Condition(_) => Err(Failure::runtime("a Condition needs a JSONata state")),
        Rule::And(rs) => {
            for r in rs {
                if !eval_rule(r, data, ctx)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Rule::Or(rs) => {
            for r in rs {
                if eval_rule(r, data, ctx)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Rule::Not(r) => Ok(!eval_rule(r, data, ctx)?),
        Rule::Cmp { var, op, lit, path } => {
            let v = var.get(data, ctx);
            let v = v.as_deref();
            if op == "IsPresent" {
                return Ok(v.is_some() == (lit == &Value::Bool(true)));
            }
            let Some(v) = v else {
                return Err(Failure::runtime(format!(
                    "Choice Variable {var} matched nothing"
                )));
            };
            let want = |b: bool| Ok(b == (lit == &Value::Bool(true)));
            match op.as_str() {
                "IsNull" => return want(v.is_null()),
                "IsNumeric" => return want(v.is_number()),
                "IsString" => return want(v.is_string()),
                "IsBoolean" => return want(v.is_boolean()),
                "IsTimestamp" => {
                    return want(v.as_str().is_some_and(|s| timestamp(s).is_some()));
                }
                _ => {}
            }
            let other = match path {
                Some(p) => p
                    .value(data, ctx)
                    .ok_or_else(|| Failure::runtime(format!("{op}Path {p} matched nothing")))?,
                None => lit.clone(),
            };
            Ok(compare(op, v, &other))
        }
    }
}

fn compare(op: &str, v: &Value, o: &Value) -> bool {
    use std::cmp::Ordering::*;
    let ord = |a: Option<std::cmp::Ordering>, suffix: &str| {
        matches!(
            (a, suffix),
            (
                Some(Equal),
                "Equals" | "LessThanEquals" | "GreaterThanEquals"
            ) | (Some(Less), "LessThan" | "LessThanEquals")
                | (Some(Greater), "GreaterThan" | "GreaterThanEquals")
        )
    };
    if let Some(s) = op.strip_prefix("String") {
        if s == "Matches" {
            return match (v.as_str(), o.as_str()) {
                (Some(a), Some(p)) => glob(a, p),
                _ => false,
            };
        }
        return match (v.as_str(), o.as_str()) {
            (Some(a), Some(b)) => ord(Some(a.cmp(b)), s),
            _ => false,
        };
    }
    if let Some(s) = op.strip_prefix("Numeric") {
        return match (v.as_f64(), o.as_f64()) {
            (Some(a), Some(b)) => ord(a.partial_cmp(&b), s),
            _ => false,
        };
    }
    if let Some(s) = op.strip_prefix("Timestamp") {
        let p = |x: &Value| x.as_str().and_then(timestamp);
        return match (p(v), p(o)) {
            (Some(a), Some(b)) => ord(Some(a.cmp(&b)), s),
            _ => false,
        };
    }
    if op == "BooleanEquals" {
        return v.as_bool().is_some() && v.as_bool() == o.as_bool();
    }
    false
}

/// `StringMatches`: `*` matches any run of characters; `\*` is a literal star.
fn glob(s: &str, p: &str) -> bool {
    let (s, p): (Vec<char>, Vec<char>) = (s.chars().collect(), p.chars().collect());
    fn go(s: &[char], p: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('*') => (0..=s.len()).any(|i| go(&s[i..], &p[1..])),
            Some('\\') if p.get(1) == Some(&'*') => s.first() == Some(&'*') && go(&s[1..], &p[2..]),
            Some(c) => s.first() == Some(c) && go(&s[1..], &p[1..]),
        }
    }
    go(&s, &p)
}
