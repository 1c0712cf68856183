//! check-health: the gate after each cutover step's soak. The target's error rate above
//! 1 % or its p95 above twice the baseline (the source's p95 measured before cutover)
//! is `HealthGateBreached`, which the state machine answers with a rollback.

use lifecycle::StepError;
use lifecycle::error::from_input;
use lifecycle::migration::{Env, Health, Phase, gate};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steps::migrating::{MigrationRef, current_routing, load, save};
use stores::Deps;
use tenant_runtime::Budget;

/// What the step returns when the gate is open.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    /// The migration.
    #[serde(flatten)]
    pub migration: MigrationRef,
    /// The cutover percent checked.
    pub percent: u8,
    /// What the target served at this step.
    pub target: Health,
    /// The baseline p95, microseconds (0: none measured).
    pub baseline_p95_us: u64,
    /// True when the target served at least `min_requests`.
    pub sampled: bool,
    /// True once the last step (100 %) has passed.
    pub last: bool,
}

/// Reads the routers' windows for the current epoch and applies the gate.
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<Output, StepError> {
    let r: MigrationRef = from_input(input, "check-health")?;
    let mut rec = load(deps, &r).await?;
    let Phase::Cutover(percent) = rec.phase else {
        return Err(StepError::invalid(format!(
            "health is checked during cutover, not in phase {:?}",
            rec.phase
        )));
    };
    let (routing, _) = current_routing(deps, &r.tenant_id, &rec).await?;
    let health = deps
        .routing()?
        .health(&r.tenant_id, routing.epoch, Env::Target)
        .await?
        .health();
    let baseline = rec.baseline_p95_us.unwrap_or(0);
    rec.gates.insert(percent.to_string(), health);
    let verdict = gate(health, baseline);
    if let Err(breach) = &verdict {
        rec.reason = Some(format!("health gate at {percent} %: {breach}"));
    }
    save(deps, &mut rec).await?;
    tracing::info!(migration_id = %rec.migration_id, percent, requests = health.requests, errors = health.errors, p95_us = health.p95_us, open = verdict.is_ok(), "health gate");
    verdict.map_err(|b| StepError::HealthGateBreached(format!("at {percent} %: {b}")))?;
    Ok(Output {
        migration: r,
        percent,
        target: health,
        baseline_p95_us: baseline,
        sampled: health.requests >= rec.options.min_requests,
        last: percent == 100,
    })
}
