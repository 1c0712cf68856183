//! The phase machine and its legal transitions.

use super::CUTOVER_STEPS;
use crate::StepError;
use serde::{Deserialize, Serialize};

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
}
