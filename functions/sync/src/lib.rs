//! sync: the bulk copy (pages in key order, a checkpoint saved after each, so a killed
//! call resumes where it stopped) or the catch-up from the source's change feed. Both
//! work until the time budget ends and return a continuation the state machine loops on.

use lifecycle::StepError;
use lifecycle::error::from_input;
use lifecycle::migration::MigrationKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steps::migrating::{MigrationRef, catch_up_paced, load, pairs, save};
use steps::mover::{Direction, copy_page};
use stores::Deps;
use tenant_runtime::Budget;

/// Which sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    Bulk,
    CatchUp,
}

#[derive(Debug, Deserialize)]
struct Input {
    #[serde(flatten)]
    migration: MigrationRef,
    mode: Mode,
}

/// The continuation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    /// The migration.
    #[serde(flatten)]
    pub migration: MigrationRef,
    /// Bulk: every system copied. Catch-up: lag at or below `max_lag`.
    pub done: bool,
    /// Records copied by the bulk copy so far (all systems).
    pub copied: u64,
    /// Records the bulk copy skipped because the target was as new or newer.
    pub skipped: u64,
    /// Changes still to apply (catch-up).
    pub lag: u64,
    /// Catch-up's rate against the writes' rate in this call, and whether the writes
    /// outpace it (the cutover waits for it up to the catch-up deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pace: Option<lifecycle::migration::Pace>,
}

/// Runs one sync call.
pub async fn handler(input: Value, deps: &Deps, budget: Budget) -> Result<Output, StepError> {
    let input: Input = from_input(input, "sync")?;
    let mut rec = load(deps, &input.migration).await?;
    let tenant = &input.migration.tenant_id;
    let mut pace = None;
    let done = match input.mode {
        Mode::Bulk => {
            if rec.begin_bulk()? {
                save(deps, &mut rec).await?;
            }
            let page = rec.options.page_size as usize;
            if rec.kind == MigrationKind::Restore {
                // The target holds the restored records: nothing is copied. Changes from
                // here on are caught up onto it, then dual-written, like a migration's.
                for pair in pairs(deps, &rec, Direction::Forward)? {
                    let head = pair.feed.head(tenant).await?;
                    let cp = rec.checkpoints.entry(pair.system.clone()).or_default();
                    if !cp.bulk_done {
                        (cp.feed_start, cp.feed_applied, cp.bulk_done) = (head, head, true);
                    }
                }
                save(deps, &mut rec).await?;
            }
            let mut all = true;
            for pair in pairs(deps, &rec, Direction::Forward)? {
                let cp = rec.checkpoints.entry(pair.system.clone()).or_default();
                if cp.bulk_done {
                    continue;
                }
                if cp.cursor.is_none() && cp.feed_start == 0 {
                    // Changes from here on are caught up later; record where they begin
                    // before the first page is read.
                    cp.feed_start = pair.feed.head(tenant).await?;
                    cp.feed_applied = cp.feed_start;
                    save(deps, &mut rec).await?;
                }
                loop {
                    let cp = rec.checkpoints.entry(pair.system.clone()).or_default();
                    let finished = copy_page(&pair, tenant, cp, page).await?;
                    save(deps, &mut rec).await?;
                    if finished {
                        break;
                    }
                    if budget.expired() {
                        all = false;
                        break;
                    }
                }
                if !all {
                    break;
                }
            }
            all
        }
        Mode::CatchUp => {
            if rec.begin_catch_up(deps.clock.now())? {
                save(deps, &mut rec).await?;
            }
            // Catch-up stops at the budget or the migration's catch-up deadline, whichever
            // is first, so a writer faster than catch-up cannot hold the call forever.
            let until = match rec.catchup_remaining(deps.clock.now())? {
                Some(left) => std::time::Instant::now()
                    .checked_add(left)
                    .map_or(budget.deadline(), |d| budget.deadline().min(d)),
                None => budget.deadline(),
            };
            let (lag, p) = catch_up_paced(deps, &mut rec, Direction::Forward, until).await?;
            if p.outpaced {
                tracing::warn!(
                    migration_id = %rec.migration_id,
                    lag,
                    applied_per_s = p.applied_per_s,
                    writes_per_s = p.writes_per_s,
                    "writes outpace catch-up: the cutover waits until it catches up or its deadline passes"
                );
            }
            pace = Some(p);
            let caught_up = lag <= rec.options.max_lag;
            if !caught_up && rec.catchup_expired(deps.clock.now())? {
                rec.reason = Some(format!("catch-up timed out with lag {lag}"));
                save(deps, &mut rec).await?;
                return Err(StepError::CatchUpTimeout { lag });
            }
            save(deps, &mut rec).await?;
            caught_up
        }
    };
    let (copied, skipped, lag) = rec.checkpoints.values().fold((0, 0, 0), |a, c| {
        (a.0 + c.copied, a.1 + c.skipped, a.2 + c.lag)
    });
    tracing::info!(migration_id = %rec.migration_id, ?input.mode, done, copied, lag, "sync");
    Ok(Output {
        migration: input.migration,
        done,
        copied,
        skipped,
        lag,
        pace,
    })
}
