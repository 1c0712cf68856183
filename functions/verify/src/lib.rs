//! verify: compares source and target per system. COUNT compares live record counts,
//! HASH order-independent fingerprints, FULL diffs record by record and repairs only the
//! records that differ (the source is the truth), then compares again. A mismatch is
//! `ChecksumMismatch`, which the state machine answers with a FULL pass.

use lifecycle::StepError;
use lifecycle::error::from_input;
use lifecycle::migration::{MigrationKind, Phase, VerifyMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steps::migrating::{MigrationRef, load, pairs, save};
use steps::mover::{Direction, compare};
use stores::Deps;
use tenant_runtime::Budget;

#[derive(Debug, Deserialize)]
struct Input {
    #[serde(flatten)]
    migration: MigrationRef,
    #[serde(default)]
    mode: VerifyMode,
}

/// One system's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SystemResult {
    /// System.
    pub system: String,
    /// Live records at the source.
    pub source_count: u64,
    /// Live records at the target.
    pub target_count: u64,
    /// Records repaired (FULL).
    pub repaired: u64,
}

/// What the step returns when source and target agree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    /// The migration.
    #[serde(flatten)]
    pub migration: MigrationRef,
    /// The mode used.
    pub mode: VerifyMode,
    /// Per system.
    pub systems: Vec<SystemResult>,
}

/// Verifies (and with FULL, repairs) every system.
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<Output, StepError> {
    let input: Input = from_input(input, "verify")?;
    let mut rec = load(deps, &input.migration).await?;
    if !matches!(rec.phase, Phase::CatchingUp | Phase::Verified) {
        return Err(StepError::invalid(format!(
            "verification runs after catch-up, not in phase {:?}",
            rec.phase
        )));
    }
    let tenant = &input.migration.tenant_id;
    let page = rec.options.page_size as usize;
    let mut results = Vec::new();
    let mut failed = None;
    for pair in pairs(deps, &rec, Direction::Forward)? {
        let repair = input.mode == VerifyMode::Full && rec.kind != MigrationKind::Restore;
        let mut c = compare(&pair, tenant, repair, page).await?;
        let repaired = c.repaired;
        if repair && repaired > 0 {
            c = compare(&pair, tenant, false, page).await?;
        }
        let cp = rec.checkpoints.entry(pair.system.clone()).or_default();
        cp.repaired += repaired;
        rec.fingerprints
            .insert(pair.system.clone(), (c.source, c.target));
        tracing::info!(system = %pair.system, mode = ?input.mode, repaired, differing = c.differing, "verified");
        // A restore's target is the backup's state plus the changes since the cutover
        // began, so it differs from the source by design; its restore was verified
        // against the backup's manifest and certified (checked at provision).
        let restored = rec.kind == MigrationKind::Restore;
        if !restored && !c.passes(input.mode) && failed.is_none() {
            failed = Some(StepError::ChecksumMismatch {
                system: pair.system.clone(),
                detail: format!(
                    "{} source vs {} target live records, {} differing key(s), fingerprints {:032x} vs {:032x}",
                    c.source.count, c.target.count, c.differing, c.source.sum, c.target.sum
                ),
            });
        }
        results.push(SystemResult {
            system: pair.system.clone(),
            source_count: c.source.count,
            target_count: c.target.count,
            repaired,
        });
    }
    if let Some(e) = failed {
        save(deps, &mut rec).await?;
        return Err(e);
    }
    if rec.phase == Phase::CatchingUp {
        rec.advance(Phase::Verified)?;
    }
    save(deps, &mut rec).await?;
    Ok(Output {
        migration: input.migration,
        mode: input.mode,
        systems: results,
    })
}
