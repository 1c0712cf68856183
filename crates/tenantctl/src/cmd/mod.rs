//! The subcommands of `tenantctl`, one module each. Every module has a `run(args, ctx)`
//! that `main` dispatches to; what several of them need is here.

pub mod backup;
pub mod bench;
pub mod cert;
pub mod clone;
pub mod count;
pub mod demo;
pub mod demo_services;
pub mod discover;
pub mod erase;
pub mod hold;
pub mod ledger;
pub mod migrate;
pub mod sim;

use anyhow::{Result, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The global options every command runs with.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Directory of the local world (the embedded data file, certificates, histories).
    pub data_dir: PathBuf,
    /// Catalog TOML; the embedded local catalog when absent.
    pub catalog: Option<PathBuf>,
}

impl Ctx {
    /// The catalog file, as the connect functions take it.
    pub fn catalog(&self) -> Option<&Path> {
        self.catalog.as_deref()
    }
}

/// Reads a request file: size-capped JSON that names no key twice.
pub fn read_json(path: &Path) -> Result<Value> {
    crate::input::read_json_strict(path, crate::input::MAX_REQUEST_BYTES)
}

/// Succeeds when the execution did; otherwise an error naming its failure.
pub fn finish(exec: &::sim::Execution) -> Result<()> {
    match exec.status {
        ::sim::Status::Succeeded => Ok(()),
        ::sim::Status::Failed => {
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
