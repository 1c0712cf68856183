//! `tenantctl`: the tenant-lifecycle command line.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use lifecycle::TenantId;
use lifecycle::certificate::public_key_to_pem;
use ports::LegalHold;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tenantctl::demo::{self, Scenarios};
use tenantctl::verify::{key_ring, verify_certificate_file};
use tenantctl::world::{
    connect, connect_existing, load_machine, simulate, world_file, write_history,
};

// Ledger verification is JSON-heavy (parse, canonicalise, hash per entry); mimalloc's
// allocation fast path makes it measurably quicker than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod bench_ledger;
mod bench_migrate;
mod bench_s3copy;
mod ledger_cmd;

#[derive(Parser)]
#[command(
    name = "tenantctl",
    version,
    about = "Tenant lifecycle: GDPR erasure with signed certificates on a hash-chained ledger, locally or on AWS Step Functions"
)]
struct Cli {
    /// Directory of the local world (the embedded data file, certificates, histories).
    #[arg(
        long,
        global = true,
        env = "TENANT_DATA_DIR",
        default_value = ".tenant-world"
    )]
    data_dir: PathBuf,
    /// Catalog TOML; the embedded local catalog when absent.
    #[arg(long, global = true, env = "TENANT_CATALOG_FILE")]
    catalog: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Seed the demo tenants and run the erasure requests of scenarios.json locally.
    Demo {
        /// Multiplies the number of seeded records.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
    },
    /// Run state machines in the local simulator.
    Sim {
        #[command(subcommand)]
        cmd: SimCmd,
    },
    /// Erase a tenant: locally through the simulator, or on AWS with --aws.
    Erase {
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
    },
    /// Migrate a tenant with zero downtime (`migrate <tenant> --from blue --to green`),
    /// locally through the simulator or on AWS with --aws; or `migrate status|rollback`.
    #[command(args_conflicts_with_subcommands = true)]
    Migrate {
        #[command(subcommand)]
        cmd: Option<MigrateCmd>,
        #[command(flatten)]
        start: MigrateArgs,
    },
    /// Verify the certificate ledger against named keys and checkpoints; publish
    /// checkpoints; rotate the signing key.
    Ledger {
        #[command(subcommand)]
        cmd: ledger_cmd::LedgerCmd,
    },
    /// Verify, export or prove certificates.
    Cert {
        #[command(subcommand)]
        cmd: ledger_cmd::CertCmd,
    },
    /// Place, release and list legal holds.
    Hold {
        #[command(subcommand)]
        cmd: HoldCmd,
    },
    /// Count a tenant's records in every catalog system.
    Count {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
    },
    /// Benchmarks that compare against a peer tool in the same run.
    Bench {
        #[command(subcommand)]
        cmd: bench::BenchCmd,
    },
}

#[derive(clap::Args)]
struct MigrateArgs {
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

#[derive(Subcommand)]
enum MigrateCmd {
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

#[derive(Subcommand)]
enum SimCmd {
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

#[derive(Subcommand)]
enum HoldCmd {
    /// Place a legal hold.
    Place {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// Hold id (case number).
        #[arg(long)]
        hold_id: String,
        /// Reason (kept, never logged nor certified).
        #[arg(long)]
        reason: String,
    },
    /// Release a legal hold.
    Release {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// Hold id.
        #[arg(long)]
        hold_id: String,
    },
    /// List active holds.
    List {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
    },
}

fn read_json(path: &Path) -> Result<Value> {
    tenantctl::input::read_json_strict(path, tenantctl::input::MAX_REQUEST_BYTES)
}

/// An execution name from user input: the same charset as request ids, so that it can
/// never become a path outside the history directory.
fn execution_name(name: &str) -> Result<String> {
    Ok(lifecycle::RequestId::parse(name)
        .map_err(|e| anyhow::anyhow!("InvalidRequest: execution name: {e}"))?
        .to_string())
}

fn main() -> ExitCode {
    // `tenantctl count | head -1`: printing to a closed pipe is not a crash. Leave quietly
    // with the status a process killed by SIGPIPE has.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") || msg.contains("failed printing to stdout") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tenantctl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tenantctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let data_dir = cli.data_dir.clone();
    let catalog = cli.catalog.clone();
    match cli.cmd {
        Cmd::Demo { scale } => run_demo(&data_dir, scale).await,
        Cmd::Sim {
            cmd:
                SimCmd::Run {
                    asl,
                    input,
                    name,
                    history,
                },
        } => {
            let text = tenantctl::input::read_text(&asl, 1 << 20)?;
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
            let deps = Arc::new(connect(&data_dir, catalog.as_deref()).await?);
            println!("simulating {} as execution {name}", asl.display());
            let exec = simulate(deps, &machine, &name, input, true).await;
            let hist =
                history.unwrap_or_else(|| data_dir.join("history").join(format!("{name}.json")));
            write_history(&hist, &exec)?;
            println!("history: {}", hist.display());
            finish(&exec)
        }
        Cmd::Erase {
            request,
            aws: true,
            state_machine_arn,
            ..
        } => {
            let input = read_json(&request)?;
            let arn = state_machine_arn
                .context("--aws needs --state-machine-arn (or GDPR_ERASURE_STATE_MACHINE_ARN)")?;
            let cfg = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let exec = tenantctl::aws::start_erasure(&cfg, &arn, &input).await?;
            println!("started {exec}");
            Ok(())
        }
        Cmd::Erase {
            request,
            aws: false,
            history,
            ..
        } => {
            let input = read_json(&request)?;
            let machine = load_machine(
                tenantctl::GDPR_ERASURE_ASL,
                "statemachines/gdpr-erasure.asl.json",
            )?;
            // Validated before anything is opened or written: a refused request changes
            // nothing, and only a valid request id names the files written for it.
            let cat = tenantctl::world::load_catalog(catalog.as_deref())?;
            let valid = lifecycle::erasure::ErasureRequest::parse(&input, &cat)
                .map_err(|e| anyhow::anyhow!("{}: {e}", e.error_type()))?;
            let name = valid.request_id.to_string();
            let deps = Arc::new(tenantctl::world::connect_with(&data_dir, cat, false).await?);
            let exec = simulate(deps.clone(), &machine, &name, input, true).await;
            let hist =
                history.unwrap_or_else(|| data_dir.join("history").join(format!("{name}.json")));
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
                ledger_cmd::publish_all(&deps, Some(lifecycle::erasure::ERASURE_CHAIN)).await?;
            }
            finish(&exec)
        }
        Cmd::Ledger { cmd } => ledger_cmd::ledger(cmd, &data_dir, catalog.as_deref()).await,
        Cmd::Cert { cmd } => ledger_cmd::cert(cmd, &data_dir, catalog.as_deref()).await,
        Cmd::Hold { cmd } => {
            let deps = match &cmd {
                HoldCmd::List { .. } => connect_existing(&data_dir, catalog.as_deref()).await?,
                _ => connect(&data_dir, catalog.as_deref()).await?,
            };
            match cmd {
                HoldCmd::Place {
                    tenant,
                    hold_id,
                    reason,
                } => {
                    TenantId::parse(&tenant)?;
                    // The id goes on the permanent ledger when a hold refuses an erasure:
                    // an id, never free text (the reason stays in the erasable hold store).
                    lifecycle::HoldId::parse(&hold_id)?;
                    deps.holds
                        .place(&LegalHold {
                            tenant_id: tenant.clone(),
                            hold_id: hold_id.clone(),
                            reason,
                            placed_at: deps.clock.now_rfc3339(),
                            released_at: None,
                        })
                        .await?;
                    println!("legal hold {hold_id} placed on {tenant}");
                }
                HoldCmd::Release { tenant, hold_id } => {
                    deps.holds
                        .release(
                            &TenantId::parse(&tenant)?,
                            &hold_id,
                            &deps.clock.now_rfc3339(),
                        )
                        .await?;
                    println!("legal hold {hold_id} on {tenant} released");
                }
                HoldCmd::List { tenant } => {
                    for h in deps.holds.active(&TenantId::parse(&tenant)?).await? {
                        println!("{}\tplaced {}", h.hold_id, h.placed_at);
                    }
                }
            }
            Ok(())
        }
        Cmd::Count { tenant } => {
            let deps = connect_existing(&data_dir, catalog.as_deref()).await?;
            let tid = TenantId::parse(&tenant)?;
            for s in deps.catalog.system_names() {
                println!("{s:<12} {}", deps.store(&s)?.count(&tid).await?);
            }
            Ok(())
        }
        Cmd::Bench { cmd } => bench::run(cmd, &data_dir).await,
        Cmd::Migrate { cmd, start } => migrate(cmd, start, &data_dir, catalog.as_deref()).await,
    }
}

/// The local catalog with its `postgresql` system on PostgreSQL at `url`, schema `schema`.
fn pg_catalog(url: &str, schema: &str) -> String {
    let mut out = String::new();
    let mut in_pg = false;
    for line in tenantctl::LOCAL_CATALOG.lines() {
        if line.starts_with("name = ") {
            in_pg = line == "name = \"postgresql\"";
        }
        if in_pg && line.starts_with("backend = ") {
            out.push_str(&format!(
                "backend = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\"\n"
            ));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn migration_request(a: &MigrateArgs) -> Result<Value> {
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

async fn migrate(
    cmd: Option<MigrateCmd>,
    a: MigrateArgs,
    data_dir: &Path,
    catalog: Option<&Path>,
) -> Result<()> {
    match cmd {
        Some(MigrateCmd::Status { tenant }) => {
            let deps = connect_existing(data_dir, catalog).await?;
            let t = TenantId::parse(&tenant)?;
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
        Some(MigrateCmd::Rollback { tenant }) => {
            let deps = connect(data_dir, catalog).await?;
            let t = TenantId::parse(&tenant)?;
            let rec = deps
                .migrations()?
                .get(&t)
                .await?
                .with_context(|| format!("{tenant} has no migration"))?;
            let input = serde_json::json!({"tenant_id": tenant, "migration_id": rec.migration_id});
            let out = tenantctl::registry::call(
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
        None => {
            let req = migration_request(&a)?;
            if a.aws {
                let arn = a.state_machine_arn.as_deref().context(
                    "--aws needs --state-machine-arn (or TENANT_MIGRATION_STATE_MACHINE_ARN)",
                )?;
                let cfg = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                let exec = tenantctl::aws::start_migration(&cfg, arn, &req).await?;
                println!("started {exec}");
                return Ok(());
            }
            if !(0.0..=1.0).contains(&a.wait_scale) {
                bail!("--wait-scale must be between 0 and 1");
            }
            let deps = Arc::new(connect(data_dir, catalog).await?);
            let opts = tenantctl::migrate::RunOptions {
                wait_scale: a.wait_scale,
                workers: a.workload,
                live: true,
            };
            let report = tenantctl::migrate::run_local(deps, req, opts).await?;
            let hist = data_dir
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
    }
}

fn finish(exec: &sim::Execution) -> Result<()> {
    match exec.status {
        sim::Status::Succeeded => Ok(()),
        sim::Status::Failed => {
            // A Catch turns the real failure into the state machine's own; name both.
            let task = exec
                .history
                .iter()
                .rev()
                .find(|e| e.kind == "LambdaFunctionFailed")
                .filter(|e| e.details["error"].as_str() != exec.error.as_deref())
                .map(|e| {
                    format!(
                        "; caused by {}: {}",
                        e.details["error"].as_str().unwrap_or("?"),
                        e.details["cause"].as_str().unwrap_or("")
                    )
                })
                .unwrap_or_default();
            bail!(
                "execution {} failed: {}: {}{task}",
                exec.name,
                exec.error.as_deref().unwrap_or("?"),
                exec.cause.as_deref().unwrap_or("")
            )
        }
    }
}

async fn run_demo(data_dir: &Path, scale: f64) -> Result<()> {
    if !(scale > 0.0 && scale <= 100.0) {
        bail!("--scale must be in (0, 100], got {scale}");
    }
    // The demo writes its world into the data dir itself, so that afterwards the plain
    // commands (no flags) act on it. It starts afresh only a directory it made (marked),
    // and refuses to touch a world it did not make.
    let dir = data_dir.to_path_buf();
    let marker = dir.join(".tenant-demo");
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !empty && !marker.exists() {
            bail!(
                "{} holds a world the demo did not make; run the demo elsewhere with --data-dir <dir>",
                dir.display()
            );
        }
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot reset {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        &marker,
        "made by tenantctl demo; the next demo run replaces this directory\n",
    )?;
    println!(
        "tenantctl demo: GDPR Art. 17 erasure and zero-downtime migration in the local simulator (no AWS account, no services)"
    );
    println!("world: {}\n", world_file(&dir).display());
    let scenarios: Scenarios = serde_json::from_str(tenantctl::SCENARIOS)?;
    let deps = Arc::new(connect(&dir, None).await?);
    let world = stores::embedded::World::open(&world_file(&dir))?;
    let seeded = demo::seed(&world, &deps, &scenarios, scale, true)?;
    let tenants: Vec<String> = scenarios.tenants.iter().map(|t| t.id.clone()).collect();
    println!(
        "seeded {seeded} records for {} tenants across {} systems",
        tenants.len(),
        deps.catalog.systems.len()
    );
    let before = demo::counts(&deps, &tenants).await?;
    println!("\nrecords per tenant and system, before:");
    demo::print_counts(&deps, &tenants, &before, None);

    let machine = load_machine(
        tenantctl::GDPR_ERASURE_ASL,
        "statemachines/gdpr-erasure.asl.json",
    )?;
    let mut erased = Vec::new();
    for req in &scenarios.erasure_requests {
        let id = req["request_id"].as_str().unwrap_or("?");
        let tenant = req["tenant_id"].as_str().unwrap_or("?").to_owned();
        let systems: Vec<String> = req["systems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        println!("\n> {id}: erase {tenant} from {} systems", systems.len());
        let exec = demo::run_request(deps.clone(), &machine, req, &dir, true).await?;
        finish(&exec)?;
        let cert = &exec.output.as_ref().context("no output")?["certificate"]["certificate"];
        println!(
            "  certificate: {} records erased, chain {} seq {}, saved to {}",
            cert["details"]["records_erased_total"],
            cert["chain"].as_str().unwrap_or("?"),
            cert["seq"],
            dir.join("certificates")
                .join(format!("{id}.json"))
                .display()
        );
        erased.push((tenant, systems));
    }

    let held = "tenant_003_initech";
    demo::place_demo_hold(&deps, held).await?;
    let hold_req = serde_json::json!({
        "request_id": "gdpr_req_demo_hold_003", "tenant_id": held,
        "reason": "Erasure requested while litigation is pending", "systems": deps.catalog.system_names()
    });
    println!("\n> gdpr_req_demo_hold_003: erase {held}, which is under legal hold LIT-2025-0042");
    let exec = demo::run_request(deps.clone(), &machine, &hold_req, &dir, true).await?;
    if exec.error.as_deref() != Some("LegalHoldActive") {
        bail!("the held tenant was not refused: {:?}", exec.error);
    }
    println!("  refused with LegalHoldActive; nothing erased; the refusal is on the ledger");

    let again = &scenarios.erasure_requests[0];
    println!(
        "\n> {} again (idempotency)",
        again["request_id"].as_str().unwrap_or("?")
    );
    let exec = demo::run_request(deps.clone(), &machine, again, &dir, false).await?;
    let out = exec.output.as_ref().context("no output")?;
    if out["already_recorded"] != Value::Bool(true) {
        bail!("a certified request was erased again");
    }
    println!(
        "  already certified at seq {}: returned the existing certificate, erased nothing",
        out["certificate"]["certificate"]["seq"]
    );

    let after = demo::counts(&deps, &tenants).await?;
    println!("\nrecords per tenant and system, after (before->after where changed):");
    demo::print_counts(&deps, &tenants, &before, Some(&after));
    demo::check_outcome(&before, &after, &erased)?;
    println!(
        "  check: erased tenants hold 0 records in every requested system; every other count is unchanged"
    );

    println!("\nzero-downtime migrations, each while a workload runs through tenant-router:");
    for m in &scenarios.migrations {
        let mut req = m.clone();
        if let Some(o) = req.as_object_mut() {
            // Soaks of 10 s at 1 % of real time: the demo stays quick, the gates still see traffic.
            o.insert(
                "options".into(),
                serde_json::json!({"soak_seconds": 10, "page_size": 500}),
            );
        }
        let tenant = req["tenant_id"].as_str().unwrap_or("?").to_owned();
        let t0 = std::time::Instant::now();
        let opts = tenantctl::migrate::RunOptions {
            wait_scale: 0.01,
            workers: 2,
            live: false,
        };
        let report = tenantctl::migrate::run_local(deps.clone(), req, opts).await?;
        let hist = dir
            .join("history")
            .join(format!("{}.json", report.exec.name));
        write_history(&hist, &report.exec)?;
        finish(&report.exec)?;
        let rec = deps
            .migrations()?
            .get(&TenantId::parse(&tenant)?)
            .await?
            .context("no migration record")?;
        let copied: u64 = rec.checkpoints.values().map(|c| c.copied).sum();
        let pause = report.pauses_us.iter().max().copied().unwrap_or(0);
        println!(
            "> {tenant}: {:?} {} -> {}: {:?} in {:.2} s, {copied} records copied across {} systems",
            rec.kind,
            rec.from,
            rec.to,
            rec.phase,
            t0.elapsed().as_secs_f64(),
            rec.systems.len()
        );
        println!(
            "  workload: {} operations, {} failed, {} stale reads, {} acknowledged writes missing; longest write pause {:.1} ms",
            report.ops,
            report.failed,
            report.stale,
            report.lost,
            pause as f64 / 1000.0
        );
        if report.failed + report.stale + report.lost > 0 {
            bail!("the migration of {tenant} lost or failed operations");
        }
        let equal = rec.fingerprints.values().all(|(a, b)| a == b);
        println!(
            "  source and target fingerprints equal in every system: {equal}; history {}",
            hist.display()
        );
        if rec.transform != lifecycle::migration::Transform::None {
            let ds = ports::migrate::Locator::dataset(&*deps, &rec.systems[0], &rec.target)?;
            if let Some(r) = ds
                .scan(&TenantId::parse(&tenant)?, None, 1)
                .await?
                .into_iter()
                .next()
            {
                let body = String::from_utf8_lossy(r.body.as_deref().unwrap_or_default())
                    .chars()
                    .take(60)
                    .collect::<String>();
                println!("  a {} record at {}: {body}...", rec.systems[0], rec.target);
            }
        }
    }

    println!("\npublishing checkpoints outside the ledger (signed notes, C2SP tlog-checkpoint):");
    ledger_cmd::publish_all(&deps, None).await?;
    let pem_path = dir.join("ledger-public-key.pem");
    std::fs::write(
        &pem_path,
        public_key_to_pem(deps.signer().await?.public_key())?,
    )?;

    println!("\nverifying offline, trusting only {}:", pem_path.display());
    let ring = key_ring(&[pem_path.as_path()], None)?;
    let expected = tenantctl::verify::published(&**deps.checkpoints()?, &ring).await?;
    let opts = tenantctl::verify::VerifyOptions {
        checkpoints: expected,
        ..Default::default()
    };
    for r in tenantctl::verify::verify_ledger_with(&*deps.ledger, &ring, &opts).await? {
        match r.outcome {
            Ok(n) => println!(
                "  ledger chain {}: {n} entries, every hash, link, signature and Merkle root valid; consistent with its checkpoint",
                r.chain
            ),
            Err(f) => bail!(
                "ledger chain {} broken at seq {}: {}",
                r.chain,
                f.seq,
                f.reason
            ),
        }
    }
    for req in &scenarios.erasure_requests {
        let id = req["request_id"].as_str().unwrap_or("?");
        let path = dir.join("certificates").join(format!("{id}.json"));
        let doc = verify_certificate_file(&path, &ring)?;
        let seq = doc["certificate"]["seq"].as_u64().unwrap_or(0);
        let r = steps::checkpoint::receipt(
            &*deps.ledger,
            &**deps.checkpoints()?,
            lifecycle::erasure::ERASURE_CHAIN,
            seq,
            &ring,
        )
        .await?;
        let proof_path = path.with_extension("tlog-proof");
        std::fs::write(&proof_path, r.to_text())?;
        ledger_cmd::verify_receipt(&doc, &r.to_text(), &ring)?;
        println!(
            "  certificate {} valid; receipt {} ({} hashes) proves it is on the ledger",
            path.display(),
            proof_path.display(),
            r.proof.len()
        );
    }
    let first = scenarios.erasure_requests[0]["request_id"]
        .as_str()
        .unwrap_or("?");
    println!("\npublic key: {}", pem_path.display());
    // The default data dir needs no flag; any other is named in the commands shown.
    let dd = if dir == Path::new(".tenant-world") {
        String::new()
    } else {
        format!(" --data-dir {}", dir.display())
    };
    println!(
        "next, on this world{}:",
        if dd.is_empty() {
            " (no flags needed)"
        } else {
            ""
        }
    );
    println!(
        "  cargo run -q --{dd} ledger verify --trust {}",
        pem_path.display()
    );
    println!(
        "  cargo run -q --{dd} cert verify {0}/certificates/{first}.json --trust {1} --receipt {0}/certificates/{first}.tlog-proof",
        dir.display(),
        pem_path.display()
    );
    println!("  cargo run -q --{dd} count --tenant tenant_004_departed_customer");
    println!("check a certificate with openssl alone:");
    println!("  cert={}/certificates/{first}.json", dir.display());
    println!(
        "  jq -cjS .certificate \"$cert\" > body.json     # RFC 8785 form for these bodies (ASCII keys, integers)"
    );
    println!("  jq -r .signature.der_base64 \"$cert\" | base64 -d > sig.der");
    println!(
        "  openssl dgst -sha256 -verify {} -signature sig.der body.json",
        pem_path.display()
    );
    println!("histories: {}/history/*.json", dir.display());
    Ok(())
}
