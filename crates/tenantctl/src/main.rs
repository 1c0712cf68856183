//! `tenantctl`: the tenant-lifecycle command line.

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use clap::{Parser, Subcommand};
use lifecycle::TenantId;
use lifecycle::certificate::{canonical_bytes, public_key_to_pem};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use stores::LegalHold;
use tenantctl::demo::{self, Scenarios};
use tenantctl::verify::{key_ring, verify_certificate_file, verify_ledger};
use tenantctl::world::{connect, load_machine, simulate, world_file, write_history};

mod bench;
mod bench_migrate;
mod bench_s3copy;

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
    /// Inspect and verify the certificate ledger.
    Ledger {
        #[command(subcommand)]
        cmd: LedgerCmd,
    },
    /// Verify or export certificates.
    Cert {
        #[command(subcommand)]
        cmd: CertCmd,
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
enum LedgerCmd {
    /// Recompute every hash and signature; name the first bad seq and why.
    Verify {
        /// Only this chain.
        #[arg(long)]
        chain: Option<String>,
        /// Extra public keys (PEM) to trust, e.g. an older or a KMS key.
        #[arg(long = "public-key")]
        public_keys: Vec<PathBuf>,
    },
    /// Print the signing public key (SubjectPublicKeyInfo PEM).
    PublicKey,
    /// Print entries as JSON lines.
    Show {
        /// Chain.
        #[arg(long, default_value = "gdpr-erasure")]
        chain: String,
        /// First seq.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most entries.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum CertCmd {
    /// Verify a certificate file (or a ledger entry file).
    Verify {
        /// The certificate JSON.
        file: PathBuf,
        /// Public keys (PEM) to trust; the world's key is always trusted.
        #[arg(long = "public-key")]
        public_keys: Vec<PathBuf>,
    },
    /// Write the canonical body, the DER signature and the public key, for openssl.
    Export {
        /// The certificate JSON.
        file: PathBuf,
        /// Output directory.
        #[arg(long)]
        out_dir: PathBuf,
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
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn main() -> ExitCode {
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
            let text = std::fs::read_to_string(&asl)
                .with_context(|| format!("cannot read {}", asl.display()))?;
            let machine = load_machine(&text, &asl.display().to_string())?;
            let input = read_json(&input)?;
            let name = name
                .or_else(|| {
                    input
                        .get("request_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "local".into());
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
            let deps = Arc::new(connect(&data_dir, catalog.as_deref()).await?);
            let name = input
                .get("request_id")
                .and_then(Value::as_str)
                .unwrap_or("erasure")
                .to_owned();
            let exec = simulate(deps, &machine, &name, input, true).await;
            let hist =
                history.unwrap_or_else(|| data_dir.join("history").join(format!("{name}.json")));
            write_history(&hist, &exec)?;
            if let Some(cert) = exec.output.as_ref().and_then(|o| o.get("certificate")) {
                let path = data_dir.join("certificates").join(format!("{name}.json"));
                std::fs::create_dir_all(data_dir.join("certificates"))?;
                std::fs::write(&path, serde_json::to_vec_pretty(cert)?)?;
                println!("certificate: {}", path.display());
            }
            finish(&exec)
        }
        Cmd::Ledger { cmd } => {
            let deps = connect(&data_dir, catalog.as_deref()).await?;
            match cmd {
                LedgerCmd::Verify { chain, public_keys } => {
                    let pems: Vec<&Path> = public_keys.iter().map(PathBuf::as_path).collect();
                    let ring = key_ring(&pems, Some(deps.signer().await?.public_key()))?;
                    let results =
                        verify_ledger(&*deps.ledger, &ring, chain.as_deref(), true).await?;
                    if results.is_empty() {
                        println!("the ledger is empty");
                    }
                    let mut bad = None;
                    for r in &results {
                        match &r.outcome {
                            Ok(n) => println!(
                                "chain {}: {n} entries verified (hashes, links, positions, signatures, head)",
                                r.chain
                            ),
                            Err(f) => {
                                println!(
                                    "chain {}: FAILED at seq {}: {}",
                                    r.chain, f.seq, f.reason
                                );
                                bad.get_or_insert(format!(
                                    "chain {} is broken at seq {}: {}",
                                    r.chain, f.seq, f.reason
                                ));
                            }
                        }
                    }
                    match bad {
                        Some(b) => bail!(b),
                        None => Ok(()),
                    }
                }
                LedgerCmd::PublicKey => {
                    print!("{}", public_key_to_pem(deps.signer().await?.public_key())?);
                    Ok(())
                }
                LedgerCmd::Show { chain, from, limit } => {
                    for (_, raw) in deps.ledger.entries(&chain, from, limit).await? {
                        println!("{raw}");
                    }
                    Ok(())
                }
            }
        }
        Cmd::Cert {
            cmd: CertCmd::Verify { file, public_keys },
        } => {
            let deps = connect(&data_dir, catalog.as_deref()).await?;
            let pems: Vec<&Path> = public_keys.iter().map(PathBuf::as_path).collect();
            let ring = key_ring(&pems, Some(deps.signer().await?.public_key()))?;
            let body = verify_certificate_file(&file, &ring)?;
            println!(
                "valid: {} certificate, outcome {}, request {}, tenant {}, ledger {} seq {}",
                body["kind"].as_str().unwrap_or("?"),
                body["outcome"].as_str().unwrap_or("?"),
                body["request_id"].as_str().unwrap_or("?"),
                body["tenant_id"].as_str().unwrap_or("?"),
                body["chain"].as_str().unwrap_or("?"),
                body["seq"]
            );
            Ok(())
        }
        Cmd::Cert {
            cmd: CertCmd::Export { file, out_dir },
        } => {
            let doc = read_json(&file)?;
            let body = doc
                .get("certificate")
                .context("no \"certificate\" object in the file")?;
            let sig = doc
                .pointer("/signature/der_base64")
                .and_then(Value::as_str)
                .context("no signature.der_base64 in the file")?;
            let der = base64::engine::general_purpose::STANDARD
                .decode(sig)
                .context("signature.der_base64 is not base64")?;
            let deps = connect(&data_dir, catalog.as_deref()).await?;
            std::fs::create_dir_all(&out_dir)?;
            std::fs::write(out_dir.join("body.json"), canonical_bytes(body)?)?;
            std::fs::write(out_dir.join("sig.der"), der)?;
            std::fs::write(
                out_dir.join("key.pem"),
                public_key_to_pem(deps.signer().await?.public_key())?,
            )?;
            println!(
                "wrote body.json (RFC 8785 canonical), sig.der and key.pem to {}",
                out_dir.display()
            );
            println!(
                "check: openssl dgst -sha256 -verify {0}/key.pem -signature {0}/sig.der {0}/body.json",
                out_dir.display()
            );
            Ok(())
        }
        Cmd::Hold { cmd } => {
            let deps = connect(&data_dir, catalog.as_deref()).await?;
            match cmd {
                HoldCmd::Place {
                    tenant,
                    hold_id,
                    reason,
                } => {
                    TenantId::parse(&tenant)?;
                    if hold_id.trim().is_empty() {
                        bail!("--hold-id is empty");
                    }
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
            let deps = connect(&data_dir, catalog.as_deref()).await?;
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
            let deps = connect(data_dir, catalog).await?;
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
    let dir = data_dir.join("demo");
    // The demo owns its own directory and starts it afresh; the user's world is elsewhere.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot reset {}", dir.display()))?;
    }
    println!(
        "tenantctl demo: GDPR Art. 17 erasure and zero-downtime migration in the local simulator (no AWS account, no services)"
    );
    println!("world: {}\n", world_file(&dir).display());
    let scenarios: Scenarios = serde_json::from_str(tenantctl::SCENARIOS)?;
    let deps = Arc::new(connect(&dir, None).await?);
    let world = stores::local::World::open(&world_file(&dir))?;
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
            let ds = stores::migrate::Locator::dataset(&*deps, &rec.systems[0], &rec.target)?;
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

    println!("\nverifying offline:");
    let ring = key_ring(&[], Some(deps.signer().await?.public_key()))?;
    for r in verify_ledger(&*deps.ledger, &ring, None, false).await? {
        match r.outcome {
            Ok(n) => println!(
                "  ledger chain {}: {n} entries, every hash, link and signature valid",
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
        verify_certificate_file(&path, &ring)?;
        println!("  certificate {} valid", path.display());
    }
    let pem_path = dir.join("ledger-public-key.pem");
    std::fs::write(
        &pem_path,
        public_key_to_pem(deps.signer().await?.public_key())?,
    )?;
    let first = scenarios.erasure_requests[0]["request_id"]
        .as_str()
        .unwrap_or("?");
    println!("\npublic key: {}", pem_path.display());
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
