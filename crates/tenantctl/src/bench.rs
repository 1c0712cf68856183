//! Benchmarks (filled in below).

use anyhow::Result;
use clap::Subcommand;
use std::path::Path;

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCmd {
    /// Placeholder.
    Ledger,
}

/// Runs a benchmark.
pub async fn run(_cmd: BenchCmd, _data_dir: &Path) -> Result<()> {
    anyhow::bail!("not yet")
}
