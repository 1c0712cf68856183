//! `tenantctl backup` and `tenantctl restore`: a tenant's backups (take, list, prune) and
//! restores, through the local simulator by default or as Step Functions executions.

use super::{Ctx, finish};
use crate::world::{connect, connect_existing, load_machine, simulate, write_history};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use lifecycle::TenantId;
use serde_json::{Value, json};
use std::sync::Arc;

/// Arguments of `tenantctl backup`: a subcommand, or the backup to take.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Option<BackupCmd>,
    /// Tenant to back up.
    tenant: Option<String>,
    /// Tier (default: the catalog's tier for the tenant).
    #[arg(long)]
    tier: Option<String>,
    /// Only the changes since the tenant's last backup.
    #[arg(long)]
    incremental: bool,
    /// Start a Step Functions execution instead.
    #[arg(long)]
    aws: bool,
    /// The deployed backup state machine (with --aws).
    #[arg(long, env = "TENANT_BACKUP_STATE_MACHINE_ARN")]
    state_machine_arn: Option<String>,
}

/// Backup subcommands.
#[derive(Subcommand)]
pub enum BackupCmd {
    /// List a tenant's backups, oldest first.
    List {
        /// Tenant id.
        tenant: String,
    },
    /// Back up every tenant the catalog assigns to a tier, each in its own execution (what
    /// the tier's schedule starts on AWS).
    Tier {
        /// The tier (`[backup] tiers`).
        tier: String,
        /// Only the changes since each tenant's last backup.
        #[arg(long)]
        incremental: bool,
        /// Start a Step Functions execution instead.
        #[arg(long)]
        aws: bool,
        /// The deployed tier-run state machine (with --aws).
        #[arg(long, env = "TENANT_BACKUP_TIER_STATE_MACHINE_ARN")]
        state_machine_arn: Option<String>,
    },
    /// Delete backups past their retention (every tenant, or one), except under a legal hold.
    Prune {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// Arguments of `tenantctl restore`.
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The backup (`tenantctl backup list <tenant>` shows them).
    backup_id: String,
    /// Restore the state at this instant (RFC 3339): the last full backup before it and
    /// the increments up to it.
    #[arg(long)]
    to_time: Option<String>,
    /// The location to write (never the live one).
    #[arg(long, default_value = "restore")]
    to: String,
    /// Schema version to restore at (default: what the tenant runs now).
    #[arg(long)]
    schema_version: Option<u32>,
    /// The tenant, for the backups (`bl-...`) of a tenant id over 58 characters.
    #[arg(long)]
    tenant: Option<String>,
    /// Then make the restored location live through the migration router (dual-write,
    /// cutover behind health gates, rollback on a breach).
    #[arg(long)]
    in_place: bool,
    /// Start a Step Functions execution instead.
    #[arg(long)]
    aws: bool,
    /// The deployed restore state machine (with --aws).
    #[arg(long, env = "TENANT_RESTORE_STATE_MACHINE_ARN")]
    state_machine_arn: Option<String>,
}

/// Runs `tenantctl backup`.
pub async fn run(args: Args, ctx: &Ctx) -> Result<()> {
    match args.cmd {
        Some(BackupCmd::List { tenant }) => list(&tenant, ctx).await,
        Some(BackupCmd::Prune { tenant }) => prune(tenant.as_deref(), ctx).await,
        Some(BackupCmd::Tier {
            tier,
            incremental,
            aws,
            state_machine_arn,
        }) => run_tier(&tier, incremental, aws, state_machine_arn.as_deref(), ctx).await,
        None => {
            let tenant = args
                .tenant
                .as_deref()
                .context("name the tenant: tenantctl backup <tenant> (or backup list|prune)")?;
            let mut input = json!({"tenant_id": tenant, "kind": if args.incremental { "incremental" } else { "full" }});
            if let Some(t) = &args.tier {
                input["tier"] = json!(t);
            }
            lifecycle::backup::BackupRequest::parse(&input)
                .map_err(|e| anyhow::anyhow!("{}: {e}", e.error_type()))?;
            // An execution name holds 80 characters: shorten the tenant, keep the instant,
            // so two backups of a long-id tenant keep two histories.
            let ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
            let room = 80 - "backup--".len() - ms.to_string().len();
            let short: String = tenant.chars().take(room).collect();
            let name = format!("backup-{short}-{ms}");
            if args.aws {
                return start_on_aws(
                    args.state_machine_arn.as_deref(),
                    "TENANT_BACKUP_STATE_MACHINE_ARN",
                    &name,
                    &input,
                )
                .await;
            }
            let out = run_local(
                ctx,
                crate::TENANT_BACKUP_ASL,
                "statemachines/tenant-backup.asl.json",
                &name,
                input,
            )
            .await?;
            println!(
                "backup {}: {} records, {} bytes, regions {}, certificate seq {} on tenant-backup",
                out["backup_id"].as_str().unwrap_or("?"),
                out["records"],
                out["bytes"],
                out["regions"],
                out["certificate_seq"]
            );
            Ok(())
        }
    }
}

/// Runs `tenantctl restore`.
pub async fn restore(a: RestoreArgs, ctx: &Ctx) -> Result<()> {
    let mut input = json!({"backup_id": a.backup_id, "to": a.to});
    if let Some(t) = &a.to_time {
        input["to_time"] = json!(t);
    }
    if let Some(v) = a.schema_version {
        input["schema_version"] = json!(v);
    }
    if let Some(t) = &a.tenant {
        input["tenant_id"] = json!(t);
    }
    if a.in_place {
        input["in_place"] = json!(true);
    }
    let (req, _) = lifecycle::backup::RestoreRequest::parse(&input)
        .map_err(|e| anyhow::anyhow!("{}: {e}", e.error_type()))?;
    let name = req.id();
    if a.aws {
        return start_on_aws(
            a.state_machine_arn.as_deref(),
            "TENANT_RESTORE_STATE_MACHINE_ARN",
            &name,
            &input,
        )
        .await;
    }
    let out = run_local(
        ctx,
        crate::TENANT_RESTORE_ASL,
        "statemachines/tenant-restore.asl.json",
        &name,
        input,
    )
    .await?;
    println!(
        "restore {}: {} records into location {}, {}, certificate seq {} on tenant-restore",
        out["restore_id"].as_str().unwrap_or("?"),
        out["records"],
        a.to,
        if out["matches_manifest"] == true {
            "fingerprints equal the manifest's"
        } else {
            "fingerprint certified"
        },
        out["certificate_seq"]
    );
    if out["cutover"]["status"] == "SUCCEEDED" {
        println!(
            "cut over: tenant now lives in {} (migration {}, certificate seq {} on tenant-migration); the location it left is kept as it was",
            a.to,
            out["cutover"]["migration"]["result"]["migration_id"]
                .as_str()
                .unwrap_or("?"),
            out["cutover"]["migration"]["result"]["certificate_seq"]
        );
    }
    Ok(())
}

/// Runs a shipped machine in the simulator on the data dir's world and writes its history;
/// the caller may read the execution before [`conclude`] turns a failure into an error.
async fn simulate_local(
    ctx: &Ctx,
    asl: &str,
    origin: &str,
    name: &str,
    input: Value,
) -> Result<(Arc<stores::Deps>, sim::Execution)> {
    let machine = load_machine(asl, origin)?;
    let deps = Arc::new(connect(&ctx.data_dir, ctx.catalog()).await?);
    let exec = simulate(deps.clone(), &machine, name, input, true).await;
    let hist = ctx.data_dir.join("history").join(format!("{name}.json"));
    write_history(&hist, &exec)?;
    Ok((deps, exec))
}

/// The execution's output, or its failure as the error; publishes the checkpoints.
async fn conclude(deps: &stores::Deps, exec: sim::Execution) -> Result<Value> {
    finish(&exec)?;
    super::ledger::publish_all(deps, None).await?;
    exec.output.context("the execution returned no output")
}

pub(super) async fn run_local(
    ctx: &Ctx,
    asl: &str,
    origin: &str,
    name: &str,
    input: Value,
) -> Result<Value> {
    let (deps, exec) = simulate_local(ctx, asl, origin, name, input).await?;
    conclude(&deps, exec).await
}

async fn run_tier(
    tier: &str,
    incremental: bool,
    aws: bool,
    arn: Option<&str>,
    ctx: &Ctx,
) -> Result<()> {
    lifecycle::SystemName::parse(tier)
        .map_err(|_| anyhow::anyhow!("InvalidRequest: {tier:?} is not a tier name (letters, digits, '_' and '-'; the catalog's [backup] tiers)"))?;
    let kind = if incremental { "incremental" } else { "full" };
    let input = json!({"tier": tier, "kind": kind});
    let name: String = format!(
        "tier-{tier}-{kind}-{}",
        time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
    )
    .chars()
    .take(80)
    .collect();
    if aws {
        return start_on_aws(arn, "TENANT_BACKUP_TIER_STATE_MACHINE_ARN", &name, &input).await;
    }
    let (deps, exec) = simulate_local(
        ctx,
        crate::TENANT_BACKUP_TIER_ASL,
        "statemachines/tenant-backup-tier.asl.json",
        &name,
        input,
    )
    .await?;
    // A run that failed for some tenants: say which, and why, before the one-line error.
    let summary = exec
        .history
        .iter()
        .rev()
        .find(|e| e.kind == "PassStateExited" && e.details["name"] == "Summarise")
        .and_then(|e| e.details["output"].as_str())
        .and_then(|o| serde_json::from_str::<Value>(o).ok());
    for f in summary
        .as_ref()
        .and_then(|s| s["failed"].as_array())
        .into_iter()
        .flatten()
    {
        // The child's own error is inside the Cause of startExecution's failure.
        let failure = &f["failure"];
        let child: Value = failure["Cause"]
            .as_str()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or(Value::Null);
        eprintln!(
            "{}: failed: {}: {}",
            f["tenant_id"].as_str().unwrap_or("?"),
            child["Error"]
                .as_str()
                .or(failure["Error"].as_str())
                .unwrap_or("?"),
            child["Cause"]
                .as_str()
                .or(failure["Cause"].as_str())
                .unwrap_or("?")
        );
    }
    let out = conclude(&deps, exec).await?;
    let results = out["results"].as_array().cloned().unwrap_or_default();
    for e in out["erased"].as_array().into_iter().flatten() {
        println!(
            "{}: left out, erased (certificate seq {} on gdpr-erasure)",
            e["tenant_id"].as_str().unwrap_or("?"),
            e["erasure_seq"]
        );
    }
    if results.is_empty() && out["erased"].as_array().is_none_or(Vec::is_empty) {
        println!("no tenant is of tier {tier} ([backup.tenant_tiers] in the catalog)");
    }
    for r in &results {
        println!(
            "{}: backup {}, {} records",
            r["tenant_id"].as_str().unwrap_or("?"),
            r["backup"]["backup_id"].as_str().unwrap_or("?"),
            r["backup"]["records"]
        );
    }
    Ok(())
}

pub(super) async fn start_on_aws(
    arn: Option<&str>,
    env: &str,
    name: &str,
    input: &Value,
) -> Result<()> {
    let arn = arn.with_context(|| format!("--aws needs --state-machine-arn (or {env})"))?;
    let cfg = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let exec = crate::aws::start(&cfg, arn, name, input).await?;
    println!("started {exec}");
    Ok(())
}

async fn list(tenant: &str, ctx: &Ctx) -> Result<()> {
    let deps = connect_existing(&ctx.data_dir, ctx.catalog()).await?;
    let t = TenantId::parse(tenant)?;
    let all = steps::backup::list(&deps, &t).await?;
    if all.is_empty() {
        println!("{tenant} has no backup");
        return Ok(());
    }
    println!(
        "{:<52} {:<11} {:<8} {:>9} {:>10}  {:<24} expires",
        "backup", "kind", "tier", "records", "bytes", "created"
    );
    for m in &all {
        println!(
            "{:<52} {:<11} {:<8} {:>9} {:>10}  {:<24} {}",
            m.backup_id,
            match m.kind {
                lifecycle::backup::BackupKind::Full => "full",
                lifecycle::backup::BackupKind::Incremental => "incremental",
            },
            m.tier,
            m.records(),
            m.bytes(),
            m.created_at,
            m.expires_at
        );
    }
    Ok(())
}

async fn prune(tenant: Option<&str>, ctx: &Ctx) -> Result<()> {
    let deps = connect_existing(&ctx.data_dir, ctx.catalog()).await?;
    let tenants: Vec<TenantId> = match tenant {
        Some(t) => vec![TenantId::parse(t)?],
        None => steps::backup::tenants_with_backups(&deps).await?,
    };
    if tenants.is_empty() {
        bail!("no tenant has backups");
    }
    for t in tenants {
        let p = steps::backup::prune(&deps, &t).await?;
        println!(
            "{}: deleted {} backup(s){}, kept {}{}",
            t,
            p.deleted.len(),
            if p.abandoned.is_empty() {
                String::new()
            } else {
                format!(" and {} abandoned unfinished", p.abandoned.len())
            },
            p.kept,
            if p.held_by.is_empty() {
                String::new()
            } else {
                format!(" (legal hold {})", p.held_by.join(", "))
            }
        );
    }
    super::ledger::publish_all(&deps, None).await?;
    Ok(())
}
