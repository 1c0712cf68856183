//! Zero-downtime tenant migration, the pure part: the phase machine with its legal
//! transitions, the routing record and deterministic per-key routing, the health gate, and
//! the order-independent fingerprint that verification compares.
//!
//! Nothing here moves data; the sync, cutover and rollback steps that do are still to come.

use crate::StepError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Percent of reads served by the target.
    pub read_percent: u8,
    /// Write routing.
    pub write_mode: WriteMode,
}

impl Routing {
    /// The routing a phase implies, at the next epoch.
    pub fn for_phase(tenant_id: &str, epoch: u64, phase: Phase) -> Self {
        let (read_percent, write_mode) = match phase {
            Phase::DualWrite | Phase::CatchingUp | Phase::Verified => {
                (0, WriteMode::DualSourceFirst)
            }
            Phase::Cutover(100) | Phase::Migrated => (100, WriteMode::DualTargetFirst),
            Phase::Cutover(p) => (p, WriteMode::DualSourceFirst),
            _ => (0, WriteMode::SourceOnly),
        };
        Self {
            tenant_id: tenant_id.to_owned(),
            epoch,
            read_percent,
            write_mode,
        }
    }

    /// The environment that serves reads of `key`: deterministic per key, so a user sees
    /// one environment for one record, and monotonic in `read_percent`.
    pub fn read_env(&self, key: &str) -> Env {
        if bucket(&self.tenant_id, key) < u64::from(self.read_percent) {
            Env::Target
        } else {
            Env::Source
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

/// The health gate: error rate above 1 % or p95 above twice the baseline breaches it.
/// Integer arithmetic only, so the decision is exact and reproducible from a certificate.
pub fn gate(sample: Health, baseline_p95_us: u64) -> Result<(), GateBreach> {
    if sample.errors.saturating_mul(100) > sample.requests {
        return Err(GateBreach::ErrorRate {
            errors: sample.errors,
            requests: sample.requests,
        });
    }
    if baseline_p95_us > 0 && sample.p95_us > baseline_p95_us.saturating_mul(2) {
        return Err(GateBreach::Latency {
            p95_us: sample.p95_us,
            baseline_us: baseline_p95_us,
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
    /// Wrapping sum of the first 16 bytes of SHA-256(key, 0, body) per record.
    pub sum: u128,
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

    #[test]
    fn routing_is_deterministic_and_monotonic() {
        let keys: Vec<String> = (0..2000).map(|i| format!("doc-{i}")).collect();
        let mut prev_target = 0;
        for p in CUTOVER_STEPS {
            let r = Routing::for_phase("t1", 1, Phase::Cutover(p));
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
            Routing::for_phase("t1", 1, Phase::BulkSync).read_env("x"),
            Env::Source
        );
        assert_eq!(
            Routing::for_phase("t1", 1, Phase::Migrated).write_mode,
            WriteMode::DualTargetFirst
        );
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
