//! The migration record every step shares, with per-system checkpoints.

use super::{
    Fingerprint, Health, MigrationKind, MigrationOptions, MigrationRequest, Phase, Transform,
};
use crate::StepError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

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
    /// Deadline of catch-up, RFC 3339 (UTC, whole seconds when a step sets it).
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
    /// The verified restore a migration of kind `restore` moves onto.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_id: Option<String>,
    /// Each system's schema version before this migration, carried from the tenant's
    /// previous migration (a record only holds the current one, and a blue-green move of a
    /// v2 tenant must not make its data v1 again). Empty in records written before it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub schemas_before: BTreeMap<String, u32>,
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
            restore_id: req.restore_id.clone(),
            schemas_before: BTreeMap::new(),
        }
    }

    /// The schema version `system` is at where the tenant lives: the migration's target
    /// once it is migrated, its source otherwise.
    pub fn schema_of(&self, system: &str) -> u32 {
        let version = |label: &str| label.trim_start_matches('v').parse().unwrap_or(1);
        let before = self
            .schemas_before
            .get(system)
            .copied()
            .unwrap_or_else(|| match self.kind {
                // Records from before the carried versions: the labels say it.
                MigrationKind::SchemaVersion => version(&self.from),
                _ => 1,
            });
        if self.kind == MigrationKind::SchemaVersion
            && self.phase == Phase::Migrated
            && self.systems.iter().any(|s| s == system)
        {
            version(&self.to)
        } else {
            before
        }
    }

    /// The schema versions a new migration of the tenant starts from: where `prior` (its
    /// last migration, if any) left each of `systems`.
    pub fn carry_schemas(
        prior: Option<&MigrationRecord>,
        systems: &[String],
    ) -> BTreeMap<String, u32> {
        systems
            .iter()
            .map(|s| (s.clone(), prior.map_or(1, |p| p.schema_of(s))))
            .collect()
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

    fn rec(kind: MigrationKind, from: &str, to: &str, phase: Phase) -> MigrationRecord {
        let mut r = crate::migration::testing::record();
        (r.kind, r.from, r.to, r.phase) = (kind, from.into(), to.into(), phase);
        r
    }

    #[test]
    fn a_move_after_a_schema_migration_keeps_the_schema_it_reached() {
        let v2 = rec(MigrationKind::SchemaVersion, "v1", "v2", Phase::Migrated);
        assert_eq!(v2.schema_of("pg"), 2);
        assert_eq!(v2.schema_of("logs"), 1, "a system it did not move");
        let running = rec(MigrationKind::SchemaVersion, "v1", "v2", Phase::DualWrite);
        assert_eq!(
            running.schema_of("pg"),
            1,
            "the source is live until migrated"
        );
        let mut bg = rec(MigrationKind::BlueGreen, "blue", "green", Phase::Migrated);
        bg.schemas_before =
            MigrationRecord::carry_schemas(Some(&v2), &["pg".into(), "logs".into()]);
        assert_eq!((bg.schema_of("pg"), bg.schema_of("logs")), (2, 1));
        let legacy = rec(MigrationKind::BlueGreen, "blue", "green", Phase::Migrated);
        assert_eq!(
            legacy.schema_of("pg"),
            1,
            "records from before carry nothing"
        );
        assert_eq!(
            MigrationRecord::carry_schemas(None, &["pg".into()])["pg"],
            1
        );
    }
}
