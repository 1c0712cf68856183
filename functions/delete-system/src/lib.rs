//! delete-system: erases one tenant from one system until done or out of time, and returns
//! a continuation (counts so far, `done`) that the state machine loops on with a Choice.
//! Retried after partial progress it simply continues: erasure is idempotent.

use lifecycle::error::from_input;
use lifecycle::{EraseMethod, RequestId, StepError, SystemKind, SystemName, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stores::Deps;
use tenant_runtime::Budget;

/// What the step takes: the first call carries no counts, a continuation carries them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    request_id: RequestId,
    tenant_id: TenantId,
    system: SystemName,
    // Echoed back by a continuation; the persisted progress is what counts.
    #[serde(default)]
    #[allow(dead_code)]
    records_erased: u64,
    #[serde(default)]
    passes: u64,
    // Echoed back by a continuation; recomputed here, never trusted.
    #[serde(default)]
    #[allow(dead_code)]
    kind: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    method: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    done: Option<bool>,
}

/// The continuation, and once `done`, the system's result. `records_erased` is read back
/// from the persisted progress, never summed from the input.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Output {
    /// Request id.
    pub request_id: RequestId,
    /// Tenant id.
    pub tenant_id: TenantId,
    /// System erased.
    pub system: SystemName,
    /// Its kind.
    pub kind: SystemKind,
    /// How it was erased.
    pub method: EraseMethod,
    /// Records erased so far by this request.
    pub records_erased: u64,
    /// Calls made so far.
    pub passes: u64,
    /// True when nothing of the tenant remained at the end of this call.
    pub done: bool,
}

/// Erases as much as the budget allows. Refuses if a legal hold became active since the
/// check, so a hold placed mid-erasure stops it at the next pass.
pub async fn handler(input: Value, deps: &Deps, budget: Budget) -> Result<Output, StepError> {
    let input: Input = from_input(input, "delete-system")?;
    let store = deps.store(input.system.as_str())?;
    let holds = deps.holds.active(&input.tenant_id).await?;
    if !holds.is_empty() {
        return Err(StepError::LegalHoldActive {
            tenant_id: input.tenant_id.to_string(),
            holds: holds.into_iter().map(|h| h.hold_id).collect(),
        });
    }
    // What the tenant holds before the first pass of this execution: the first count
    // ever taken is kept, so a certificate after a kill still counts what was there.
    let found = if input.passes == 0 {
        Some(store.count(&input.tenant_id).await?)
    } else {
        None
    };
    let pass = store.erase(&input.tenant_id, budget.deadline()).await?;
    // Persisted after every pass, so a kill and a resume lose no count.
    let progress = deps
        .requests
        .record_pass(
            input.request_id.as_str(),
            input.system.as_str(),
            found,
            pass.erased,
            pass.complete,
        )
        .await?;
    let out = Output {
        records_erased: progress.certified_count(),
        passes: input.passes + 1,
        done: pass.complete,
        kind: store.kind(),
        method: store.capabilities().erase_method,
        request_id: input.request_id,
        tenant_id: input.tenant_id,
        system: input.system,
    };
    tracing::info!(
        request_id = %out.request_id,
        system = %out.system,
        erased_this_pass = pass.erased,
        records_erased = out.records_erased,
        done = out.done,
        "erase pass"
    );
    Ok(out)
}
