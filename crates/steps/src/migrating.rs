//! What the migration steps share: loading the record, building the dataset pairs,
//! moving the routing record one epoch on, the fenced flip, catch-up over every system,
//! and the certificate that ends a migration.

use crate::certify::{Certified, Draft, certify};
use crate::mover::{self, Direction, Pair};
use lifecycle::migration::{MIGRATION_CHAIN, MigrationRecord, Phase, Routing};
use lifecycle::{StepError, TenantId};
use ports::Services;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How every step after provision names its migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationRef {
    /// Tenant id.
    pub tenant_id: TenantId,
    /// Migration id.
    pub migration_id: String,
}

/// How long the flip waits for routers to acknowledge the fence.
pub const FENCE_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the tenant's migration and checks it is the one named.
pub async fn load(deps: &dyn Services, r: &MigrationRef) -> Result<MigrationRecord, StepError> {
    let rec =
        deps.migrations()?.get(&r.tenant_id).await?.ok_or_else(|| {
            StepError::invalid(format!("tenant {} has no migration", r.tenant_id))
        })?;
    if rec.migration_id != r.migration_id {
        return Err(StepError::invalid(format!(
            "tenant {}'s current migration is {}, not {}",
            r.tenant_id, rec.migration_id, r.migration_id
        )));
    }
    Ok(rec)
}

/// Saves the record (conditional on its version).
pub async fn save(deps: &dyn Services, rec: &mut MigrationRecord) -> Result<(), StepError> {
    mover::save(&**deps.migrations()?, rec, &**deps.clock()).await
}

/// One pair per system of the migration, oriented by `dir`.
pub fn pairs(
    deps: &dyn Services,
    rec: &MigrationRecord,
    dir: Direction,
) -> Result<Vec<Pair>, StepError> {
    rec.systems
        .iter()
        .map(|s| {
            let (from, to) = match dir {
                Direction::Forward => (&rec.source, &rec.target),
                Direction::Backward => (&rec.target, &rec.source),
            };
            Ok(Pair {
                system: s.clone(),
                from: deps.dataset(s, from)?,
                to: deps.dataset(s, to)?,
                feed: deps.feed(s, from)?,
                transform: rec.transform.for_kind(deps.kind(s)?),
                direction: dir,
            })
        })
        .collect()
}

/// The tenant's routing record (a single-location one at epoch 0 if it has none).
pub async fn current_routing(
    deps: &dyn Services,
    tenant: &TenantId,
    rec: &MigrationRecord,
) -> Result<(Routing, Option<u64>), StepError> {
    Ok(match deps.routing()?.get(tenant).await? {
        Some(r) => {
            let e = r.epoch;
            (r, Some(e))
        }
        None => (Routing::single(tenant.as_str(), 0, &rec.source), None),
    })
}

/// Writes `next` at the epoch after the stored one; `MigrationConflict` if it moved.
pub async fn put_routing(
    deps: &dyn Services,
    next: impl FnOnce(u64) -> Routing,
    expected: Option<u64>,
) -> Result<Routing, StepError> {
    let r = next(expected.map_or(1, |e| e + 1));
    deps.routing()?.put(&r, expected).await?;
    Ok(r)
}

/// Routes the tenant as `phase` implies, one epoch on.
pub async fn route(
    deps: &dyn Services,
    tenant: &TenantId,
    rec: &MigrationRecord,
    phase: Phase,
) -> Result<Routing, StepError> {
    let (_, expected) = current_routing(deps, tenant, rec).await?;
    put_routing(deps, |e| Routing::for_phase(rec, e, phase), expected).await
}

/// Fences writes (one epoch on) and waits until every live router has drained. Returns
/// the fenced routing. On a router that never acknowledges, the fence is lifted again and
/// the step fails with `MigrationConflict`.
pub async fn fence(
    deps: &dyn Services,
    tenant: &TenantId,
    rec: &MigrationRecord,
) -> Result<Routing, StepError> {
    let (cur, expected) = current_routing(deps, tenant, rec).await?;
    let fenced = put_routing(deps, |e| cur.fenced(e), expected).await?;
    match mover::wait_for_acks(&**deps.routing()?, tenant, fenced.epoch, FENCE_ACK_TIMEOUT).await {
        Ok(_) => Ok(fenced),
        Err(e) => {
            let lifted = Routing {
                epoch: fenced.epoch + 1,
                ..cur
            };
            deps.routing()?.put(&lifted, Some(fenced.epoch)).await?;
            Err(e)
        }
    }
}

/// Applies every system's pending changes in `dir` until `deadline`; updates the
/// checkpoints and returns the total lag left.
pub async fn catch_up_all(
    deps: &dyn Services,
    rec: &mut MigrationRecord,
    dir: Direction,
    deadline: Instant,
) -> Result<u64, StepError> {
    Ok(catch_up_paced(deps, rec, dir, deadline).await?.0)
}

/// [`catch_up_all`], with the call's pace: its rate against the writes' rate.
pub async fn catch_up_paced(
    deps: &dyn Services,
    rec: &mut MigrationRecord,
    dir: Direction,
    deadline: Instant,
) -> Result<(u64, lifecycle::migration::Pace), StepError> {
    let started = Instant::now();
    let (mut entries, mut arrived, mut drained) = (0, 0, true);
    let tenant = TenantId::parse(&rec.tenant_id)?;
    let page = rec.options.page_size as usize;
    let mut lag = 0;
    for pair in pairs(deps, rec, dir)? {
        let cp = rec.checkpoints.entry(pair.system.clone()).or_default();
        let from = match dir {
            Direction::Forward => cp.feed_applied,
            Direction::Backward => cp.reverse_applied,
        };
        let done = mover::catch_up(&pair, &tenant, from, deadline, page).await?;
        match dir {
            Direction::Forward => {
                cp.feed_applied = done.position;
                cp.caught_up += done.applied;
                cp.lag = done.lag;
            }
            Direction::Backward => cp.reverse_applied = done.position,
        }
        lag += done.lag;
        entries += done.entries;
        arrived += done.arrived;
        drained &= done.drained;
    }
    let pace =
        lifecycle::migration::Pace::of(entries, arrived, started.elapsed().as_secs_f64(), drained);
    Ok((lag, pace))
}

/// Drops the change feeds' entries the migration no longer needs.
pub async fn trim_feeds(deps: &dyn Services, rec: &MigrationRecord) -> Result<(), StepError> {
    let tenant = TenantId::parse(&rec.tenant_id)?;
    for s in &rec.systems {
        for loc in [&rec.source, &rec.target] {
            let feed = deps.feed(s, loc)?;
            let head = feed.head(&tenant).await?;
            feed.trim(&tenant, head).await?;
        }
    }
    Ok(())
}

/// Signs the certificate of a finished migration and records it on the ledger (once per
/// migration id).
pub async fn certify_end(
    deps: &dyn Services,
    rec: &MigrationRecord,
    outcome: &str,
) -> Result<Certified, StepError> {
    let draft = Draft {
        kind: MIGRATION_CHAIN.to_owned(),
        outcome: outcome.to_owned(),
        request_id: rec.migration_id.clone(),
        tenant_id: rec.tenant_id.clone(),
        details: rec.certificate_details(),
        unique: true,
    };
    let signer = deps.signer().await?;
    certify(&**deps.ledger(), &*signer, &**deps.clock(), &draft).await
}
