//! Opening the local world (or an AWS catalog) and running state machines on it.

use crate::registry::LocalFunctions;
use anyhow::{Context, Result};
use lifecycle::Catalog;
use serde_json::Value;
use sim::{Execution, HistoryEvent, Machine, Observer, Simulator};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use stores::Deps;
use stores::wiring::ConnectOptions;

/// The world file inside a data directory.
pub fn world_file(data_dir: &Path) -> PathBuf {
    data_dir.join("world.db")
}

/// Reads the catalog (the embedded local one unless a file is given).
pub fn load_catalog(catalog: Option<&Path>) -> Result<Catalog> {
    let text = match catalog {
        Some(p) => crate::input::read_text(p, crate::input::MAX_CATALOG_BYTES)
            .with_context(|| format!("cannot read catalog {}", p.display()))?,
        None => crate::LOCAL_CATALOG.to_owned(),
    };
    Ok(Catalog::from_toml(&text)?)
}

/// Connects to the catalog, creating the world if it is new (commands that act).
pub async fn connect(data_dir: &Path, catalog: Option<&Path>) -> Result<Deps> {
    connect_with(data_dir, load_catalog(catalog)?, false).await
}

/// Connects to an existing world only, never creating a world or a key (commands that
/// only read: a mistyped data dir is an error, not an empty ledger that "verifies").
pub async fn connect_existing(data_dir: &Path, catalog: Option<&Path>) -> Result<Deps> {
    connect_with(data_dir, load_catalog(catalog)?, true).await
}

/// Connects with a catalog already read.
pub async fn connect_with(data_dir: &Path, catalog: Catalog, read_only: bool) -> Result<Deps> {
    let deps = Deps::connect(
        catalog,
        ConnectOptions {
            world: Some(world_file(data_dir)),
            aws: None,
            read_only,
        },
    )
    .await?;
    Ok(deps)
}

/// Loads an ASL file, refusing what the simulator cannot run.
pub fn load_machine(text: &str, origin: &str) -> Result<Machine> {
    let def: Value =
        serde_json::from_str(text).with_context(|| format!("{origin} is not valid JSON"))?;
    Machine::load(&def).with_context(|| format!("{origin} cannot be simulated"))
}

/// Prints each transition as it happens.
#[derive(Debug, Default)]
pub struct PrintTransitions;

impl Observer for PrintTransitions {
    fn event(&self, e: &HistoryEvent) {
        let name = e
            .details
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match e.kind.as_str() {
            k if k.ends_with("StateEntered") => {
                let ty = k.trim_end_matches("StateEntered");
                let extra = e
                    .details
                    .get("input")
                    .and_then(Value::as_str)
                    .and_then(|i| serde_json::from_str::<Value>(i).ok())
                    .and_then(|v| {
                        v.get("system")
                            .and_then(Value::as_str)
                            .map(|s| format!(" [{s}]"))
                    })
                    .unwrap_or_default();
                crate::progress::println(&format!("  {:>4}  {ty:<8} {name}{extra}", e.id));
            }
            "LambdaFunctionFailed" => {
                let err = e
                    .details
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                crate::progress::println(&format!("  {:>4}  failed   {err}", e.id));
            }
            "ExecutionFailed" => {
                let err = e
                    .details
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                crate::progress::finish();
                crate::progress::println(&format!("  {:>4}  EXECUTION FAILED: {err}", e.id));
            }
            "ExecutionSucceeded" => {
                crate::progress::finish();
                crate::progress::println(&format!("  {:>4}  EXECUTION SUCCEEDED", e.id));
            }
            _ => {}
        }
    }
}

/// Registers every shipped state machine under the `${...StateMachineArn}` the others name
/// it by, so `states:startExecution.sync` tasks run them as executions of their own.
pub fn with_shipped_machines(mut sim: Simulator) -> Simulator {
    for (file, asl) in crate::SHIPPED_MACHINES {
        // The files are the repository's own and the contract test loads each; one that
        // did not load would only be missing here, and its starter fail with
        // StateMachineDoesNotExist, naming it.
        if let Ok(m) = serde_json::from_str(asl)
            .map_err(|e| e.to_string())
            .and_then(|v| Machine::load(&v).map_err(|e| e.to_string()))
        {
            sim = sim.with_machine(crate::registry::machine_arn(file), m);
        }
    }
    sim
}

/// Runs `machine` on the local handlers.
pub async fn simulate(
    deps: Arc<Deps>,
    machine: &Machine,
    name: &str,
    input: Value,
    live: bool,
) -> Execution {
    let objects = deps.aws_config().map(crate::objects::S3Objects::new);
    let mut sim = with_shipped_machines(Simulator::new(Arc::new(LocalFunctions::new(deps))));
    // A Distributed Map's ItemReader and ResultWriter use the catalog's S3 (AWS or moto).
    if let Some(o) = objects {
        sim = sim.with_objects(Arc::new(o));
    }
    if live {
        sim = sim.with_observer(Arc::new(PrintTransitions));
    }
    sim.run(machine, name, input).await
}

/// Writes an execution's history as JSON.
pub fn write_history(path: &Path, e: &Execution) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let doc = serde_json::json!({
        "name": e.name,
        "status": e.status,
        "error": e.error,
        "cause": e.cause,
        "output": e.output,
        "events": e.history,
    });
    std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("cannot write {}", path.display()))
}
