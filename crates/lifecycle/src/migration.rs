//! Zero-downtime tenant migration, the pure part: the phase machine with its legal
//! transitions, the routing record and deterministic per-key routing, the health gate, and
//! the order-independent fingerprint that verification compares.
//!
//! Also the migration request, the migration record the steps share (with per-system
//! checkpoints, so any step can be re-run), the schema transform, and the latency
//! histogram the router reports. Nothing here moves data: the steps in functions/ do.

use crate::{Catalog, StepError, SystemName, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The ledger chain migration certificates go on.
pub const MIGRATION_CHAIN: &str = "tenant-migration";

/// The location a tenant's data has before it was ever migrated.
pub const HOME: &str = "home";

/// The cutover steps, in percent of reads sent to the target.
pub const CUTOVER_STEPS: [u8; 4] = [10, 25, 50, 100];

/// Where a migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "phase",
    content = "percent",
    rename_all = "SCREAMING_SNAKE_CASE"
)]
pub enum Phase {
    /// Accepted, nothing done yet.
    Pending,
    /// The target exists (table, prefix, schema).
    Provisioned,
    /// The bulk copy is running.
    BulkSync,
    /// Writes go to both environments, source first.
    DualWrite,
    /// Changes made during the bulk copy are being applied.
    CatchingUp,
    /// Source and target fingerprints match.
    Verified,
    /// Reads are partly served by the target (10, 25, 50 or 100 percent).
    Cutover(u8),
    /// Done; the target is the truth.
    Migrated,
    /// Traffic is back on the source; nothing was lost.
    RolledBack,
    /// Stopped before any traffic moved.
    Failed,
}

impl Phase {
    /// True for the phases a migration ends in.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Migrated | Self::RolledBack | Self::Failed)
    }

    /// True once writes reach the target, so ending it means a rollback, not a failure.
    pub fn target_has_writes(self) -> bool {
        matches!(
            self,
            Self::DualWrite | Self::CatchingUp | Self::Verified | Self::Cutover(_)
        )
    }

    /// The phase after `self` on the happy path.
    pub fn next(self) -> Option<Phase> {
        Some(match self {
            Self::Pending => Self::Provisioned,
            Self::Provisioned => Self::BulkSync,
            Self::BulkSync => Self::DualWrite,
            Self::DualWrite => Self::CatchingUp,
            Self::CatchingUp => Self::Verified,
            Self::Verified => Self::Cutover(CUTOVER_STEPS[0]),
            Self::Cutover(100) => Self::Migrated,
            Self::Cutover(p) => Self::Cutover(*CUTOVER_STEPS.iter().find(|s| **s > p)?),
            Self::Migrated | Self::RolledBack | Self::Failed => return None,
        })
    }

    /// Moves to `to` if that transition is legal; otherwise `InvalidRequest` naming both.
    pub fn transition(self, to: Phase) -> Result<Phase, StepError> {
        if let Self::Cutover(p) = to
            && !CUTOVER_STEPS.contains(&p)
        {
            return Err(StepError::invalid(format!(
                "cutover percent {p} is not one of {CUTOVER_STEPS:?}"
            )));
        }
        let legal = match (self, to) {
            _ if self.is_terminal() => false,
            (_, Self::RolledBack) => self.target_has_writes(),
            (_, Self::Failed) => !self.target_has_writes(),
            // A failed verification goes back to catching up (repair, then verify again).
            (Self::Verified, Self::CatchingUp) => true,
            // A cutover step may be held while the gate is watched, never skipped.
            (a, b) => {
                self.next() == Some(b) || a == b && matches!(a, Self::Cutover(_) | Self::CatchingUp)
            }
        };
        if legal {
            Ok(to)
        } else {
            Err(StepError::invalid(format!(
                "a migration cannot go from {self:?} to {to:?}"
            )))
        }
    }
}

/// How writes are routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteMode {
    /// Source only.
    SourceOnly,
    /// Source, then target; a target failure is queued for repair.
    DualSourceFirst,
    /// Writes are fenced for the final flip.
    Fenced,
    /// Target, then a reverse copy to the source, so rollback loses nothing.
    DualTargetFirst,
}

/// Which environment serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Env {
    /// The environment the tenant is leaving.
    Source,
    /// The environment it is moving to.
    Target,
}

/// The per-tenant routing record the router caches; `epoch` grows on every change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    /// Tenant id.
    pub tenant_id: String,
    /// Bumped on every change, so a cache notices.
    pub epoch: u64,
    /// Location that is the truth until the flip to 100 % (`home` before any migration).
    pub source: String,
    /// Location being migrated to, while a migration runs.
    #[serde(default)]
    pub target: Option<String>,
    /// Percent of reads served by the target.
    pub read_percent: u8,
    /// Write routing.
    pub write_mode: WriteMode,
    /// How a source record becomes a target record.
    #[serde(default)]
    pub transform: Transform,
}

impl Routing {
    /// A tenant living in one location, with no migration running.
    pub fn single(tenant_id: &str, epoch: u64, location: &str) -> Self {
        Self {
            tenant_id: tenant_id.to_owned(),
            epoch,
            source: location.to_owned(),
            target: None,
            read_percent: 0,
            write_mode: WriteMode::SourceOnly,
            transform: Transform::None,
        }
    }

    /// The routing a migration's phase implies, at `epoch`.
    pub fn for_phase(m: &MigrationRecord, epoch: u64, phase: Phase) -> Self {
        let (read_percent, write_mode) = match phase {
            Phase::DualWrite | Phase::CatchingUp | Phase::Verified => {
                (0, WriteMode::DualSourceFirst)
            }
            Phase::Cutover(100) => (100, WriteMode::DualTargetFirst),
            Phase::Cutover(p) => (p, WriteMode::DualSourceFirst),
            Phase::Migrated => return Self::single(&m.tenant_id, epoch, &m.target),
            Phase::RolledBack | Phase::Failed => {
                return Self::single(&m.tenant_id, epoch, &m.source);
            }
            Phase::Pending | Phase::Provisioned | Phase::BulkSync => (0, WriteMode::SourceOnly),
        };
        Self {
            tenant_id: m.tenant_id.clone(),
            epoch,
            source: m.source.clone(),
            target: (write_mode != WriteMode::SourceOnly).then(|| m.target.clone()),
            read_percent,
            write_mode,
            transform: m.transform,
        }
    }

    /// The same routing with writes fenced for the final flip, at `epoch`.
    pub fn fenced(&self, epoch: u64) -> Self {
        Self {
            epoch,
            write_mode: WriteMode::Fenced,
            ..self.clone()
        }
    }

    /// The environment that serves reads of `key`: deterministic per key, so a user sees
    /// one environment for one record, and monotonic in `read_percent`.
    pub fn read_env(&self, key: &str) -> Env {
        if self.target.is_some() && bucket(&self.tenant_id, key) < u64::from(self.read_percent) {
            Env::Target
        } else {
            Env::Source
        }
    }

    /// The location of an environment.
    pub fn location(&self, env: Env) -> &str {
        match (env, &self.target) {
            (Env::Target, Some(t)) => t,
            _ => &self.source,
        }
    }
}

/// A stable bucket in 0..100 for a tenant's key.
fn bucket(tenant: &str, key: &str) -> u64 {
    let d = Sha256::new()
        .chain_update(tenant.as_bytes())
        .chain_update([0])
        .chain_update(key.as_bytes())
        .finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b) % 100
}

/// Traffic measured in one environment over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Requests served.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// 95th percentile latency, microseconds.
    pub p95_us: u64,
}

/// Why a health gate closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GateBreach {
    /// More than 1 % of requests failed.
    #[error("error rate {errors}/{requests} is above 1 %")]
    ErrorRate {
        /// Failed requests.
        errors: u64,
        /// All requests.
        requests: u64,
    },
    /// p95 latency is more than twice the baseline.
    #[error("p95 {p95_us} us is above twice the baseline {baseline_us} us")]
    Latency {
        /// Observed p95.
        p95_us: u64,
        /// Baseline p95 measured before cutover.
        baseline_us: u64,
    },
}

/// The smallest baseline the latency gate compares with. Below a millisecond, a p95 moves
/// by 2x on scheduler jitter alone (an in-memory store answers in tens of microseconds);
/// a breach must be a real slowdown, not noise.
pub const MIN_BASELINE_US: u64 = 1_000;

/// The health gate: error rate above 1 % or p95 above twice the baseline (at least
/// [`MIN_BASELINE_US`]) breaches it. Integer arithmetic only, so the decision is exact and
/// reproducible from a certificate.
pub fn gate(sample: Health, baseline_p95_us: u64) -> Result<(), GateBreach> {
    if sample.errors.saturating_mul(100) > sample.requests {
        return Err(GateBreach::ErrorRate {
            errors: sample.errors,
            requests: sample.requests,
        });
    }
    let baseline = baseline_p95_us.max(MIN_BASELINE_US);
    if baseline_p95_us > 0 && sample.p95_us > baseline.saturating_mul(2) {
        return Err(GateBreach::Latency {
            p95_us: sample.p95_us,
            baseline_us: baseline,
        });
    }
    Ok(())
}

/// An order-independent fingerprint of a set of records: equal sets give equal
/// fingerprints whatever order they are read in, so source and target can be scanned in
/// parallel pages and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Records folded in.
    pub count: u64,
    /// Wrapping sum of the first 16 bytes of SHA-256(key, 0, body) per record; hex in
    /// JSON, because Step Functions state and certificates carry no 128-bit numbers.
    #[serde(with = "hex_u128")]
    pub sum: u128,
}

mod hex_u128 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:032x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let t = String::deserialize(d)?;
        u128::from_str_radix(&t, 16).map_err(D::Error::custom)
    }
}

impl Fingerprint {
    /// Folds one record in.
    pub fn add(&mut self, key: &str, body: &[u8]) {
        let d = Sha256::new()
            .chain_update(key.as_bytes())
            .chain_update([0])
            .chain_update(body)
            .finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        self.count += 1;
        self.sum = self.sum.wrapping_add(u128::from_be_bytes(b));
    }

    /// Combines two fingerprints of disjoint sets.
    pub fn merge(self, other: Fingerprint) -> Fingerprint {
        Fingerprint {
            count: self.count + other.count,
            sum: self.sum.wrapping_add(other.sum),
        }
    }
}

/// How a source record's body becomes the target's (and back, for the reverse copy after
/// the flip, so a rollback loses nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transform {
    /// Bodies are copied as they are.
    #[default]
    None,
    /// Schema v1 (a JSON value) to v2 (`{"schema_version": 2, "record": <v1>}`).
    SchemaV1ToV2,
}

impl Transform {
    /// Source body to target body.
    pub fn forward(self, body: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Self::None => Ok(body.to_vec()),
            // The v1 text is embedded verbatim, so backward(forward(x)) == x byte for byte
            // and fingerprints of a reverse copy match the original.
            Self::SchemaV1ToV2 => {
                let v1: &serde_json::value::RawValue = serde_json::from_slice(body)
                    .map_err(|e| format!("a v1 record is not JSON: {e}"))?;
                let mut out = Vec::with_capacity(body.len() + 32);
                out.extend_from_slice(b"{\"schema_version\":2,\"record\":");
                out.extend_from_slice(v1.get().as_bytes());
                out.push(b'}');
                Ok(out)
            }
        }
    }

    /// Target body back to source body.
    pub fn backward(self, body: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Self::None => Ok(body.to_vec()),
            Self::SchemaV1ToV2 => {
                #[derive(Deserialize)]
                struct V2<'a> {
                    schema_version: u32,
                    #[serde(borrow)]
                    record: &'a serde_json::value::RawValue,
                }
                let v2: V2<'_> = serde_json::from_slice(body)
                    .map_err(|e| format!("a v2 record is malformed: {e}"))?;
                if v2.schema_version != 2 {
                    return Err(format!(
                        "a v2 record has schema_version {}",
                        v2.schema_version
                    ));
                }
                Ok(v2.record.get().as_bytes().to_vec())
            }
        }
    }
}

/// Latency histogram with log-spaced buckets (about 9 % wide), mergeable across routers,
/// so the p95 of many reporters is computed exactly at bucket resolution rather than
/// averaged.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Window {
    /// Requests served.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Sparse histogram: bucket index to count.
    pub buckets: BTreeMap<u16, u64>,
}

const SUB_BUCKETS: u32 = 8;

fn bucket_of(us: u64) -> u16 {
    let us = us.max(1);
    let exp = 63 - us.leading_zeros();
    let frac = if exp >= 3 {
        ((us >> (exp - 3)) & 0x7) as u32
    } else {
        ((us << (3 - exp)) & 0x7) as u32
    };
    (exp * SUB_BUCKETS + frac) as u16
}

fn bucket_upper(b: u16) -> u64 {
    let (exp, frac) = (
        u32::from(b) / SUB_BUCKETS,
        u64::from(u32::from(b) % SUB_BUCKETS),
    );
    let base = 1u64 << exp;
    base + (base * (frac + 1)) / 8
}

impl Window {
    /// Records one request.
    pub fn record(&mut self, latency_us: u64, ok: bool) {
        self.requests += 1;
        if !ok {
            self.errors += 1;
        }
        *self.buckets.entry(bucket_of(latency_us)).or_default() += 1;
    }

    /// Adds another window in.
    pub fn merge(&mut self, other: &Window) {
        self.requests += other.requests;
        self.errors += other.errors;
        for (b, n) in &other.buckets {
            *self.buckets.entry(*b).or_default() += n;
        }
    }

    /// The 95th percentile, as the upper bound of its bucket (0 with no requests).
    pub fn p95_us(&self) -> u64 {
        let total: u64 = self.buckets.values().sum();
        if total == 0 {
            return 0;
        }
        let rank = total.saturating_mul(95).div_ceil(100);
        let mut seen = 0;
        for (b, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return bucket_upper(*b);
            }
        }
        0
    }

    /// The window as the gate reads it.
    pub fn health(&self) -> Health {
        Health {
            requests: self.requests,
            errors: self.errors,
            p95_us: self.p95_us(),
        }
    }
}

/// What kind of move a migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationKind {
    /// Blue to green environment.
    BlueGreen,
    /// One region to another.
    Region,
    /// One schema version to the next.
    SchemaVersion,
}

/// How verification compares source and target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VerifyMode {
    /// Live record counts.
    Count,
    /// Order-independent fingerprints of every live record.
    #[default]
    Hash,
    /// Record-by-record diff; differing records are repaired from the source.
    Full,
}

/// Tunables of one migration, all with defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationOptions {
    /// Seconds each cutover step soaks before its health check.
    #[serde(default = "default_soak")]
    pub soak_seconds: u64,
    /// Seconds catch-up may take before the migration times out and rolls back.
    #[serde(default = "default_catchup_timeout")]
    pub catchup_timeout_seconds: u64,
    /// Changes still to apply at or below which the target counts as caught up.
    #[serde(default = "default_max_lag")]
    pub max_lag: u64,
    /// Records per sync page.
    #[serde(default = "default_page")]
    pub page_size: u32,
    /// Target requests a health check needs before it can pass (fewer: it waits).
    #[serde(default)]
    pub min_requests: u64,
}

fn default_soak() -> u64 {
    60
}
fn default_catchup_timeout() -> u64 {
    900
}
fn default_max_lag() -> u64 {
    100
}
fn default_page() -> u32 {
    500
}

impl Default for MigrationOptions {
    fn default() -> Self {
        Self {
            soak_seconds: default_soak(),
            catchup_timeout_seconds: default_catchup_timeout(),
            max_lag: default_max_lag(),
            page_size: default_page(),
            min_requests: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    #[serde(default)]
    migration_id: Option<String>,
    tenant_id: TenantId,
    kind: MigrationKind,
    from: BTreeMap<String, Value>,
    to: BTreeMap<String, Value>,
    #[serde(default)]
    systems: Option<Vec<SystemName>>,
    #[serde(default)]
    steps_percent: Option<Vec<u8>>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    options: MigrationOptions,
}

/// A validated migration request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationRequest {
    /// Id of this migration, if the caller named it (otherwise provision names it).
    pub migration_id: Option<String>,
    /// The tenant to move.
    pub tenant_id: TenantId,
    /// Kind of move.
    pub kind: MigrationKind,
    /// Label of where the tenant is (e.g. `blue`, `us-east-1`, `v1`).
    pub from: String,
    /// Label of where it goes; also the target's location name.
    pub to: String,
    /// Systems moved (default: every system of the catalog).
    pub systems: Vec<SystemName>,
    /// Body transform implied by the kind.
    pub transform: Transform,
    /// Tunables.
    pub options: MigrationOptions,
}

fn label(
    kind: MigrationKind,
    side: &BTreeMap<String, Value>,
    which: &str,
) -> Result<String, StepError> {
    let field = match kind {
        MigrationKind::BlueGreen => "environment",
        MigrationKind::Region => "region",
        MigrationKind::SchemaVersion => "schema_version",
    };
    if let Some(extra) = side.keys().find(|k| *k != field) {
        return Err(StepError::invalid(format!(
            "`{which}` of a {kind:?} migration takes only `{field}`, not `{extra}`"
        )));
    }
    let text = match side.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if kind == MigrationKind::SchemaVersion => format!("v{n}"),
        _ => {
            return Err(StepError::invalid(format!(
                "`{which}.{field}` is required for a {kind:?} migration"
            )));
        }
    };
    let ok = !text.is_empty()
        && text.len() <= 40
        && text != HOME
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(StepError::invalid(format!(
            "`{which}.{field}` must be 1-40 letters, digits, '-' or '_' (and not `{HOME}`)"
        )));
    }
    Ok(text)
}

impl MigrationRequest {
    /// Validates a request (the shape of scenarios.json's `migrations`) against the catalog.
    pub fn parse(raw: &Value, catalog: &Catalog) -> Result<Self, StepError> {
        let r: RawRequest = serde_json::from_value(raw.clone())
            .map_err(|e| StepError::invalid(format!("migration request is malformed: {e}")))?;
        let from = label(r.kind, &r.from, "from")?;
        let to = label(r.kind, &r.to, "to")?;
        if from == to {
            return Err(StepError::invalid(format!(
                "`from` and `to` are both {from}: nothing to migrate"
            )));
        }
        let transform = match r.kind {
            MigrationKind::SchemaVersion if from == "v1" && to == "v2" => Transform::SchemaV1ToV2,
            MigrationKind::SchemaVersion => {
                return Err(StepError::invalid(format!(
                    "no schema transform from {from} to {to} (known: v1 -> v2)"
                )));
            }
            _ => Transform::None,
        };
        if let Some(steps) = &r.steps_percent
            && steps.as_slice() != CUTOVER_STEPS
        {
            return Err(StepError::invalid(format!(
                "steps_percent must be {CUTOVER_STEPS:?} (got {steps:?})"
            )));
        }
        let systems = match r.systems {
            Some(s) if s.is_empty() => {
                return Err(StepError::invalid("`systems` is empty"));
            }
            Some(s) => s,
            // Logs and backups cannot be rewritten record by record; they stay where
            // they are unless a request names them (and is refused).
            None => catalog
                .systems
                .iter()
                .filter(|s| s.kind.capabilities().single_record_delete)
                .map(|s| s.name.clone())
                .collect(),
        };
        for s in &systems {
            let spec = catalog.system(s.as_str()).ok_or_else(|| {
                StepError::invalid(format!(
                    "system {s} is not in the {} catalog (known: {})",
                    catalog.environment,
                    catalog.system_names().join(", ")
                ))
            })?;
            if !spec.kind.capabilities().single_record_delete {
                return Err(StepError::invalid(format!(
                    "system {s} ({:?}) cannot be migrated record by record; leave it out of `systems`",
                    spec.kind
                )));
            }
        }
        let o = &r.options;
        if o.page_size == 0 || o.page_size > 10_000 || o.soak_seconds > 86_400 {
            return Err(StepError::invalid(
                "options: page_size must be 1..=10000 and soak_seconds at most 86400",
            ));
        }
        let _ = r.reason;
        let migration_id = r
            .migration_id
            .map(|id| crate::RequestId::parse(&id).map(|i| i.to_string()))
            .transpose()?;
        Ok(Self {
            migration_id,
            tenant_id: r.tenant_id,
            kind: r.kind,
            from,
            to,
            systems,
            transform,
            options: r.options,
        })
    }
}

/// Progress of one system's sync, so a killed step resumes where it stopped.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Last key copied by the bulk copy (keys are copied in order).
    pub cursor: Option<String>,
    /// The bulk copy has passed the last key.
    pub bulk_done: bool,
    /// Records written to the target by the bulk copy.
    pub copied: u64,
    /// Records the bulk copy left alone because the target already had them or newer.
    pub skipped: u64,
    /// Position of the source's change feed when the bulk copy began.
    pub feed_start: u64,
    /// Position up to which changes have been applied to the target.
    pub feed_applied: u64,
    /// Changes applied by catch-up.
    pub caught_up: u64,
    /// Records repaired by a FULL verification.
    pub repaired: u64,
    /// Changes still to apply when last measured.
    pub lag: u64,
    /// Position of the target's change feed applied back to the source (after the flip).
    pub reverse_applied: u64,
}

/// The migrations table's record: what every step reads and conditionally rewrites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationRecord {
    /// Migration id.
    pub migration_id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Kind of move.
    pub kind: MigrationKind,
    /// Label moved from.
    pub from: String,
    /// Label moved to.
    pub to: String,
    /// Location of the source data.
    pub source: String,
    /// Location of the target data.
    pub target: String,
    /// Systems moved.
    pub systems: Vec<String>,
    /// Body transform.
    pub transform: Transform,
    /// Tunables.
    pub options: MigrationOptions,
    /// Where it stands.
    pub phase: Phase,
    /// Bumped on every write; writes are conditional on it.
    pub version: u64,
    /// Per-system sync progress.
    pub checkpoints: BTreeMap<String, Checkpoint>,
    /// Source p95 measured before cutover, microseconds.
    pub baseline_p95_us: Option<u64>,
    /// Deadline of catch-up, RFC 3339.
    pub catchup_deadline: Option<String>,
    /// Last verification's fingerprints per system: (source, target).
    pub fingerprints: BTreeMap<String, (Fingerprint, Fingerprint)>,
    /// Why it ended, when it ended other than MIGRATED.
    pub reason: Option<String>,
    /// Health samples per cutover step (percent to target health), for the certificate.
    pub gates: BTreeMap<String, Health>,
    /// Created, RFC 3339.
    pub started_at: String,
    /// Last written, RFC 3339.
    pub updated_at: String,
}

impl MigrationRecord {
    /// A new record `id` for `req`, moving from `source` (the tenant's current location).
    pub fn new(id: &str, req: &MigrationRequest, source: &str, now: &str) -> Self {
        Self {
            migration_id: id.to_owned(),
            tenant_id: req.tenant_id.to_string(),
            kind: req.kind,
            from: req.from.clone(),
            to: req.to.clone(),
            source: source.to_owned(),
            target: req.to.clone(),
            systems: req.systems.iter().map(ToString::to_string).collect(),
            transform: req.transform,
            options: req.options.clone(),
            phase: Phase::Pending,
            version: 0,
            checkpoints: BTreeMap::new(),
            baseline_p95_us: None,
            catchup_deadline: None,
            fingerprints: BTreeMap::new(),
            reason: None,
            gates: BTreeMap::new(),
            started_at: now.to_owned(),
            updated_at: now.to_owned(),
        }
    }

    /// Moves to `to`, refusing illegal transitions.
    pub fn advance(&mut self, to: Phase) -> Result<(), StepError> {
        self.phase = self.phase.transition(to)?;
        Ok(())
    }

    /// The certificate details for the record's terminal phase (integers and strings only).
    pub fn certificate_details(&self) -> Value {
        let systems: Vec<Value> = self
            .systems
            .iter()
            .map(|s| {
                let c = self.checkpoints.get(s).cloned().unwrap_or_default();
                let fp = self.fingerprints.get(s);
                serde_json::json!({
                    "system": s,
                    "copied": c.copied,
                    "skipped_newer": c.skipped,
                    "caught_up": c.caught_up,
                    "repaired": c.repaired,
                    "lag_at_end": c.lag,
                    "source_fingerprint": fp.map(|f| f.0),
                    "target_fingerprint": fp.map(|f| f.1),
                })
            })
            .collect();
        let mut details = serde_json::json!({
            "migration_id": self.migration_id,
            "kind": self.kind,
            "from": self.from,
            "to": self.to,
            "phase": self.phase,
            "reason": self.reason,
            "baseline_p95_us": self.baseline_p95_us,
            "gates": self.gates,
            "systems": systems,
            "started_at": self.started_at,
        });
        drop_nulls(&mut details);
        details
    }
}

/// Certificate bodies carry no nulls (the format allows strings, integers, booleans,
/// arrays and objects): absent values are left out.
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_is_legal_step_by_step() {
        let mut p = Phase::Pending;
        let mut seen = vec![p];
        while let Some(n) = p.next() {
            p = p.transition(n).expect("legal");
            seen.push(p);
        }
        assert_eq!(p, Phase::Migrated);
        assert!(seen.contains(&Phase::Cutover(25)) && seen.contains(&Phase::Cutover(50)));
        assert_eq!(seen.len(), 11);
    }

    #[test]
    fn illegal_transitions_are_refused_with_both_phases_named() {
        let e = Phase::Verified
            .transition(Phase::Cutover(50))
            .expect_err("skip");
        assert!(
            e.to_string().contains("Verified") && e.to_string().contains("Cutover(50)"),
            "{e}"
        );
        assert!(Phase::Pending.transition(Phase::Migrated).is_err());
        assert!(
            Phase::Migrated.transition(Phase::RolledBack).is_err(),
            "terminal"
        );
        assert!(
            Phase::BulkSync.transition(Phase::RolledBack).is_err(),
            "nothing to roll back yet"
        );
        assert!(
            Phase::Cutover(25).transition(Phase::Failed).is_err(),
            "traffic moved: roll back"
        );
        assert!(Phase::Verified.transition(Phase::Cutover(30)).is_err());
        assert!(Phase::Cutover(25).transition(Phase::RolledBack).is_ok());
        assert!(
            Phase::Verified.transition(Phase::CatchingUp).is_ok(),
            "repair loop"
        );
        assert!(Phase::BulkSync.transition(Phase::Failed).is_ok());
    }

    fn record() -> MigrationRecord {
        let cat = Catalog::from_toml(
            "environment = \"t\"\nledger = { backend = \"embedded\" }\nlegal_holds = { backend = \"embedded\" }\nsigner = { backend = \"local\" }\n[[systems]]\nname = \"pg\"\nkind = \"relational\"\nholds = \"x\"\nbackend = \"embedded\"\n[[systems]]\nname = \"logs\"\nkind = \"logs\"\nholds = \"x\"\nbackend = \"embedded\"\n",
        )
        .expect("catalog");
        let req = MigrationRequest::parse(
            &serde_json::json!({"tenant_id": "t1", "kind": "blue-green",
                "from": {"environment": "blue"}, "to": {"environment": "green"}}),
            &cat,
        )
        .expect("request");
        MigrationRecord::new("mig-t1-green", &req, HOME, "2026-01-01T00:00:00Z")
    }

    #[test]
    fn requests_are_validated_against_the_catalog() {
        let m = record();
        assert_eq!(
            m.systems,
            vec!["pg"],
            "logs cannot be migrated record by record"
        );
        assert_eq!(m.migration_id, "mig-t1-green");
        let cat = Catalog::from_toml(
            "environment = \"t\"\nledger = { backend = \"embedded\" }\nlegal_holds = { backend = \"embedded\" }\nsigner = { backend = \"local\" }\n[[systems]]\nname = \"pg\"\nkind = \"relational\"\nholds = \"x\"\nbackend = \"embedded\"\n",
        )
        .expect("catalog");
        let bad = [
            (
                serde_json::json!({"tenant_id": "t1", "kind": "region", "from": {"region": "a"}, "to": {"region": "a"}}),
                "nothing to migrate",
            ),
            (
                serde_json::json!({"tenant_id": "t1", "kind": "region", "from": {"environment": "a"}, "to": {"region": "b"}}),
                "takes only",
            ),
            (
                serde_json::json!({"tenant_id": "t1", "kind": "schema-version", "from": {"schema_version": 2}, "to": {"schema_version": 3}}),
                "no schema transform",
            ),
            (
                serde_json::json!({"tenant_id": "t1", "kind": "blue-green", "from": {"environment": "b"}, "to": {"environment": "g"}, "systems": ["nope"]}),
                "not in the",
            ),
            (
                serde_json::json!({"tenant_id": "t1", "kind": "blue-green", "from": {"environment": "b"}, "to": {"environment": "g"}, "steps_percent": [50, 100]}),
                "steps_percent",
            ),
            (
                serde_json::json!({"tenant_id": "t1", "kind": "blue-green", "from": {"environment": "b"}, "to": {"environment": "../x"}}),
                "letters",
            ),
            (
                serde_json::json!({"tenant_id": "t1", "kind": "teleport", "from": {}, "to": {}}),
                "malformed",
            ),
        ];
        for (raw, want) in bad {
            let e = MigrationRequest::parse(&raw, &cat).expect_err(want);
            assert!(e.to_string().contains(want), "{e} lacks {want}");
        }
        let v2 = MigrationRequest::parse(
            &serde_json::json!({"tenant_id": "t3", "kind": "schema-version", "from": {"schema_version": 1}, "to": {"schema_version": 2}}),
            &cat,
        )
        .expect("v1 -> v2");
        assert_eq!(
            (v2.from.as_str(), v2.to.as_str(), v2.transform),
            ("v1", "v2", Transform::SchemaV1ToV2)
        );
    }

    #[test]
    fn the_schema_transform_round_trips_and_refuses_garbage() {
        let t = Transform::SchemaV1ToV2;
        let v1 = br#"{"name":"x","n":1}"#;
        let v2 = t.forward(v1).expect("forward");
        assert!(String::from_utf8_lossy(&v2).contains("\"schema_version\":2"));
        assert_eq!(t.backward(&v2).expect("backward"), v1.to_vec());
        assert!(t.forward(b"not json").is_err());
        assert!(t.backward(br#"{"schema_version":3,"record":1}"#).is_err());
        assert_eq!(
            Transform::None.forward(b"raw").expect("id"),
            b"raw".to_vec()
        );
    }

    #[test]
    fn windows_merge_and_give_p95_within_a_bucket() {
        let mut a = Window::default();
        let mut b = Window::default();
        for i in 1..=1000u64 {
            let w = if i % 2 == 0 { &mut a } else { &mut b };
            w.record(i * 10, i % 100 != 0);
        }
        a.merge(&b);
        let h = a.health();
        assert_eq!((h.requests, h.errors), (1000, 10));
        assert!((9_500..=10_400).contains(&h.p95_us), "p95 {}", h.p95_us);
        assert_eq!(Window::default().p95_us(), 0);
    }

    #[test]
    fn routing_is_deterministic_and_monotonic() {
        let m = record();
        let keys: Vec<String> = (0..2000).map(|i| format!("doc-{i}")).collect();
        let mut prev_target = 0;
        for p in CUTOVER_STEPS {
            let r = Routing::for_phase(&m, 1, Phase::Cutover(p));
            let target: Vec<&String> = keys
                .iter()
                .filter(|k| r.read_env(k) == Env::Target)
                .collect();
            assert!(
                target.len() >= prev_target,
                "a key on the target stays there as the percent grows"
            );
            let share = target.len() * 100 / keys.len();
            assert!(
                share.abs_diff(usize::from(p)) <= 4,
                "{p} % asked, {share} % routed"
            );
            prev_target = target.len();
            assert_eq!(r.read_env("doc-7"), r.clone().read_env("doc-7"));
        }
        assert_eq!(
            Routing::for_phase(&m, 1, Phase::BulkSync).read_env("x"),
            Env::Source
        );
        let flipped = Routing::for_phase(&m, 1, Phase::Cutover(100));
        assert_eq!(flipped.write_mode, WriteMode::DualTargetFirst);
        assert_eq!(flipped.location(Env::Target), "green");
        let done = Routing::for_phase(&m, 2, Phase::Migrated);
        assert_eq!(
            (done.source.as_str(), done.target.as_deref()),
            ("green", None)
        );
        let back = Routing::for_phase(&m, 3, Phase::RolledBack);
        assert_eq!((back.source.as_str(), back.read_percent), (HOME, 0));
        let fp = serde_json::to_value(Fingerprint {
            count: 1,
            sum: u128::MAX,
        })
        .expect("json");
        assert_eq!(fp["sum"], "ffffffffffffffffffffffffffffffff");
    }

    #[test]
    fn the_gate_breaches_above_one_percent_or_twice_the_baseline() {
        let ok = Health {
            requests: 1000,
            errors: 10,
            p95_us: 2000,
        };
        assert_eq!(gate(ok, 1000), Ok(()));
        assert!(matches!(
            gate(Health { errors: 11, ..ok }, 1000),
            Err(GateBreach::ErrorRate { .. })
        ));
        assert!(matches!(
            gate(Health { p95_us: 2001, ..ok }, 1000),
            Err(GateBreach::Latency { .. })
        ));
        assert!(matches!(
            gate(Health { p95_us: 9001, ..ok }, 4500),
            Err(GateBreach::Latency { .. })
        ));
        assert_eq!(
            gate(Health { p95_us: 240, ..ok }, 112),
            Ok(()),
            "microsecond jitter is not a slowdown"
        );
        assert_eq!(
            gate(
                Health {
                    requests: 0,
                    errors: 0,
                    p95_us: 0
                },
                1000
            ),
            Ok(())
        );
    }

    #[test]
    fn fingerprints_ignore_order_and_see_any_difference() {
        let recs = [("a", "1"), ("b", "2"), ("c", "3")];
        let mut f1 = Fingerprint::default();
        recs.iter().for_each(|(k, v)| f1.add(k, v.as_bytes()));
        let mut f2 = Fingerprint::default();
        recs.iter().rev().for_each(|(k, v)| f2.add(k, v.as_bytes()));
        assert_eq!(f1, f2);
        let (mut a, mut b) = (Fingerprint::default(), Fingerprint::default());
        a.add("a", b"1");
        b.add("b", b"2");
        b.add("c", b"3");
        assert_eq!(a.merge(b), f1);
        let mut f3 = Fingerprint::default();
        f3.add("a", b"1");
        f3.add("b", b"2");
        f3.add("c", b"4");
        assert_ne!(f1, f3);
    }
}
