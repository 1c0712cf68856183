//! restore-system: replays one system's chunks (each checked, opened and transformed)
//! into the target location until done or out of time; the state machine loops on
//! `progress.done`. Writes are conditional on revisions, so a repeated chunk is harmless.

use lifecycle::StepError;
use lifecycle::error::from_input;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steps::backup::{RestorePlan, RestoreProgress, restore_step};
use stores::Deps;
use tenant_runtime::Budget;

/// The plan and one system's progress: the step's input and its continuation.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Io {
    /// The plan from plan-restore.
    pub plan: RestorePlan,
    /// The system's progress so far.
    pub progress: RestoreProgress,
}

/// Restores as much as the budget allows.
pub async fn handler(input: Value, deps: &Deps, budget: Budget) -> Result<Io, StepError> {
    let io: Io = from_input(input, "restore-system")?;
    let progress = restore_step(deps, &io.plan, io.progress, budget.deadline()).await?;
    tracing::info!(restore_id = %io.plan.restore_id, system = %progress.system, applied = progress.applied, done = progress.done, "restore pass");
    Ok(Io {
        plan: io.plan,
        progress,
    })
}
