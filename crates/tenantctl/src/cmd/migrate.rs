//! `tenantctl migrate`: start a zero-downtime migration (locally through the simulator,
//! or on Step Functions), show one, or roll one back.

use super::{Ctx, finish, read_json};
use crate::world::{connect, connect_existing, write_history};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use lifecycle::TenantId;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `tenantctl migrate`: a subcommand, or the migration to start.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Option<MigrateCmd>,
    #[command(flatten)]
    start: StartArgs,
}

/// The migration to start.
#[derive(clap::Args)]
pub struct StartArgs {
    /// Tenant id.
    tenant: Option<String>,
    /// Kind of move.
    #[arg(long, default_value = "blue-green", value_parser = ["blue-green", "region", "schema-version"])]
    kind: String,
    /// Where the tenant is (environment, region, or schema version number).
    #[arg(long)]
    from: Option<String>,
    /// Where it goes.
    #[arg(long)]
    to: Option<String>,
    /// Systems to move, comma-separated (default: every system that can be moved).
    #[arg(long, value_delimiter = ',')]
    systems: Vec<String>,
    /// Seconds each cutover step soaks before its health check.
    #[arg(long)]
    soak_seconds: Option<u64>,
    /// The whole request as JSON instead (the shape of scenarios.json's migrations).
    #[arg(long, conflicts_with_all = ["tenant", "from", "to"])]
    request: Option<PathBuf>,
    /// Run a workload of N tasks through tenant-router while migrating (local only).
    #[arg(long, default_value_t = 0)]
    workload: usize,
    /// Fraction of real time the soaks take locally (0 = virtual time, instant).
    #[arg(long, default_value_t = 0.0)]
    wait_scale: f64,
    /// Start a Step Functions execution instead.
    #[arg(long)]
    aws: bool,
    /// The deployed state machine's ARN (with --aws).
    #[arg(long, env = "TENANT_MIGRATION_STATE_MACHINE_ARN")]
    state_machine_arn: Option<String>,
}

/// Migration subcommands.
#[derive(Subcommand)]
pub enum MigrateCmd {
    /// Show a tenant's migration: phase, per-system progress, routing.
    Status {
        /// Tenant id.
        tenant: String,
    },
    /// Roll a tenant's running migration back to its source now.
    Rollback {
        /// Tenant id.
        tenant: String,
    },
}

/// Runs `tenantctl migrate`.
pub async fn run(args: Args, ctx: &Ctx) -> Result<()> {
    match args.cmd {
        Some(MigrateCmd::Status { tenant }) => status(&tenant, ctx).await,
        Some(MigrateCmd::Rollback { tenant }) => rollback(&tenant, ctx).await,
        None => start(&args.start, ctx).await,
    }
}

async fn status(tenant: &str, ctx: &Ctx) -> Result<()> {
    let deps = connect_existing(&ctx.data_dir, ctx.catalog()).await?;
    let t = TenantId::parse(tenant)?;
    let rec = deps.migrations()?.get(&t).await?;
    let routing = deps.routing()?.get(&t).await?;
    let Some(rec) = rec else {
        println!(
            "{tenant} has never been migrated; it lives in {}",
            routing.map_or("home".into(), |r| r.source)
        );
        return Ok(());
    };
    println!(
        "{} {}: {:?} ({} -> {}), updated {}",
        rec.migration_id, tenant, rec.phase, rec.from, rec.to, rec.updated_at
    );
    for (s, c) in &rec.checkpoints {
        println!(
            "  {s:<12} copied {:>8}  skipped {:>6}  caught-up {:>6}  repaired {:>4}  lag {:>6}  bulk {}",
            c.copied,
            c.skipped,
            c.caught_up,
            c.repaired,
            c.lag,
            if c.bulk_done { "done" } else { "running" }
        );
    }
    for (p, h) in &rec.gates {
        println!(
            "  gate at {p:>3} %: {} requests, {} errors, p95 {} us",
            h.requests, h.errors, h.p95_us
        );
    }
    if let Some(r) = &rec.reason {
        println!("  reason: {r}");
    }
    if let Some(r) = routing {
        println!(
            "  routing epoch {}: source {}, target {}, {} % of reads on the target, writes {:?}",
            r.epoch,
            r.source,
            r.target.as_deref().unwrap_or("-"),
            r.read_percent,
            r.write_mode
        );
    }
    Ok(())
}

async fn rollback(tenant: &str, ctx: &Ctx) -> Result<()> {
    let deps = connect(&ctx.data_dir, ctx.catalog()).await?;
    let t = TenantId::parse(tenant)?;
    let rec = deps
        .migrations()?
        .get(&t)
        .await?
        .with_context(|| format!("{tenant} has no migration"))?;
    let input = serde_json::json!({"tenant_id": tenant, "migration_id": rec.migration_id});
    let out = crate::registry::call(
        "rollback",
        input,
        &deps,
        tenant_runtime::Budget::of(std::time::Duration::from_secs(900)),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{}: {}", e.error, e.cause))?;
    println!(
        "{} rolled back: phase {}, routing epoch {}, certificate seq {}",
        rec.migration_id, out["phase"], out["epoch"], out["certificate_seq"]
    );
    Ok(())
}

async fn start(a: &StartArgs, ctx: &Ctx) -> Result<()> {
    let req = request(a)?;
    if a.aws {
        let arn = a
            .state_machine_arn
            .as_deref()
            .context("--aws needs --state-machine-arn (or TENANT_MIGRATION_STATE_MACHINE_ARN)")?;
        let cfg = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let exec = crate::aws::start_migration(&cfg, arn, &req).await?;
        println!("started {exec}");
        return Ok(());
    }
    if !(0.0..=1.0).contains(&a.wait_scale) {
        bail!("--wait-scale must be between 0 and 1");
    }
    let deps = Arc::new(connect(&ctx.data_dir, ctx.catalog()).await?);
    let opts = crate::migrate::RunOptions {
        wait_scale: a.wait_scale,
        workers: a.workload,
        live: true,
    };
    let report = crate::migrate::run_local(deps, req, opts).await?;
    let hist = ctx
        .data_dir
        .join("history")
        .join(format!("{}.json", report.exec.name));
    write_history(&hist, &report.exec)?;
    println!("history: {}", hist.display());
    if a.workload > 0 {
        println!(
            "workload: {} operations, {} failed, {} stale reads, {} acknowledged writes missing",
            report.ops, report.failed, report.stale, report.lost
        );
    }
    println!("the tenant lives in {}", report.location);
    finish(&report.exec)
}

/// The migration request the flags (or `--request`) describe.
fn request(a: &StartArgs) -> Result<Value> {
    if let Some(path) = &a.request {
        return read_json(path);
    }
    let tenant = a
        .tenant
        .as_deref()
        .context("name the tenant: tenantctl migrate <tenant> --from <where> --to <where>")?;
    let (from, to) = match (&a.from, &a.to) {
        (Some(f), Some(t)) => (f, t),
        _ => bail!("--from and --to are required (e.g. --from blue --to green)"),
    };
    let field = match a.kind.as_str() {
        "region" => "region",
        "schema-version" => "schema_version",
        _ => "environment",
    };
    let side = |v: &str| -> Value {
        match (field, v.trim_start_matches('v').parse::<u64>()) {
            ("schema_version", Ok(n)) => serde_json::json!({ field: n }),
            _ => serde_json::json!({ field: v }),
        }
    };
    let mut req = serde_json::json!({"tenant_id": tenant, "kind": a.kind, "from": side(from), "to": side(to)});
    if !a.systems.is_empty() {
        req["systems"] = serde_json::json!(a.systems);
    }
    if let Some(s) = a.soak_seconds {
        req["options"] = serde_json::json!({ "soak_seconds": s });
    }
    Ok(req)
}
