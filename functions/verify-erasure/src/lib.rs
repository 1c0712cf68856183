//! verify-erasure: an independent re-scan. Counts the tenant's records in every requested
//! system, and runs discovery over every other catalog system too: residue anywhere is
//! `ResidualDataFound`, and no certificate can be issued.

use lifecycle::erasure::SystemVerification;
use lifecycle::error::from_input;
use lifecycle::{RequestId, StepError, SystemName, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stores::Deps;
use tenant_runtime::Budget;

/// One system's result from the erase step, as the Map returns it.
#[derive(Debug, Deserialize)]
struct Erased {
    system: SystemName,
    records_erased: u64,
    done: bool,
}

/// What the step takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    request_id: RequestId,
    tenant_id: TenantId,
    systems: Vec<SystemName>,
    erasure: Vec<Value>,
}

/// What the step returns when every system is clean.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    /// One entry per requested system.
    pub verifications: Vec<SystemVerification>,
    /// Catalog systems outside the request that discovery also found clean.
    pub discovered_clean: Vec<String>,
}

impl Output {
    /// Every system the re-scan covered.
    pub fn scanned(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .verifications
            .iter()
            .map(|v| v.system.clone())
            .collect();
        v.extend(self.discovered_clean.iter().cloned());
        v
    }
}

/// Re-scans and fails on the first residue found.
pub async fn handler(input: Value, deps: &Deps, _budget: Budget) -> Result<Output, StepError> {
    let input: Input = from_input(input, "verify-erasure")?;
    let mut erased = Vec::new();
    for e in input.erasure {
        let e: Erased = from_input(e, "verify-erasure erasure item")?;
        erased.push(e);
    }
    let progress = deps.requests.progress(input.request_id.as_str()).await?;
    let mut verifications = Vec::new();
    for system in &input.systems {
        let store = deps.store(system.as_str())?;
        let Some(result) = erased.iter().find(|e| e.system == *system) else {
            return Err(StepError::VerificationIncomplete(format!(
                "system {system} has no erasure result"
            )));
        };
        if !result.done {
            return Err(StepError::VerificationIncomplete(format!(
                "erasure of system {system} did not finish"
            )));
        }
        let residual = store.count(&input.tenant_id).await?;
        tracing::info!(request_id = %input.request_id, system = %system, residual, "verification scan");
        if residual > 0 {
            return Err(StepError::ResidualDataFound {
                system: system.to_string(),
                records: residual,
            });
        }
        let persisted = progress.iter().find(|p| p.system == system.as_str());
        verifications.push(SystemVerification {
            system: system.to_string(),
            kind: store.kind(),
            method: store.capabilities().erase_method,
            records_erased: persisted.map_or(result.records_erased, |p| p.certified_count()),
            records_found: persisted.and_then(|p| p.records_found).unwrap_or(0),
            residual_records: 0,
            verified_at: deps.clock.now_rfc3339(),
            windows: store.windows(&input.tenant_id).await?,
        });
    }
    // Discovery: systems the request did not name must not hold the tenant either.
    let mut discovered_clean = Vec::new();
    for name in deps.catalog.system_names() {
        if input.systems.iter().any(|s| s.as_str() == name) {
            continue;
        }
        let residual = deps.store(&name)?.count(&input.tenant_id).await?;
        if residual > 0 {
            tracing::warn!(request_id = %input.request_id, system = %name, residual, "discovery found data in an unrequested system");
            return Err(StepError::ResidualDataFound {
                system: name,
                records: residual,
            });
        }
        discovered_clean.push(name);
    }
    // Places outside the catalog: every bucket, table, log group, schema and Redis
    // database the catalog's [discovery] reaches.
    if deps.catalog.discovery.as_ref().is_some_and(|d| d.on_verify) {
        let found = stores::discovery::discover(deps, &input.tenant_id).await?;
        if let Some(f) = found.first() {
            tracing::warn!(request_id = %input.request_id, place = %f.place, records = f.records, places = found.len(), "discovery found the tenant outside the catalog");
            return Err(StepError::ResidualDataFound {
                system: format!("undocumented {}", f.place),
                records: f.records,
            });
        }
        discovered_clean.push("undocumented places (discovery)".into());
    }
    Ok(Output {
        verifications,
        discovered_clean,
    })
}
