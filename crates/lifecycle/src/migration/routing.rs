//! The routing record the router caches and deterministic per-key read routing.

use super::{MigrationRecord, Phase, Transform};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
            // A restore's source keeps revisions past the restored ones, so a target-first
            // write there could not be copied back; its writes stay source-first to the end.
            Phase::Cutover(100) if m.kind == super::MigrationKind::Restore => {
                (100, WriteMode::DualSourceFirst)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::{CUTOVER_STEPS, HOME, testing::record};

    #[test]
    fn a_restore_writes_source_first_to_the_end_so_a_rollback_loses_nothing() {
        let mut m = record();
        let full = Routing::for_phase(&m, 7, Phase::Cutover(100));
        assert_eq!(full.write_mode, WriteMode::DualTargetFirst);
        m.kind = crate::migration::MigrationKind::Restore;
        let r = Routing::for_phase(&m, 7, Phase::Cutover(100));
        assert_eq!(
            (r.read_percent, r.write_mode),
            (100, WriteMode::DualSourceFirst)
        );
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
    }
}
