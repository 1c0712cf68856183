//! `tenantctl erase`: one erasure request, through the local simulator or as a Step
//! Functions execution.

use super::{Ctx, finish, read_json};
use crate::world::{load_machine, simulate, write_history};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `tenantctl erase`.
#[derive(clap::Args)]
pub struct Args {
    /// The erasure request (JSON).
    #[arg(long)]
    request: PathBuf,
    /// Start a Step Functions execution instead (execution name = request id).
    #[arg(long)]
    aws: bool,
    /// The deployed state machine's ARN (with --aws).
    #[arg(long, env = "GDPR_ERASURE_STATE_MACHINE_ARN")]
    state_machine_arn: Option<String>,
    /// Where to write the execution history (local runs).
    #[arg(long)]
    history: Option<PathBuf>,
}

/// Runs `tenantctl erase`.
pub async fn run(args: Args, ctx: &Ctx) -> Result<()> {
    if args.aws {
        on_aws(args).await
    } else {
        local(args, ctx).await
    }
}

async fn on_aws(args: Args) -> Result<()> {
    let input = read_json(&args.request)?;
    let arn = args
        .state_machine_arn
        .context("--aws needs --state-machine-arn (or GDPR_ERASURE_STATE_MACHINE_ARN)")?;
    let cfg = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let exec = crate::aws::start_erasure(&cfg, &arn, &input).await?;
    println!("started {exec}");
    Ok(())
}

async fn local(args: Args, ctx: &Ctx) -> Result<()> {
    let data_dir = &ctx.data_dir;
    let input = read_json(&args.request)?;
    let machine = load_machine(
        crate::GDPR_ERASURE_ASL,
        "statemachines/gdpr-erasure.asl.json",
    )?;
    // Validated before anything is opened or written: a refused request changes
    // nothing, and only a valid request id names the files written for it.
    let cat = crate::world::load_catalog(ctx.catalog())?;
    let valid = lifecycle::erasure::ErasureRequest::parse(&input, &cat)
        .map_err(|e| anyhow::anyhow!("{}: {e}", e.error_type()))?;
    let name = valid.request_id.to_string();
    let deps = Arc::new(crate::world::connect_with(data_dir, cat, false).await?);
    let exec = simulate(deps.clone(), &machine, &name, input, true).await;
    let hist = args
        .history
        .unwrap_or_else(|| data_dir.join("history").join(format!("{name}.json")));
    write_history(&hist, &exec)?;
    if let Some(cert) = exec.output.as_ref().and_then(|o| o.get("certificate")) {
        let path = data_dir.join("certificates").join(format!("{name}.json"));
        std::fs::create_dir_all(data_dir.join("certificates"))?;
        std::fs::write(&path, serde_json::to_vec_pretty(cert)?)?;
        println!("certificate: {}", path.display());
    }
    // Whatever the outcome, what the ledger now holds is checkpointed outside it.
    if deps
        .ledger
        .head(lifecycle::erasure::ERASURE_CHAIN)
        .await?
        .is_some()
    {
        super::ledger::publish_all(&deps, Some(lifecycle::erasure::ERASURE_CHAIN)).await?;
    }
    finish(&exec)
}
