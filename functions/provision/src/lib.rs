//! provision: validates a migration request, creates its record (or resumes the running
//! one with the same target), and provisions the target of every system; idempotent. A
//! migration of kind `restore` moves onto a location a certified restore filled.

use lifecycle::StepError;
use lifecycle::migration::{
    HOME, MigrationOptions, MigrationRecord, MigrationRequest, Phase, Routing,
};
use ports::migrate::Locator;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steps::migrating::{MigrationRef, save};
use stores::Deps;
use tenant_runtime::Budget;

/// What the later steps take, plus the tunables the state machine reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    /// The migration.
    #[serde(flatten)]
    pub migration: MigrationRef,
    /// Where it stands.
    pub phase: Phase,
    /// Tunables (the state machine's soak Wait reads `soak_seconds`).
    pub options: MigrationOptions,
    /// Systems moved.
    pub systems: Vec<String>,
    /// Targets created by this call (0 when resumed).
    pub provisioned: u64,
    /// True when a running migration was resumed rather than created.
    pub resumed: bool,
}

/// Creates or resumes the migration and provisions its targets.
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<Output, StepError> {
    let req = MigrationRequest::parse(&input, &deps.catalog)?;
    let table = deps.migrations()?;
    let tenant = &req.tenant_id;
    let existing = table.get(tenant).await?;
    let routing = deps.routing()?.get(tenant).await?;
    let source = routing
        .as_ref()
        .map_or(HOME.to_owned(), |r| r.source.clone());

    let (mut rec, resumed) = match existing {
        Some(e) if !e.phase.is_terminal() => {
            let same = req
                .migration_id
                .as_deref()
                .is_none_or(|id| id == e.migration_id)
                && e.to == req.to;
            if !same {
                return Err(StepError::invalid(format!(
                    "tenant {tenant} is mid-migration {} ({:?} to {}); let it finish or roll it back first",
                    e.migration_id, e.phase, e.to
                )));
            }
            (e, true)
        }
        prior => {
            if let Some(id) = &req.restore_id {
                // The target is already filled, by a restore whose certificate must say
                // so and whose records are still exactly those (checked once, at the
                // start: a resumed cutover's target has taken writes since).
                let systems: Vec<String> = req.systems.iter().map(ToString::to_string).collect();
                steps::backup::certified_restore(deps, tenant, id, &req.to, &systems).await?;
            }
            if req.to == source {
                return Err(StepError::invalid(format!(
                    "tenant {tenant} already lives in {source}"
                )));
            }
            if source != HOME && req.from != source {
                return Err(StepError::invalid(format!(
                    "tenant {tenant} lives in {source}, not {}; `from` must name where it is",
                    req.from
                )));
            }
            let n = prior.as_ref().map_or(1, |p| p.version + 1);
            let id = req
                .migration_id
                .clone()
                .unwrap_or_else(|| format!("mig-{tenant}-{}-{n}", req.to));
            let mut rec = MigrationRecord::new(&id, &req, &source, &deps.clock.now_rfc3339());
            let names: Vec<String> = deps
                .catalog
                .systems
                .iter()
                .map(|s| s.name.to_string())
                .collect();
            rec.schemas_before = MigrationRecord::carry_schemas(prior.as_ref(), &names);
            let expected = prior.as_ref().map(|p| p.version);
            rec.version = expected.map_or(0, |v| v + 1);
            table.put(&rec, expected).await?;
            (rec, false)
        }
    };

    // The target of each system is made in the source's shape (a bucket or table that is
    // missing is created and tagged with who made it; one of another shape is refused).
    let tags = [
        ("tenant-lifecycle:tenant".to_owned(), tenant.to_string()),
        (
            "tenant-lifecycle:migration".to_owned(),
            rec.migration_id.clone(),
        ),
    ];
    let mut provisioned = 0;
    for s in &rec.systems {
        let source = deps.dataset(s, &rec.source)?;
        let target = deps.dataset(s, &rec.target)?;
        provisioned += u64::from(target.provision_like(tenant, &*source, &tags).await?);
    }
    if rec.phase == Phase::Pending {
        rec.advance(Phase::Provisioned)?;
        save(deps, &mut rec).await?;
    }
    if routing.is_none() {
        // Routers need a record to watch before writes can be dual-routed.
        let r = Routing::single(tenant.as_str(), 1, &rec.source);
        match deps.routing()?.put(&r, None).await {
            Ok(()) => {}
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(tenant_id = %tenant, migration_id = %rec.migration_id, resumed, provisioned, "migration provisioned");
    Ok(Output {
        migration: MigrationRef {
            tenant_id: tenant.clone(),
            migration_id: rec.migration_id.clone(),
        },
        phase: rec.phase,
        options: rec.options.clone(),
        systems: rec.systems.clone(),
        provisioned,
        resumed,
    })
}
