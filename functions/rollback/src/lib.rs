//! rollback: sends every read and write of the tenant back to its source, losing nothing.
//! Before the flip the source already holds every write (dual-write is source-first), so
//! one routing write suffices. After it, writes are fenced, the target's changes are
//! copied back, and only then is the source made the sole truth. The routing record is
//! re-read after the write and rewritten at a new epoch if it drifted. Ends with a signed
//! ROLLED_BACK (or FAILED, when no write had reached the target) certificate.

use lifecycle::StepError;
use lifecycle::error::from_input;
use lifecycle::migration::{Phase, Routing, WriteMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Instant;
use steps::migrating::{
    FENCE_ACK_TIMEOUT, MigrationRef, catch_up_all, certify_end, current_routing, fence, load, save,
    trim_feeds,
};
use steps::mover::{Direction, wait_for_acks};
use stores::Deps;
use tenant_runtime::Budget;

#[derive(Debug, Deserialize)]
struct Input {
    #[serde(flatten)]
    migration: MigrationRef,
    /// The Catch's error output (`Error`, `Cause`), when a failure triggered it.
    #[serde(default)]
    error: Option<Value>,
}

/// The outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    /// The migration.
    #[serde(flatten)]
    pub migration: MigrationRef,
    /// ROLLED_BACK or FAILED.
    pub phase: Phase,
    /// Routing epoch that sends everything to the source.
    pub epoch: u64,
    /// From the start of the rollback until every live router routed to the source, ms.
    pub all_on_source_ms: u64,
    /// Ledger seq of the certificate.
    pub certificate_seq: u64,
}

fn reason(error: Option<&Value>) -> String {
    match error {
        Some(e) => format!(
            "{}: {}",
            e.get("Error").and_then(Value::as_str).unwrap_or("unknown"),
            e.get("Cause")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .take(300)
                .collect::<String>()
        ),
        None => "rolled back by an operator".to_owned(),
    }
}

/// Rolls the tenant back.
pub async fn handler(input: Value, deps: &Deps, budget: Budget) -> Result<Output, StepError> {
    let t0 = Instant::now();
    let input: Input = from_input(input, "rollback")?;
    let tenant = &input.migration.tenant_id;
    let mut rec = load(deps, &input.migration).await?;
    if rec.phase.is_terminal() && rec.phase != Phase::RolledBack && rec.phase != Phase::Failed {
        return Err(StepError::invalid(format!(
            "migration {} is {:?}; nothing to roll back",
            rec.migration_id, rec.phase
        )));
    }
    let end = if rec.phase.target_has_writes() || rec.phase == Phase::RolledBack {
        Phase::RolledBack
    } else {
        Phase::Failed
    };
    if !rec.phase.is_terminal() {
        let (cur, _) = current_routing(deps, tenant, &rec).await?;
        if matches!(
            cur.write_mode,
            WriteMode::DualTargetFirst | WriteMode::Fenced
        ) {
            // After the flip the target holds writes the source may lack.
            if cur.write_mode != WriteMode::Fenced {
                fence(deps, tenant, &rec).await?;
            }
            let lag = catch_up_all(deps, &mut rec, Direction::Backward, budget.deadline()).await?;
            if lag > 0 {
                return Err(StepError::CatchUpTimeout { lag });
            }
        }
        rec.reason
            .get_or_insert_with(|| reason(input.error.as_ref()));
        rec.reason = Some(reason(input.error.as_ref()));
    }
    // Write the source-only routing, then read it back: if it drifted (another writer),
    // write it again at a newer epoch.
    let mut epoch = 0;
    for _ in 0..3 {
        let (cur, expected) = current_routing(deps, tenant, &rec).await?;
        let want = Routing::single(tenant.as_str(), 0, &rec.source);
        let settled = cur.target.is_none()
            && cur.source == rec.source
            && cur.write_mode == WriteMode::SourceOnly;
        if settled {
            epoch = cur.epoch;
            break;
        }
        let next = Routing {
            epoch: expected.map_or(1, |e| e + 1),
            ..want
        };
        match deps.routing()?.put(&next, expected).await {
            Ok(()) => epoch = next.epoch,
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    if epoch == 0 {
        return Err(StepError::MigrationConflict(
            "routing kept changing during the rollback".into(),
        ));
    }
    // Every live router now routes to the source (or is presumed gone).
    let _ = wait_for_acks(&**deps.routing()?, tenant, epoch, FENCE_ACK_TIMEOUT).await;
    let all_on_source_ms = t0.elapsed().as_millis() as u64;
    if !rec.phase.is_terminal() {
        rec.advance(end)?;
        save(deps, &mut rec).await?;
        trim_feeds(deps, &rec).await?;
    }
    let outcome = if rec.phase == Phase::RolledBack {
        "rolled-back"
    } else {
        "failed"
    };
    let cert = certify_end(deps, &rec, outcome).await?;
    tracing::info!(migration_id = %rec.migration_id, phase = ?rec.phase, epoch, all_on_source_ms, "rolled back");
    Ok(Output {
        migration: input.migration,
        phase: rec.phase,
        epoch,
        all_on_source_ms,
        certificate_seq: cert.entry.seq,
    })
}
