//! cutover: moves a migration to dual-write (`"to": "DUAL_WRITE"`) or to its next cutover
//! percent (`"to": "next"`: 10, 25, 50, then 100). Before each percent step the target is
//! caught up, so keys whose dual-write failed are repaired before more reads move. The
//! flip to 100 % fences writes, waits until every router has drained, applies the last
//! changes, and routes writes target-first with a reverse copy to the source.

use lifecycle::StepError;
use lifecycle::error::from_input;
use lifecycle::migration::{Env, Phase};
use ports::migrate::Locator;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::{Duration, Instant};
use steps::migrating::{MigrationRef, catch_up_all, current_routing, fence, load, route, save};
use steps::mover::Direction;
use stores::Deps;
use tenant_runtime::Budget;

/// The move asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum To {
    #[serde(rename = "DUAL_WRITE")]
    DualWrite,
    #[serde(rename = "next")]
    Next,
}

#[derive(Debug, Deserialize)]
struct Input {
    #[serde(flatten)]
    migration: MigrationRef,
    to: To,
}

/// Where the migration now stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    /// The migration.
    #[serde(flatten)]
    pub migration: MigrationRef,
    /// The new phase.
    pub phase: Phase,
    /// Percent of reads on the target.
    pub percent: u8,
    /// The routing epoch written.
    pub epoch: u64,
    /// For the flip: how long writes were fenced, microseconds.
    pub fenced_us: Option<u64>,
}

/// Applies one cutover move.
pub async fn handler(input: Value, deps: &Deps, budget: Budget) -> Result<Output, StepError> {
    let input: Input = from_input(input, "cutover")?;
    let tenant = &input.migration.tenant_id;
    let mut rec = load(deps, &input.migration).await?;
    let mut fenced_us = None;
    let next = match input.to {
        To::DualWrite => rec.dual_write_phase()?,
        To::Next => {
            let next = rec.next_cutover_phase()?;
            if rec.phase == Phase::Verified {
                // The baseline is what the source served while dual-writing, before any
                // read moved.
                let (routing, _) = current_routing(deps, tenant, &rec).await?;
                let base = deps
                    .routing()?
                    .health(tenant, routing.epoch, Env::Source)
                    .await?;
                rec.baseline_p95_us = (base.requests > 0).then(|| base.p95_us());
            }
            next
        }
    };
    let routing = if next == Phase::Cutover(100) {
        // Catch up while writes still flow, so the fenced catch-up below only has the
        // last few milliseconds of changes to apply: that is what bounds the write pause.
        catch_up_all(deps, &mut rec, Direction::Forward, budget.deadline()).await?;
        let t0 = Instant::now();
        fence(deps, tenant, &rec).await?;
        // Writes are held: the feed's head is final, so this catch-up ends at lag 0.
        let far = Instant::now() + Duration::from_secs(600);
        let lag = catch_up_all(
            deps,
            &mut rec,
            Direction::Forward,
            far.min(budget.deadline()),
        )
        .await?;
        if lag > 0 {
            return Err(StepError::CatchUpTimeout { lag });
        }
        for s in rec.systems.clone() {
            let head = deps.feed(&s, &rec.target)?.head(tenant).await?;
            rec.checkpoints.entry(s).or_default().reverse_applied = head;
        }
        let r = route(deps, tenant, &rec, next).await?;
        fenced_us = Some(t0.elapsed().as_micros() as u64);
        r
    } else {
        if matches!(next, Phase::Cutover(_)) {
            catch_up_all(deps, &mut rec, Direction::Forward, budget.deadline()).await?;
        }
        route(deps, tenant, &rec, next).await?
    };
    rec.advance(next)?;
    save(deps, &mut rec).await?;
    tracing::info!(migration_id = %rec.migration_id, phase = ?next, epoch = routing.epoch, fenced_us, "cutover");
    Ok(Output {
        migration: input.migration,
        phase: next,
        percent: routing.read_percent,
        epoch: routing.epoch,
        fenced_us,
    })
}
