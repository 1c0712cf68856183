//! finalize: ends a migration at 100 % on the target. The reverse copies still pending
//! are applied to the source and the two sides are compared (the source repaired from
//! the target, now the truth, if they differ); then writes are fenced for a moment, the
//! last reverse copies applied, and the target becomes the tenant's only location. Ends
//! with a signed MIGRATED certificate holding both fingerprints. A migration of kind
//! `restore` leaves the source as the restore found it.

use lifecycle::StepError;
use lifecycle::error::from_input;
use lifecycle::migration::{MigrationKind, Phase};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steps::migrating::{
    MigrationRef, catch_up_all, certify_end, fence, load, pairs, route, save, trim_feeds,
};
use steps::mover::{Direction, compare};
use stores::Deps;
use tenant_runtime::Budget;

/// The outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    /// The migration.
    #[serde(flatten)]
    pub migration: MigrationRef,
    /// MIGRATED.
    pub phase: Phase,
    /// The tenant's location now.
    pub location: String,
    /// Ledger seq of the certificate.
    pub certificate_seq: u64,
    /// True when the record was already final (a retried call).
    pub already_final: bool,
}

/// Finalizes the migration.
pub async fn handler(input: Value, deps: &Deps, budget: Budget) -> Result<Output, StepError> {
    let r: MigrationRef = from_input(input, "finalize")?;
    let tenant = &r.tenant_id;
    let mut rec = load(deps, &r).await?;
    let already_final = rec.phase == Phase::Migrated;
    if !already_final {
        rec.phase.transition(Phase::Migrated)?;
        // Compare while both sides still receive every write (target first, then the
        // reverse copy): a full scan under a fence would pause writes for as long as the
        // tenant is large. Keys caught mid-write are re-read before they count.
        // A restore's writes went source first to the end: what the target may lack is
        // on the source's feed. A migration's went target first at 100 %: the other way.
        let restore = rec.kind == MigrationKind::Restore;
        let last = if restore {
            Direction::Forward
        } else {
            Direction::Backward
        };
        catch_up_all(deps, &mut rec, last, budget.deadline()).await?;
        let page = rec.options.page_size as usize;
        // After a restore the source is what the restore replaced: it differs from the
        // target by design and is kept as it is (its records carry higher revisions, so a
        // repair could not bring them back to the backup's anyway).
        for (fwd, back) in pairs(deps, &rec, Direction::Forward)?
            .into_iter()
            .zip(pairs(deps, &rec, Direction::Backward)?)
            .filter(|_| !restore)
        {
            let mut c = compare(&fwd, tenant, false, page).await?;
            if c.source != c.target {
                // The target is the truth now: repair the source from it.
                let fixed = compare(&back, tenant, true, page).await?;
                rec.checkpoints
                    .entry(fwd.system.clone())
                    .or_default()
                    .repaired += fixed.repaired;
                c = compare(&fwd, tenant, false, page).await?;
            }
            if c.source != c.target {
                return Err(StepError::ChecksumMismatch {
                    system: fwd.system.clone(),
                    detail: format!("{} differing key(s) after repair", c.differing),
                });
            }
            rec.fingerprints
                .insert(fwd.system.clone(), (c.source, c.target));
        }
        // The switch itself: fence, apply the last reverse copies, route to the target
        // alone. The unfenced catch-up first keeps the fenced one short.
        catch_up_all(deps, &mut rec, last, budget.deadline()).await?;
        fence(deps, tenant, &rec).await?;
        let lag = catch_up_all(deps, &mut rec, last, budget.deadline()).await?;
        if lag > 0 {
            return Err(StepError::CatchUpTimeout { lag });
        }
        route(deps, tenant, &rec, Phase::Migrated).await?;
        rec.advance(Phase::Migrated)?;
        save(deps, &mut rec).await?;
        trim_feeds(deps, &rec).await?;
    }
    let cert = certify_end(deps, &rec, "migrated").await?;
    tracing::info!(migration_id = %rec.migration_id, seq = cert.entry.seq, "migration finalized");
    Ok(Output {
        migration: r,
        phase: rec.phase,
        location: rec.target.clone(),
        certificate_seq: cert.entry.seq,
        already_final,
    })
}
