//! `tenantctl`: the tenant-lifecycle command line. The commands live in
//! [`tenantctl::cmd`], one module each; this is the parser and the dispatch.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tenantctl::cmd::{self, Ctx};

// Ledger verification is JSON-heavy (parse, canonicalise, hash per entry); mimalloc's
// allocation fast path makes it measurably quicker than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Demo(cmd::demo::Args),
    /// Run state machines in the local simulator.
    Sim {
        #[command(subcommand)]
        cmd: cmd::sim::SimCmd,
    },
    /// Erase a tenant: locally through the simulator, or on AWS with --aws.
    Erase(cmd::erase::Args),
    /// Back a tenant up (`backup <tenant>`), list its backups, or prune expired ones.
    Backup(cmd::backup::Args),
    /// Clone a tenant into another location with its personal data anonymised
    /// (`clone <tenant> [--to staging] [--sync configs] [--as id]`).
    Clone(cmd::clone::Args),
    /// Restore a backup into a new location (`restore <backup_id> [--to-time T] [--to L]`).
    Restore(cmd::backup::RestoreArgs),
    /// Migrate a tenant with zero downtime (`migrate <tenant> --from blue --to green`),
    /// locally through the simulator or on AWS with --aws; or `migrate status|rollback`.
    #[command(args_conflicts_with_subcommands = true)]
    Migrate(cmd::migrate::Args),
    /// Verify the certificate ledger against named keys and checkpoints; publish
    /// checkpoints; rotate the signing key.
    Ledger {
        #[command(subcommand)]
        cmd: cmd::ledger::LedgerCmd,
    },
    /// Verify, export or prove certificates.
    Cert {
        #[command(subcommand)]
        cmd: cmd::cert::CertCmd,
    },
    /// Place, release and list legal holds.
    Hold {
        #[command(subcommand)]
        cmd: cmd::hold::HoldCmd,
    },
    /// Count a tenant's records in every catalog system.
    Count(cmd::count::Args),
    /// Find places outside the catalog (buckets, tables, log groups, schemas, Redis keys)
    /// that hold a tenant.
    Discover(cmd::discover::Args),
    /// Benchmarks that compare against a peer tool in the same run.
    Bench {
        #[command(subcommand)]
        cmd: cmd::bench::BenchCmd,
    },
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
    {
        use tracing_subscriber::prelude::*;
        // Each layer its own filter: RUST_LOG governs the log lines, while the steps'
        // progress events always reach the bars.
        let progress = tracing_subscriber::filter::Targets::new()
            .with_target(steps::progress::TARGET, tracing::Level::DEBUG);
        let _ = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .with(tenantctl::progress::Bars.with_filter(progress))
            .try_init();
    }
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
    let ctx = Ctx {
        data_dir: cli.data_dir,
        catalog: cli.catalog,
    };
    match cli.cmd {
        Cmd::Demo(args) => cmd::demo::run(args, &ctx).await,
        Cmd::Sim { cmd } => cmd::sim::run(cmd, &ctx).await,
        Cmd::Erase(args) => cmd::erase::run(args, &ctx).await,
        Cmd::Backup(args) => cmd::backup::run(args, &ctx).await,
        Cmd::Restore(args) => cmd::backup::restore(args, &ctx).await,
        Cmd::Clone(args) => cmd::clone::run(args, &ctx).await,
        Cmd::Migrate(args) => cmd::migrate::run(args, &ctx).await,
        Cmd::Ledger { cmd } => cmd::ledger::run(cmd, &ctx).await,
        Cmd::Cert { cmd } => cmd::cert::run(cmd, &ctx).await,
        Cmd::Hold { cmd } => cmd::hold::run(cmd, &ctx).await,
        Cmd::Count(args) => cmd::count::run(args, &ctx).await,
        Cmd::Discover(args) => cmd::discover::run(args, &ctx).await,
        Cmd::Bench { cmd } => cmd::bench::run(cmd, &ctx).await,
    }
}
