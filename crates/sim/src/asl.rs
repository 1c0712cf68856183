//! Loading an ASL definition into a checked model. Anything the simulator cannot run is
//! refused here, naming the state and the feature, before any state executes.

use crate::jsonata::{JTemplate, expression};
use crate::path::{Path, is_var_name};
use crate::template::Template;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

/// Why a definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state {state:?}: {message}")]
pub struct LoadError {
    /// The state (or `<top>` for the machine itself).
    pub state: String,
    /// What is wrong or unsupported.
    pub message: String,
}

/// A checked state machine (or Map processor, or Parallel branch).
#[derive(Debug, Clone)]
pub struct Machine {
    /// First state.
    pub start_at: String,
    /// States by name.
    pub states: HashMap<String, State>,
}

/// Where a state's result goes.
#[derive(Debug, Clone)]
pub enum ResultPath {
    /// Into the input at a path (`$` replaces it).
    At(Path),
    /// Discarded: the output is the input (`"ResultPath": null`).
    Discard,
}

/// A state's input/output processing.
#[derive(Debug, Clone)]
pub struct Io {
    /// `InputPath`; `None` means `null` (the input becomes `{}`).
    pub input_path: Option<Path>,
    /// `Parameters` (or `ItemSelector` for Map items).
    pub parameters: Option<Template>,
    /// `ResultSelector`.
    pub result_selector: Option<Template>,
    /// `ResultPath`.
    pub result_path: ResultPath,
    /// `OutputPath`; `None` means `null`.
    pub output_path: Option<Path>,
}

/// One `Retry` rule.
#[derive(Debug, Clone)]
pub struct Retrier {
    /// Error names matched.
    pub errors: Vec<String>,
    /// First delay, seconds.
    pub interval: f64,
    /// Attempts after the first.
    pub max_attempts: u32,
    /// Multiplier per attempt.
    pub backoff_rate: f64,
    /// Delay cap, seconds.
    pub max_delay: Option<f64>,
}

/// One `Catch` rule.
#[derive(Debug, Clone)]
pub struct Catcher {
    /// Error names matched.
    pub errors: Vec<String>,
    /// State to go to.
    pub next: String,
    /// Where the error object goes.
    pub result_path: ResultPath,
    /// `Assign` when it catches (`$` or `$states.errorOutput` is the error object).
    pub assign: Option<Assign>,
    /// JSONata `Output` when it catches (default: the error object).
    pub output: Option<JTemplate>,
}

/// A state's `Assign`: variables set when it leaves.
#[derive(Debug, Clone)]
pub enum Assign {
    /// JSONPath: literals and `name.$` paths or intrinsics.
    Path(Template),
    /// JSONata: literals and `{% %}` expressions.
    Jsonata(JTemplate),
}

/// The query language of a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// `JSONPath` (the default).
    JsonPath,
    /// `JSONata`.
    Jsonata,
}

/// A JSONata state's fields.
#[derive(Debug, Clone, Default)]
pub struct JsonataIo {
    /// `Arguments` (Task, Parallel): the payload; default the state's input.
    pub arguments: Option<JTemplate>,
    /// `Output`: the state's output.
    pub output: Option<JTemplate>,
    /// `Items` (Map): the items; default the state's input.
    pub items: Option<JTemplate>,
    /// `ItemSelector` (Map): each item's input.
    pub item_selector: Option<JTemplate>,
}

/// One rule of a Choice state.
#[derive(Debug, Clone)]
pub struct Choice {
    /// The rule.
    pub rule: Rule,
    /// Where it goes.
    pub next: String,
    /// Variables it sets when taken.
    pub assign: Option<Assign>,
    /// JSONata `Output` when taken.
    pub output: Option<JTemplate>,
}

/// A Choice rule.
#[derive(Debug, Clone)]
pub enum Rule {
    /// A JSONata `Condition`.
    Condition(JTemplate),
    /// All must hold.
    And(Vec<Rule>),
    /// One must hold.
    Or(Vec<Rule>),
    /// Must not hold.
    Not(Box<Rule>),
    /// `Variable` compared by `op` with a literal or, for `...Path` operators, a path.
    Cmp {
        /// The variable.
        var: Path,
        /// Operator name without the `Path` suffix.
        op: String,
        /// Literal operand.
        lit: Value,
        /// Path operand.
        path: Option<Path>,
    },
}

/// How long a Wait waits.
#[derive(Debug, Clone)]
pub enum WaitFor {
    /// Fixed seconds.
    Seconds(u64),
    /// Seconds read from a path.
    SecondsPath(Path),
    /// Until a fixed timestamp.
    Timestamp(String),
    /// Until a timestamp read from a path.
    TimestampPath(Path),
}

/// What a state does.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Passes input (or `Result`) on.
    Pass {
        /// Fixed result.
        result: Option<Value>,
    },
    /// Calls a handler.
    Task {
        /// The resource (a `${...FunctionArn}` placeholder or an ARN).
        resource: String,
        /// Time limit, seconds (`TimeoutSeconds` or `TimeoutSecondsPath`).
        timeout: Option<Count>,
        /// Heartbeat interval, seconds (`HeartbeatSeconds` or `HeartbeatSecondsPath`); checked,
        /// not enforced: a Lambda invocation sends no heartbeats.
        heartbeat: Option<Count>,
    },
    /// Branches on rules.
    Choice {
        /// Rules with their targets.
        choices: Vec<Choice>,
        /// Target when none matches.
        default: Option<String>,
    },
    /// Waits on the virtual clock.
    Wait(WaitFor),
    /// Ends successfully.
    Succeed,
    /// Ends in failure.
    Fail {
        /// Error name.
        error: Option<String>,
        /// Cause.
        cause: Option<String>,
        /// `ErrorPath`: a path or an intrinsic function giving the error name at run time.
        error_path: Option<Template>,
        /// `CausePath`: a path or an intrinsic function giving the cause at run time.
        cause_path: Option<Template>,
    },
    /// Runs branches concurrently.
    Parallel {
        /// The branches.
        branches: Vec<Machine>,
    },
    /// Runs a processor per item.
    Map(Box<MapSpec>),
}

/// A number fixed in the definition or read from the state's input at run time.
#[derive(Debug, Clone)]
pub enum Count {
    /// A literal.
    Fixed(f64),
    /// A reference path (`...Path` fields).
    Path(Path),
}

/// What a Map state does.
#[derive(Debug, Clone)]
pub struct MapSpec {
    /// Where the items are (when no ItemReader).
    pub items_path: Path,
    /// Per-item input.
    pub item_selector: Option<Template>,
    /// The processor.
    pub processor: Machine,
    /// Concurrency bound (`None` or 0: 40 inline, 10,000 distributed, as on AWS).
    pub max_concurrency: Option<Count>,
    /// `ProcessorConfig.Mode` is `DISTRIBUTED`: children are executions of their own.
    pub distributed: bool,
    /// `ToleratedFailureCount` (or its Path form).
    pub tolerated_count: Option<Count>,
    /// `ToleratedFailurePercentage` (or its Path form).
    pub tolerated_percentage: Option<Count>,
    /// `ItemReader`: items read from S3.
    pub reader: Option<ItemReader>,
    /// `ItemBatcher`: items grouped into batches.
    pub batcher: Option<ItemBatcher>,
    /// `ResultWriter`: results written to S3.
    pub writer: Option<ResultWriter>,
}

/// What an ItemReader reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderSource {
    /// `arn:aws:states:::s3:listObjectsV2`: one item per object under a prefix.
    ListObjects,
    /// `arn:aws:states:::s3:getObject` with `InputType` JSON: the array in the object.
    Json,
    /// `arn:aws:states:::s3:getObject` with `InputType` JSONL: one item per line.
    JsonLines,
    /// `arn:aws:states:::s3:getObject` with `InputType` CSV: one object per row.
    Csv {
        /// Column names (`GIVEN`), or `None` to take the first row (`FIRST_ROW`).
        headers: Option<Vec<String>>,
        /// The delimiter.
        delimiter: char,
    },
}

/// A Distributed Map's `ItemReader`.
#[derive(Debug, Clone)]
pub struct ItemReader {
    /// What it reads.
    pub source: ReaderSource,
    /// `Parameters` (Bucket, Prefix or Key), evaluated on the effective input.
    pub parameters: Template,
    /// `ReaderConfig.MaxItems` (or `MaxItemsPath`).
    pub max_items: Option<Count>,
}

/// A Distributed Map's `ItemBatcher`.
#[derive(Debug, Clone)]
pub struct ItemBatcher {
    /// `MaxItemsPerBatch` (or its Path form).
    pub max_items: Option<Count>,
    /// `MaxInputBytesPerBatch` (or its Path form).
    pub max_bytes: Option<Count>,
    /// `BatchInput`, evaluated on the effective input, given to every batch.
    pub batch_input: Option<Template>,
}

/// A Distributed Map's `ResultWriter`.
#[derive(Debug, Clone)]
pub struct ResultWriter {
    /// `Parameters` (Bucket, Prefix), evaluated on the effective input.
    pub parameters: Template,
}

/// One checked state.
#[derive(Debug, Clone)]
pub struct State {
    /// Its name.
    pub name: String,
    /// Its type and settings.
    pub kind: Kind,
    /// Input/output processing.
    pub io: Io,
    /// Next state, unless it ends.
    pub next: Option<String>,
    /// Retry rules.
    pub retry: Vec<Retrier>,
    /// Catch rules.
    pub catch: Vec<Catcher>,
    /// `Assign` (for a Choice, applied when the Default is taken).
    pub assign: Option<Assign>,
    /// Set when the state uses JSONata (its I/O fields replace the JSONPath ones).
    pub jsonata: Option<Box<JsonataIo>>,
}

/// What loading a machine needs to know of where it is.
#[derive(Debug, Clone)]
struct Scope {
    /// The language states default to.
    lang: Lang,
    /// Variables of the enclosing scopes (which this one may read, not assign).
    outer: BTreeSet<String>,
}

const COMMON: &[&str] = &["Type", "Comment"];
const FLOW: &[&str] = &["Next", "End"];
const IO: &[&str] = &["InputPath", "OutputPath"];

fn allowed(ty: &str) -> Option<Vec<&'static str>> {
    let mut v: Vec<&str> = COMMON.to_vec();
    match ty {
        "Pass" => {
            v.extend(
                FLOW.iter()
                    .chain(IO)
                    .chain(&["Parameters", "Result", "ResultPath", "Assign"]),
            )
        }
        "Task" => v.extend(FLOW.iter().chain(IO).chain(&[
            "Resource",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "TimeoutSeconds",
            "HeartbeatSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSecondsPath",
            "Assign",
        ])),
        "Choice" => v.extend(IO.iter().chain(&["Choices", "Default", "Assign"])),
        "Wait" => v.extend(FLOW.iter().chain(IO).chain(&[
            "Assign",
            "Seconds",
            "SecondsPath",
            "Timestamp",
            "TimestampPath",
        ])),
        "Succeed" => v.extend(IO),
        "Fail" => v.extend(["Error", "Cause", "ErrorPath", "CausePath"]),
        "Parallel" => v.extend(FLOW.iter().chain(IO).chain(&[
            "Branches",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Assign",
        ])),
        "Map" => v.extend(FLOW.iter().chain(IO).chain(&[
            "ItemsPath",
            "ItemSelector",
            "Parameters",
            "ItemProcessor",
            "Iterator",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
            "Label",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "ToleratedFailurePercentage",
            "ToleratedFailureCount",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCountPath",
            "Assign",
        ])),
        _ => return None,
    }
    v.push("QueryLanguage");
    Some(v)
}

/// The fields of a JSONata state of type `ty`.
fn allowed_jsonata(ty: &str) -> Option<Vec<&'static str>> {
    let mut v: Vec<&str> = vec!["Type", "Comment", "QueryLanguage"];
    if !matches!(ty, "Fail") {
        v.push("Output");
    }
    if !matches!(ty, "Succeed" | "Fail") {
        v.push("Assign");
    }
    if !matches!(ty, "Choice" | "Succeed" | "Fail") {
        v.extend(FLOW);
    }
    v.extend(match ty {
        "Pass" | "Succeed" => &[][..],
        "Task" => &[
            "Resource",
            "Arguments",
            "Retry",
            "Catch",
            "TimeoutSeconds",
            "HeartbeatSeconds",
        ][..],
        "Choice" => &["Choices", "Default"][..],
        "Wait" => &["Seconds", "Timestamp"][..],
        "Fail" => &["Error", "Cause"][..],
        "Parallel" => &["Branches", "Arguments", "Retry", "Catch"][..],
        "Map" => &[
            "ItemProcessor",
            "Items",
            "ItemSelector",
            "MaxConcurrency",
            "Retry",
            "Catch",
            "Label",
            "ItemBatcher",
            "ToleratedFailurePercentage",
            "ToleratedFailureCount",
        ][..],
        _ => return None,
    });
    Some(v)
}

/// Features of real Step Functions the simulator refuses, with the reason shown to users.
fn unsupported(field: &str) -> Option<&'static str> {
    Some(match field {
        "Credentials" => "Task Credentials are not supported",
        _ => return None,
    })
}

fn err(state: &str, message: impl Into<String>) -> LoadError {
    LoadError {
        state: state.to_owned(),
        message: message.into(),
    }
}

fn path_field(
    o: &Map<String, Value>,
    state: &str,
    field: &str,
) -> Result<Option<Option<Path>>, LoadError> {
    match o.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Path::parse(s)
            .map(|p| Some(Some(p)))
            .map_err(|m| err(state, format!("{field}: {m}"))),
        Some(other) => Err(err(
            state,
            format!("{field} must be a path string or null, got {other}"),
        )),
    }
}

fn result_path(o: &Map<String, Value>, state: &str) -> Result<ResultPath, LoadError> {
    Ok(match path_field(o, state, "ResultPath")? {
        None => ResultPath::At(Path::parse("$").map_err(|m| err(state, m))?),
        Some(None) => ResultPath::Discard,
        Some(Some(p)) => ResultPath::At(
            Path::reference(&p.to_string()).map_err(|m| err(state, format!("ResultPath: {m}")))?,
        ),
    })
}

/// A reference path field (one that must name a single node).
fn reference(state: &str, field: &str, v: &Value) -> Result<Path, LoadError> {
    let s = v
        .as_str()
        .ok_or_else(|| err(state, format!("{field} must be a reference path string")))?;
    Path::reference(s).map_err(|m| err(state, format!("{field}: {m}")))
}

/// A number given either as `field` (a literal) or `field` + `Path` (a reference path);
/// both together are refused. `check` validates a literal.
fn count(
    o: &Map<String, Value>,
    state: &str,
    field: &str,
    check: impl Fn(f64) -> Result<(), String>,
) -> Result<Option<Count>, LoadError> {
    let path_name = format!("{field}Path");
    match (o.get(field), o.get(&path_name)) {
        (Some(_), Some(_)) => Err(err(
            state,
            format!("{field} and {path_name} cannot both be set"),
        )),
        (Some(v), None) => {
            let n = v
                .as_f64()
                .ok_or_else(|| err(state, format!("{field} must be a number, got {v}")))?;
            check(n).map_err(|m| err(state, format!("{field} {m}")))?;
            Ok(Some(Count::Fixed(n)))
        }
        (None, Some(p)) => Ok(Some(Count::Path(reference(state, &path_name, p)?))),
        (None, None) => Ok(None),
    }
}

/// A positive integer (timeouts, heartbeats).
pub(crate) fn positive_int(n: f64) -> Result<(), String> {
    if n.fract() == 0.0 && (1.0..=99_999_999.0).contains(&n) {
        Ok(())
    } else {
        Err(format!("must be a positive integer, got {n}"))
    }
}

/// A non-negative integer (counts, concurrency).
pub(crate) fn non_negative_int(n: f64) -> Result<(), String> {
    if n.fract() == 0.0 && (0.0..=100_000_000.0).contains(&n) {
        Ok(())
    } else {
        Err(format!("must be a non-negative integer, got {n}"))
    }
}

/// A percentage, 0 to 100.
pub(crate) fn percentage(n: f64) -> Result<(), String> {
    if (0.0..=100.0).contains(&n) {
        Ok(())
    } else {
        Err(format!("must be a number from 0 to 100, got {n}"))
    }
}

fn template(
    o: &Map<String, Value>,
    state: &str,
    field: &str,
) -> Result<Option<Template>, LoadError> {
    o.get(field)
        .map(|v| Template::compile(v).map_err(|m| err(state, format!("{field}: {m}"))))
        .transpose()
}

fn errors_list(v: &Value, state: &str, what: &str) -> Result<Vec<String>, LoadError> {
    let list: Vec<String> = v
        .get("ErrorEquals")
        .and_then(Value::as_array)
        .ok_or_else(|| err(state, format!("{what} needs ErrorEquals")))?
        .iter()
        .map(|e| {
            e.as_str()
                .map(str::to_owned)
                .ok_or_else(|| err(state, format!("{what}: ErrorEquals holds strings")))
        })
        .collect::<Result<_, _>>()?;
    if list.is_empty() {
        return Err(err(state, format!("{what}: ErrorEquals is empty")));
    }
    if list.iter().any(|e| e == "States.ALL") && list.len() > 1 {
        return Err(err(state, format!("{what}: States.ALL must appear alone")));
    }
    Ok(list)
}

fn number(v: Option<&Value>, default: f64, state: &str, what: &str) -> Result<f64, LoadError> {
    match v {
        None => Ok(default),
        Some(x) => x
            .as_f64()
            .filter(|f| *f >= 0.0)
            .ok_or_else(|| err(state, format!("{what} must be a non-negative number"))),
    }
}

/// Every error name a definition mentions in `ErrorEquals` (for the contract test).
pub fn error_names(def: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::Array(list)) = o.get("ErrorEquals") {
                    out.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
                }
                if let Some(Value::String(e)) = o.get("Error") {
                    out.insert(e.clone());
                }
                o.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(def, &mut out);
    out
}

/// Every Task resource a definition names, other than the machines it starts
/// ([`started_machines`]).
pub fn resources(def: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(o) => {
                if o.get("Type").and_then(Value::as_str) == Some("Task")
                    && let Some(r) = o.get("Resource").and_then(Value::as_str)
                    && crate::nested::mode(r).is_none()
                {
                    out.insert(r.to_owned());
                }
                o.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(def, &mut out);
    out
}

/// The `StateMachineArn` of every `states:startExecution.sync` task (the machines this one
/// starts), as written.
pub fn started_machines(def: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(o) => {
                if o.get("Type").and_then(Value::as_str) == Some("Task")
                    && o.get("Resource")
                        .and_then(Value::as_str)
                        .and_then(crate::nested::mode)
                        .is_some()
                    && let Some(a) = o
                        .get("Parameters")
                        .or_else(|| o.get("Arguments"))
                        .and_then(|p| p.get("StateMachineArn"))
                        .and_then(Value::as_str)
                {
                    out.insert(a.to_owned());
                }
                o.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(def, &mut out);
    out
}

impl Machine {
    /// Loads and checks a definition.
    pub fn load(def: &Value) -> Result<Self, LoadError> {
        let lang = match def.get("QueryLanguage") {
            None => Lang::JsonPath,
            Some(v) => query_language(v, "<top>")?,
        };
        Self::load_at(
            def,
            "<top>",
            true,
            &Scope {
                lang,
                outer: BTreeSet::new(),
            },
        )
    }

    fn load_at(def: &Value, owner: &str, top: bool, sc: &Scope) -> Result<Self, LoadError> {
        let o = def
            .as_object()
            .ok_or_else(|| err(owner, "a state machine must be a JSON object"))?;
        for k in o.keys() {
            let ok = matches!(k.as_str(), "StartAt" | "States" | "Comment")
                || (top && matches!(k.as_str(), "TimeoutSeconds" | "Version" | "QueryLanguage"))
                || (!top && k == "ProcessorConfig");
            if !ok {
                let why = unsupported(k)
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("field {k} is not supported here"));
                return Err(err(owner, why));
            }
        }
        if let Some(pc) = o.get("ProcessorConfig") {
            let mode = pc.get("Mode").and_then(Value::as_str).unwrap_or("INLINE");
            if !matches!(mode, "INLINE" | "DISTRIBUTED") {
                return Err(err(
                    owner,
                    format!("ProcessorConfig.Mode {mode} is unknown"),
                ));
            }
        }
        let start_at = o
            .get("StartAt")
            .and_then(Value::as_str)
            .ok_or_else(|| err(owner, "StartAt is missing"))?
            .to_owned();
        let raw = o
            .get("States")
            .and_then(Value::as_object)
            .ok_or_else(|| err(owner, "States is missing"))?;
        // The variables this scope assigns: an inner scope may read, not assign, them.
        let mine = assigned(raw);
        if let Some(v) = mine.iter().find(|v| sc.outer.contains(*v)) {
            return Err(err(
                owner,
                format!(
                    "assigns ${v}, a variable of an outer scope: a Map or Parallel may read outer variables but not assign them"
                ),
            ));
        }
        let inner = Scope {
            lang: sc.lang,
            outer: sc.outer.union(&mine).cloned().collect(),
        };
        let mut states = HashMap::new();
        for (name, v) in raw {
            states.insert(name.clone(), load_state(name, v, &inner)?);
        }
        if !states.contains_key(&start_at) {
            return Err(err(
                owner,
                format!("StartAt names {start_at:?}, which is not a state"),
            ));
        }
        for s in states.values() {
            let mut targets: Vec<&String> = s
                .next
                .iter()
                .chain(s.catch.iter().map(|c| &c.next))
                .collect();
            if let Kind::Choice { choices, default } = &s.kind {
                targets.extend(choices.iter().map(|c| &c.next));
                targets.extend(default.iter());
            }
            for t in targets {
                if !states.contains_key(t) {
                    return Err(err(
                        &s.name,
                        format!("transitions to {t:?}, which is not a state of this machine"),
                    ));
                }
            }
        }
        Ok(Self { start_at, states })
    }
}

fn query_language(v: &Value, state: &str) -> Result<Lang, LoadError> {
    match v.as_str() {
        Some("JSONPath") => Ok(Lang::JsonPath),
        Some("JSONata") => Ok(Lang::Jsonata),
        _ => Err(err(
            state,
            format!("QueryLanguage {v} is not JSONPath or JSONata"),
        )),
    }
}

/// The variable names a machine's own states assign (not those of nested machines).
fn assigned(states: &Map<String, Value>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |a: Option<&Value>| {
        for k in a
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.keys())
        {
            out.insert(k.trim_end_matches(".$").to_owned());
        }
    };
    for st in states.values() {
        add(st.get("Assign"));
        for list in ["Choices", "Catch"] {
            for c in st.get(list).and_then(Value::as_array).into_iter().flatten() {
                add(c.get("Assign"));
            }
        }
    }
    out
}

/// Compiles an `Assign` block in `lang`, checking every name.
fn assign(v: Option<&Value>, state: &str, lang: Lang) -> Result<Option<Assign>, LoadError> {
    let Some(v) = v else { return Ok(None) };
    let o = v
        .as_object()
        .ok_or_else(|| err(state, "Assign must be an object of variable names"))?;
    for k in o.keys() {
        let name = if lang == Lang::JsonPath {
            k.strip_suffix(".$").unwrap_or(k)
        } else {
            k.as_str()
        };
        if !is_var_name(name) || name == "states" {
            return Err(err(
                state,
                format!(
                    "Assign: {k:?} is not a variable name (a letter or _, then letters, digits or _, at most 80; not \"states\")"
                ),
            ));
        }
    }
    Ok(Some(match lang {
        Lang::JsonPath => {
            Assign::Path(Template::compile(v).map_err(|m| err(state, format!("Assign: {m}")))?)
        }
        Lang::Jsonata => {
            Assign::Jsonata(JTemplate::compile(v).map_err(|m| err(state, format!("Assign: {m}")))?)
        }
    }))
}

fn jtemplate(
    o: &Map<String, Value>,
    state: &str,
    field: &str,
) -> Result<Option<JTemplate>, LoadError> {
    o.get(field)
        .map(|v| JTemplate::compile(v).map_err(|m| err(state, format!("{field}: {m}"))))
        .transpose()
}

/// Refuses a JSONata expression where the simulator takes only a literal.
fn literal_only(o: &Map<String, Value>, state: &str, fields: &[&str]) -> Result<(), LoadError> {
    for f in fields {
        if let Some(Value::String(s)) = o.get(*f)
            && expression(s).is_some()
        {
            return Err(err(
                state,
                format!(
                    "{f}: a JSONata expression here is not supported by the simulator; give a literal"
                ),
            ));
        }
    }
    Ok(())
}

fn load_state(name: &str, v: &Value, sc: &Scope) -> Result<State, LoadError> {
    let o = v
        .as_object()
        .ok_or_else(|| err(name, "a state must be a JSON object"))?;
    let ty = o
        .get("Type")
        .and_then(Value::as_str)
        .ok_or_else(|| err(name, "Type is missing"))?;
    let lang = match o.get("QueryLanguage") {
        None => sc.lang,
        Some(q) => {
            let l = query_language(q, name)?;
            if sc.lang == Lang::Jsonata && l == Lang::JsonPath {
                return Err(err(
                    name,
                    "a JSONPath state cannot be set inside a JSONata state machine",
                ));
            }
            l
        }
    };
    let fields = match lang {
        Lang::JsonPath => allowed(ty),
        Lang::Jsonata => allowed_jsonata(ty),
    }
    .ok_or_else(|| err(name, format!("Type {ty} is unknown")))?;
    for k in o.keys() {
        if let Some(why) = unsupported(k) {
            return Err(err(name, why));
        }
        if !fields.contains(&k.as_str()) {
            let why = match lang {
                Lang::JsonPath if matches!(k.as_str(), "Arguments" | "Output" | "Items") => {
                    format!("field {k} is JSONata only: set \"QueryLanguage\": \"JSONata\"")
                }
                Lang::Jsonata if allowed(ty).is_some_and(|f| f.contains(&k.as_str())) => {
                    format!(
                        "field {k} is JSONPath only; a JSONata state uses Arguments, Output and Assign"
                    )
                }
                _ => format!("field {k} is not valid on a {ty} state"),
            };
            return Err(err(name, why));
        }
    }
    let sc = &Scope {
        lang,
        outer: sc.outer.clone(),
    };
    let state_assign = assign(o.get("Assign"), name, lang)?;
    let jsonata = if lang == Lang::Jsonata {
        literal_only(
            o,
            name,
            &[
                "TimeoutSeconds",
                "HeartbeatSeconds",
                "Seconds",
                "Timestamp",
                "Error",
                "Cause",
                "MaxConcurrency",
                "ToleratedFailurePercentage",
                "ToleratedFailureCount",
            ],
        )?;
        let items = match o.get("Items") {
            None => None,
            Some(v @ (Value::Array(_) | Value::String(_))) => {
                Some(JTemplate::compile(v).map_err(|m| err(name, format!("Items: {m}")))?)
            }
            Some(_) => return Err(err(name, "Items must be an array or a JSONata expression")),
        };
        Some(Box::new(JsonataIo {
            arguments: jtemplate(o, name, "Arguments")?,
            output: jtemplate(o, name, "Output")?,
            items,
            item_selector: if ty == "Map" {
                jtemplate(o, name, "ItemSelector")?
            } else {
                None
            },
        }))
    } else {
        None
    };
    let terminal = matches!(ty, "Choice" | "Succeed" | "Fail");
    let next = o.get("Next").and_then(Value::as_str).map(str::to_owned);
    let end = o.get("End").and_then(Value::as_bool).unwrap_or(false);
    if !terminal && next.is_some() == end {
        return Err(err(name, "needs exactly one of Next and End"));
    }
    let input_path = match path_field(o, name, "InputPath")? {
        None => Some(Path::parse("$").map_err(|m| err(name, m))?),
        Some(p) => p,
    };
    let output_path = match path_field(o, name, "OutputPath")? {
        None => Some(Path::parse("$").map_err(|m| err(name, m))?),
        Some(p) => p,
    };
    let params = if ty == "Map" {
        let (a, b) = if lang == Lang::Jsonata {
            (None, None)
        } else {
            (
                template(o, name, "ItemSelector")?,
                template(o, name, "Parameters")?,
            )
        };
        if a.is_some() && b.is_some() {
            return Err(err(name, "use ItemSelector or Parameters, not both"));
        }
        let mut st = load_map(name, o, input_path, output_path, a.or(b), next, sc)?;
        st.assign = state_assign;
        st.jsonata = jsonata;
        return Ok(st);
    } else {
        template(o, name, "Parameters")?
    };
    let io = Io {
        input_path,
        parameters: params,
        result_selector: template(o, name, "ResultSelector")?,
        result_path: if matches!(ty, "Pass" | "Task" | "Parallel") {
            result_path(o, name)?
        } else {
            ResultPath::Discard
        },
        output_path,
    };
    let (retry, catch) = retry_catch(o, name, lang)?;
    let kind = match ty {
        "Pass" => Kind::Pass {
            result: o.get("Result").cloned(),
        },
        "Task" => {
            let resource = o
                .get("Resource")
                .and_then(Value::as_str)
                .ok_or_else(|| err(name, "Resource is missing"))?;
            if resource.starts_with("arn:aws:states:::") && crate::nested::mode(resource).is_none()
            {
                return Err(err(
                    name,
                    format!(
                        "service integration {resource} is not supported; name the function directly (\"Resource\": \"${{...FunctionArn}}\") or start a state machine (states:startExecution.sync or .sync:2)"
                    ),
                ));
            }
            let timeout = count(o, name, "TimeoutSeconds", positive_int)?;
            let heartbeat = count(o, name, "HeartbeatSeconds", positive_int)?;
            if let (Some(Count::Fixed(t)), Some(Count::Fixed(h))) = (&timeout, &heartbeat)
                && h >= t
            {
                return Err(err(
                    name,
                    "HeartbeatSeconds must be smaller than TimeoutSeconds",
                ));
            }
            Kind::Task {
                resource: resource.to_owned(),
                timeout,
                heartbeat,
            }
        }
        "Choice" => {
            let list = o
                .get("Choices")
                .and_then(Value::as_array)
                .ok_or_else(|| err(name, "Choices is missing"))?;
            if list.is_empty() {
                return Err(err(name, "Choices is empty"));
            }
            let mut choices = Vec::new();
            for c in list {
                let next = c
                    .get("Next")
                    .and_then(Value::as_str)
                    .ok_or_else(|| err(name, "each choice needs Next"))?;
                let co = c
                    .as_object()
                    .ok_or_else(|| err(name, "a choice rule must be an object"))?;
                let rule = if lang == Lang::Jsonata {
                    only(
                        name,
                        "Choice rule",
                        co,
                        &["Condition", "Next", "Assign", "Output", "Comment"],
                    )?;
                    match co.get("Condition") {
                        Some(Value::String(s)) if expression(s).is_some() => Rule::Condition(
                            JTemplate::compile(&Value::String(s.clone()))
                                .map_err(|m| err(name, format!("Condition: {m}")))?,
                        ),
                        Some(Value::Bool(b)) => Rule::Condition(JTemplate::Lit(Value::Bool(*b))),
                        _ => {
                            return Err(err(
                                name,
                                "a JSONata choice rule needs a Condition: a {% %} expression or a boolean",
                            ));
                        }
                    }
                } else {
                    rule(c, name, true)?
                };
                choices.push(Choice {
                    rule,
                    next: next.to_owned(),
                    assign: assign(co.get("Assign"), name, lang)?,
                    output: if lang == Lang::Jsonata {
                        jtemplate(co, name, "Output")?
                    } else {
                        None
                    },
                });
            }
            Kind::Choice {
                choices,
                default: o.get("Default").and_then(Value::as_str).map(str::to_owned),
            }
        }
        "Wait" => {
            let w = if let Some(s) = o.get("Seconds") {
                WaitFor::Seconds(
                    s.as_u64()
                        .ok_or_else(|| err(name, "Seconds must be a non-negative integer"))?,
                )
            } else if let Some(p) = o.get("SecondsPath") {
                WaitFor::SecondsPath(reference(name, "SecondsPath", p)?)
            } else if let Some(Value::String(t)) = o.get("Timestamp") {
                if crate::exec::timestamp(t).is_none() {
                    return Err(err(
                        name,
                        format!("Timestamp {t:?} is not RFC 3339 with a T and a zone"),
                    ));
                }
                WaitFor::Timestamp(t.clone())
            } else if let Some(p) = o.get("TimestampPath") {
                WaitFor::TimestampPath(reference(name, "TimestampPath", p)?)
            } else {
                return Err(err(
                    name,
                    "Wait needs Seconds, SecondsPath, Timestamp or TimestampPath",
                ));
            };
            Kind::Wait(w)
        }
        "Succeed" => Kind::Succeed,
        "Fail" => {
            // ErrorPath/CausePath hold a path or an intrinsic, as a `.$` field would.
            let dynamic = |field: &str, fixed: &str| -> Result<Option<Template>, LoadError> {
                let Some(v) = o.get(field) else {
                    return Ok(None);
                };
                if o.contains_key(fixed) {
                    return Err(err(name, format!("{fixed} and {field} cannot both be set")));
                }
                let p = v
                    .as_str()
                    .ok_or_else(|| err(name, format!("{field} must be a string")))?;
                let mut m = Map::new();
                m.insert("v.$".into(), Value::String(p.to_owned()));
                Template::compile(&Value::Object(m))
                    .map(Some)
                    .map_err(|e| err(name, format!("{field}: {e}")))
            };
            Kind::Fail {
                error: o.get("Error").and_then(Value::as_str).map(str::to_owned),
                cause: o.get("Cause").and_then(Value::as_str).map(str::to_owned),
                error_path: dynamic("ErrorPath", "Error")?,
                cause_path: dynamic("CausePath", "Cause")?,
            }
        }
        "Parallel" => {
            let list = o
                .get("Branches")
                .and_then(Value::as_array)
                .ok_or_else(|| err(name, "Branches is missing"))?;
            Kind::Parallel {
                branches: list
                    .iter()
                    .map(|b| Machine::load_at(b, name, false, sc))
                    .collect::<Result<_, _>>()?,
            }
        }
        _ => return Err(err(name, format!("Type {ty} is unknown"))),
    };
    Ok(State {
        name: name.to_owned(),
        kind,
        io,
        next,
        retry,
        catch,
        assign: state_assign,
        jsonata,
    })
}

fn retry_catch(
    o: &Map<String, Value>,
    name: &str,
    lang: Lang,
) -> Result<(Vec<Retrier>, Vec<Catcher>), LoadError> {
    let mut retry = Vec::new();
    for r in o
        .get("Retry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for k in r.as_object().into_iter().flat_map(|m| m.keys()) {
            if !matches!(
                k.as_str(),
                "ErrorEquals"
                    | "IntervalSeconds"
                    | "MaxAttempts"
                    | "BackoffRate"
                    | "MaxDelaySeconds"
                    | "JitterStrategy"
                    | "Comment"
            ) {
                return Err(err(name, format!("Retry field {k} is not supported")));
            }
        }
        retry.push(Retrier {
            errors: errors_list(r, name, "Retry")?,
            interval: number(r.get("IntervalSeconds"), 1.0, name, "IntervalSeconds")?,
            max_attempts: number(r.get("MaxAttempts"), 3.0, name, "MaxAttempts")? as u32,
            backoff_rate: number(r.get("BackoffRate"), 2.0, name, "BackoffRate")?,
            max_delay: r
                .get("MaxDelaySeconds")
                .map(|_| number(r.get("MaxDelaySeconds"), 0.0, name, "MaxDelaySeconds"))
                .transpose()?,
        });
    }
    let mut catch = Vec::new();
    for c in o
        .get("Catch")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let co = c
            .as_object()
            .ok_or_else(|| err(name, "Catch entries are objects"))?;
        let keys: &[&str] = match lang {
            Lang::JsonPath => &["ErrorEquals", "Next", "ResultPath", "Assign", "Comment"],
            Lang::Jsonata => &["ErrorEquals", "Next", "Output", "Assign", "Comment"],
        };
        only(name, "Catch", co, keys)?;
        catch.push(Catcher {
            errors: errors_list(c, name, "Catch")?,
            next: co
                .get("Next")
                .and_then(Value::as_str)
                .ok_or_else(|| err(name, "Catch needs Next"))?
                .to_owned(),
            result_path: result_path(co, name)?,
            assign: assign(co.get("Assign"), name, lang)?,
            output: if lang == Lang::Jsonata {
                jtemplate(co, name, "Output")?
            } else {
                None
            },
        });
    }
    Ok((retry, catch))
}

fn load_map(
    name: &str,
    o: &Map<String, Value>,
    input_path: Option<Path>,
    output_path: Option<Path>,
    item_selector: Option<Template>,
    next: Option<String>,
    sc: &Scope,
) -> Result<State, LoadError> {
    let proc_def = o
        .get("ItemProcessor")
        .or_else(|| o.get("Iterator"))
        .ok_or_else(|| err(name, "Map needs ItemProcessor (or Iterator)"))?;
    let mode = proc_def
        .get("ProcessorConfig")
        .and_then(|c| c.get("Mode"))
        .and_then(Value::as_str)
        .unwrap_or("INLINE");
    let distributed = mode == "DISTRIBUTED";
    if let Some(pc) = proc_def.get("ProcessorConfig").and_then(Value::as_object) {
        for (k, v) in pc {
            match (k.as_str(), v.as_str()) {
                ("Mode", _) => {}
                ("ExecutionType", Some("STANDARD" | "EXPRESS")) if distributed => {}
                ("ExecutionType", _) => {
                    return Err(err(
                        name,
                        "ProcessorConfig.ExecutionType is STANDARD or EXPRESS, and only in DISTRIBUTED mode",
                    ));
                }
                _ => return Err(err(name, format!("ProcessorConfig field {k} is unknown"))),
            }
        }
    }
    for f in [
        "ItemReader",
        "ItemBatcher",
        "ResultWriter",
        "ToleratedFailureCount",
        "ToleratedFailurePercentage",
        "ToleratedFailureCountPath",
        "ToleratedFailurePercentagePath",
        "Label",
    ] {
        if !distributed && o.contains_key(f) {
            return Err(err(
                name,
                format!(
                    "{f} is a Distributed Map field: set ItemProcessor.ProcessorConfig.Mode to DISTRIBUTED"
                ),
            ));
        }
    }
    if sc.lang == Lang::Jsonata && (o.contains_key("ItemReader") || o.contains_key("ResultWriter"))
    {
        return Err(err(
            name,
            "ItemReader and ResultWriter are supported in JSONPath states only by the simulator",
        ));
    }
    let reader = o
        .get("ItemReader")
        .map(|r| item_reader(name, r))
        .transpose()?;
    if reader.is_some() && o.contains_key("ItemsPath") {
        return Err(err(name, "ItemsPath cannot be used with ItemReader"));
    }
    let items_path = match o.get("ItemsPath") {
        None => Path::parse("$").map_err(|m| err(name, m))?,
        Some(p) => reference(name, "ItemsPath", p)?,
    };
    let max_concurrency = count(o, name, "MaxConcurrency", non_negative_int)?;
    let tolerated_count = count(o, name, "ToleratedFailureCount", non_negative_int)?;
    let tolerated_percentage = count(o, name, "ToleratedFailurePercentage", percentage)?;
    let batcher = o
        .get("ItemBatcher")
        .map(|b| item_batcher(name, b))
        .transpose()?;
    let writer = o
        .get("ResultWriter")
        .map(|w| result_writer(name, w))
        .transpose()?;
    let (retry, catch) = retry_catch(o, name, sc.lang)?;
    // A distributed child is an execution of its own: it sees no outer variable.
    let proc_scope = if distributed {
        Scope {
            lang: sc.lang,
            outer: BTreeSet::new(),
        }
    } else {
        sc.clone()
    };
    Ok(State {
        name: name.to_owned(),
        kind: Kind::Map(Box::new(MapSpec {
            items_path,
            item_selector,
            processor: Machine::load_at(proc_def, name, false, &proc_scope)?,
            max_concurrency,
            distributed,
            tolerated_count,
            tolerated_percentage,
            reader,
            batcher,
            writer,
        })),
        io: Io {
            input_path,
            parameters: None,
            result_selector: template(o, name, "ResultSelector")?,
            result_path: result_path(o, name)?,
            output_path,
        },
        next,
        retry,
        catch,
        assign: None,
        jsonata: None,
    })
}

fn only(state: &str, what: &str, o: &Map<String, Value>, keys: &[&str]) -> Result<(), LoadError> {
    match o.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(err(state, format!("{what} field {k} is not supported"))),
        None => Ok(()),
    }
}

fn item_reader(state: &str, v: &Value) -> Result<ItemReader, LoadError> {
    let o = v
        .as_object()
        .ok_or_else(|| err(state, "ItemReader must be an object"))?;
    only(
        state,
        "ItemReader",
        o,
        &["Resource", "Parameters", "ReaderConfig"],
    )?;
    let resource = o
        .get("Resource")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let empty = Map::new();
    let cfg = match o.get("ReaderConfig") {
        None => &empty,
        Some(c) => c
            .as_object()
            .ok_or_else(|| err(state, "ItemReader.ReaderConfig must be an object"))?,
    };
    only(
        state,
        "ItemReader.ReaderConfig",
        cfg,
        &[
            "InputType",
            "CSVHeaderLocation",
            "CSVHeaders",
            "CSVDelimiter",
            "MaxItems",
            "MaxItemsPath",
        ],
    )?;
    let input_type = cfg.get("InputType").and_then(Value::as_str);
    let source = match (resource, input_type) {
        ("arn:aws:states:::s3:listObjectsV2", None) => ReaderSource::ListObjects,
        ("arn:aws:states:::s3:listObjectsV2", Some(t)) => {
            return Err(err(
                state,
                format!("ItemReader listObjectsV2 takes no InputType (got {t})"),
            ));
        }
        ("arn:aws:states:::s3:getObject", Some("JSON")) => ReaderSource::Json,
        ("arn:aws:states:::s3:getObject", Some("JSONL")) => ReaderSource::JsonLines,
        ("arn:aws:states:::s3:getObject", Some("CSV")) => {
            let headers = match cfg.get("CSVHeaderLocation").and_then(Value::as_str) {
                Some("FIRST_ROW") => {
                    if cfg.contains_key("CSVHeaders") {
                        return Err(err(state, "CSVHeaders is only for CSVHeaderLocation GIVEN"));
                    }
                    None
                }
                Some("GIVEN") => Some(
                    cfg.get("CSVHeaders")
                        .and_then(Value::as_array)
                        .filter(|a| !a.is_empty())
                        .ok_or_else(|| {
                            err(
                                state,
                                "CSVHeaderLocation GIVEN needs CSVHeaders, a list of names",
                            )
                        })?
                        .iter()
                        .map(|h| {
                            h.as_str()
                                .map(str::to_owned)
                                .ok_or_else(|| err(state, "CSVHeaders holds strings"))
                        })
                        .collect::<Result<_, _>>()?,
                ),
                _ => {
                    return Err(err(
                        state,
                        "an ItemReader with InputType CSV needs CSVHeaderLocation FIRST_ROW or GIVEN",
                    ));
                }
            };
            let delimiter = match cfg.get("CSVDelimiter").and_then(Value::as_str) {
                None | Some("COMMA") => ',',
                Some("PIPE") => '|',
                Some("SEMICOLON") => ';',
                Some("SPACE") => ' ',
                Some("TAB") => '\t',
                Some(d) => {
                    return Err(err(
                        state,
                        format!("CSVDelimiter {d} is not COMMA, PIPE, SEMICOLON, SPACE or TAB"),
                    ));
                }
            };
            ReaderSource::Csv { headers, delimiter }
        }
        ("arn:aws:states:::s3:getObject", t) => {
            return Err(err(
                state,
                format!(
                    "ItemReader getObject InputType {} is not supported (JSON, JSONL and CSV are)",
                    t.unwrap_or("(missing)")
                ),
            ));
        }
        (r, _) => {
            return Err(err(
                state,
                format!(
                    "ItemReader Resource {r:?} is not supported (arn:aws:states:::s3:listObjectsV2 and arn:aws:states:::s3:getObject are)"
                ),
            ));
        }
    };
    let parameters = o.get("Parameters").ok_or_else(|| {
        err(
            state,
            "ItemReader needs Parameters (Bucket and Prefix or Key)",
        )
    })?;
    let keys: &[&str] = if source == ReaderSource::ListObjects {
        &["Bucket", "Prefix"]
    } else {
        &["Bucket", "Key", "VersionId"]
    };
    let po = parameters
        .as_object()
        .ok_or_else(|| err(state, "ItemReader.Parameters must be an object"))?;
    for k in po.keys() {
        if !keys.contains(&k.trim_end_matches(".$")) {
            return Err(err(
                state,
                format!(
                    "ItemReader.Parameters field {k} is not supported (only {})",
                    keys.join(", ")
                ),
            ));
        }
    }
    if !po.keys().any(|k| k.trim_end_matches(".$") == "Bucket") {
        return Err(err(state, "ItemReader.Parameters needs Bucket"));
    }
    Ok(ItemReader {
        source,
        parameters: Template::compile(parameters)
            .map_err(|m| err(state, format!("ItemReader.Parameters: {m}")))?,
        max_items: count(cfg, state, "MaxItems", non_negative_int)?,
    })
}

fn item_batcher(state: &str, v: &Value) -> Result<ItemBatcher, LoadError> {
    let o = v
        .as_object()
        .ok_or_else(|| err(state, "ItemBatcher must be an object"))?;
    only(
        state,
        "ItemBatcher",
        o,
        &[
            "MaxItemsPerBatch",
            "MaxItemsPerBatchPath",
            "MaxInputBytesPerBatch",
            "MaxInputBytesPerBatchPath",
            "BatchInput",
        ],
    )?;
    let positive = |n: f64| positive_int(n);
    let b = ItemBatcher {
        max_items: count(o, state, "MaxItemsPerBatch", positive)?,
        max_bytes: count(o, state, "MaxInputBytesPerBatch", |n| {
            positive_int(n)?;
            if n > crate::exec::MAX_PAYLOAD_BYTES as f64 {
                return Err(format!(
                    "must be at most 256 KiB ({}), got {n}",
                    crate::exec::MAX_PAYLOAD_BYTES
                ));
            }
            Ok(())
        })?,
        batch_input: o
            .get("BatchInput")
            .map(|t| Template::compile(t).map_err(|m| err(state, format!("BatchInput: {m}"))))
            .transpose()?,
    };
    if b.max_items.is_none() && b.max_bytes.is_none() {
        return Err(err(
            state,
            "ItemBatcher needs MaxItemsPerBatch or MaxInputBytesPerBatch (or a Path form)",
        ));
    }
    Ok(b)
}

fn result_writer(state: &str, v: &Value) -> Result<ResultWriter, LoadError> {
    let o = v
        .as_object()
        .ok_or_else(|| err(state, "ResultWriter must be an object"))?;
    only(state, "ResultWriter", o, &["Resource", "Parameters"])?;
    if o.get("Resource").and_then(Value::as_str) != Some("arn:aws:states:::s3:putObject") {
        return Err(err(
            state,
            "ResultWriter needs Resource arn:aws:states:::s3:putObject (WriterConfig is not supported)",
        ));
    }
    let p = o
        .get("Parameters")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            err(
                state,
                "ResultWriter needs Parameters with Bucket and Prefix",
            )
        })?;
    for k in p.keys() {
        if !matches!(k.trim_end_matches(".$"), "Bucket" | "Prefix") {
            return Err(err(
                state,
                format!("ResultWriter.Parameters field {k} is not supported"),
            ));
        }
    }
    if !p.keys().any(|k| k.trim_end_matches(".$") == "Bucket") {
        return Err(err(state, "ResultWriter.Parameters needs Bucket"));
    }
    Ok(ResultWriter {
        parameters: Template::compile(&Value::Object(p.clone()))
            .map_err(|m| err(state, format!("ResultWriter.Parameters: {m}")))?,
    })
}

const OPS: &[&str] = &[
    "StringEquals",
    "StringLessThan",
    "StringGreaterThan",
    "StringLessThanEquals",
    "StringGreaterThanEquals",
    "StringMatches",
    "NumericEquals",
    "NumericLessThan",
    "NumericGreaterThan",
    "NumericLessThanEquals",
    "NumericGreaterThanEquals",
    "BooleanEquals",
    "TimestampEquals",
    "TimestampLessThan",
    "TimestampGreaterThan",
    "TimestampLessThanEquals",
    "TimestampGreaterThanEquals",
    "IsNull",
    "IsPresent",
    "IsNumeric",
    "IsString",
    "IsBoolean",
    "IsTimestamp",
];

fn rule(v: &Value, state: &str, top: bool) -> Result<Rule, LoadError> {
    let o = v
        .as_object()
        .ok_or_else(|| err(state, "a choice rule must be an object"))?;
    if let Some(list) = o.get("And").or_else(|| o.get("Or")) {
        let rules = list
            .as_array()
            .ok_or_else(|| err(state, "And/Or take an array"))?
            .iter()
            .map(|r| rule(r, state, false))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(if o.contains_key("And") {
            Rule::And(rules)
        } else {
            Rule::Or(rules)
        });
    }
    if let Some(inner) = o.get("Not") {
        return Ok(Rule::Not(Box::new(rule(inner, state, false)?)));
    }
    let var = o
        .get("Variable")
        .and_then(Value::as_str)
        .ok_or_else(|| err(state, "a choice rule needs Variable (or And/Or/Not)"))?;
    let var = Path::reference(var).map_err(|m| err(state, format!("Variable: {m}")))?;
    for (k, val) in o {
        if k == "Variable" || k == "Comment" || (top && (k == "Next" || k == "Assign")) {
            continue;
        }
        let (op, is_path) = match k.strip_suffix("Path") {
            Some(op) if OPS.contains(&op) => (op, true),
            _ if OPS.contains(&k.as_str()) => (k.as_str(), false),
            _ => return Err(err(state, format!("choice operator {k} is not supported"))),
        };
        let path = if is_path {
            Some(
                Path::parse(
                    val.as_str()
                        .ok_or_else(|| err(state, format!("{k} takes a path")))?,
                )
                .map_err(|m| err(state, m))?,
            )
        } else {
            None
        };
        return Ok(Rule::Cmp {
            var,
            op: op.to_owned(),
            lit: val.clone(),
            path,
        });
    }
    Err(err(state, "a choice rule needs a comparison operator"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(def: Value) -> LoadError {
        Machine::load(&def).expect_err("must be refused")
    }

    #[test]
    fn unsupported_features_are_named_with_their_state() {
        let e = refused(json!({"StartAt": "M", "States": {"M": {
            "Type": "Map", "ItemReader": {}, "ItemProcessor": {"StartAt": "x", "States": {"x": {"Type": "Succeed"}}}, "End": true}}}));
        assert_eq!(e.state, "M");
        assert!(
            e.message.contains("ItemReader") && e.message.contains("DISTRIBUTED"),
            "{e}"
        );
        let e = refused(
            json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage", "End": true}}}),
        );
        assert!(e.message.contains("service integration"), "{e}");
        let e = refused(json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}));
        assert!(e.message.contains("\"B\""), "{e}");
        let e = refused(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Bogus": 1, "End": true}}}),
        );
        assert!(e.message.contains("Bogus"), "{e}");
        let e = refused(
            json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "ResultPath": "$.x", "End": true}}}),
        );
        assert!(e.message.contains("JSONPath only"), "{e}");
        let e = refused(
            json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "Fuzzy": 1, "Next": "C"}]}}}),
        );
        assert!(e.message.contains("Fuzzy"), "{e}");
    }

    #[test]
    fn collects_error_names_and_resources() {
        let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "${AFunctionArn}",
            "Retry": [{"ErrorEquals": ["Throttled"]}], "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "F"}], "End": true},
            "F": {"Type": "Fail", "Error": "Boom"}}});
        assert_eq!(
            error_names(&def).into_iter().collect::<Vec<_>>(),
            ["Boom", "States.ALL", "Throttled"]
        );
        assert_eq!(
            resources(&def).into_iter().collect::<Vec<_>>(),
            ["${AFunctionArn}"]
        );
        Machine::load(&def).expect("loads");
    }
}
