//! `tenantctl sim run`: any state machine file on the local handlers.

use super::{Ctx, finish, read_json};
use crate::world::{connect, load_machine, simulate, write_history};
use anyhow::Result;
use clap::Subcommand;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

/// Simulator subcommands.
#[derive(Subcommand)]
pub enum SimCmd {
    /// Run an ASL file on the local handlers.
    Run {
        /// The state machine (statemachines/*.asl.json).
        asl: PathBuf,
        /// Execution input (JSON file).
        #[arg(long)]
        input: PathBuf,
        /// Execution name (default: the input's request_id, or "local").
        #[arg(long)]
        name: Option<String>,
        /// Where to write the execution history as JSON.
        #[arg(long)]
        history: Option<PathBuf>,
    },
}

/// Runs a simulator subcommand.
pub async fn run(cmd: SimCmd, ctx: &Ctx) -> Result<()> {
    let SimCmd::Run {
        asl,
        input,
        name,
        history,
    } = cmd;
    let text = crate::input::read_text(&asl, 1 << 20)?;
    let machine = load_machine(&text, &asl.display().to_string())?;
    let input = read_json(&input)?;
    // Only a valid id may name the history file: a refused request must not write
    // anywhere its id points.
    let name = match name {
        Some(n) => execution_name(&n)?,
        None => input
            .get("request_id")
            .and_then(Value::as_str)
            .and_then(|r| lifecycle::RequestId::parse(r).ok())
            .map_or_else(|| "local".to_owned(), |r| r.to_string()),
    };
    let deps = Arc::new(connect(&ctx.data_dir, ctx.catalog()).await?);
    println!("simulating {} as execution {name}", asl.display());
    let exec = simulate(deps, &machine, &name, input, true).await;
    let hist = history.unwrap_or_else(|| ctx.data_dir.join("history").join(format!("{name}.json")));
    write_history(&hist, &exec)?;
    println!("history: {}", hist.display());
    // The result, as the last line of stdout, for scripts (`| tail -n1 | jq`).
    let result = match exec.status {
        ::sim::Status::Succeeded => {
            serde_json::json!({"status": "SUCCEEDED", "output": exec.output})
        }
        _ => serde_json::json!({"status": "FAILED", "error": exec.error, "cause": exec.cause}),
    };
    println!("{result}");
    finish(&exec)
}

/// An execution name from user input: the same charset as request ids, so that it can
/// never become a path outside the history directory.
fn execution_name(name: &str) -> Result<String> {
    Ok(lifecycle::RequestId::parse(name)
        .map_err(|e| anyhow::anyhow!("InvalidRequest: execution name: {e}"))?
        .to_string())
}
