//! The phase checks of the sync and cutover steps: which phase a call may run in and which
//! phase it leads to. The steps do the I/O; these decide, so the rules are tested here.

use super::deadline::deadline_text;
use super::{MigrationRecord, Phase};
use crate::StepError;

impl MigrationRecord {
    /// The phase cutover's `DUAL_WRITE` move leads to: DUAL_WRITE, from BULK_SYNC only and
    /// only once every system's bulk copy has finished.
    pub fn dual_write_phase(&self) -> Result<Phase, StepError> {
        if self.phase != Phase::BulkSync {
            return Err(StepError::invalid(format!(
                "dual-write starts after the bulk copy, not in phase {:?}",
                self.phase
            )));
        }
        let copied = self
            .systems
            .iter()
            .all(|s| self.checkpoints.get(s).is_some_and(|c| c.bulk_done));
        if !copied {
            return Err(StepError::invalid(
                "dual-write starts after the bulk copy has finished",
            ));
        }
        self.phase.transition(Phase::DualWrite)
    }

    /// The phase cutover's `next` move leads to: the next cutover percent after VERIFIED or
    /// a cutover step below 100 %.
    pub fn next_cutover_phase(&self) -> Result<Phase, StepError> {
        let p = self.phase;
        if p == Phase::Cutover(100) {
            return Err(StepError::invalid(
                "the cutover is at 100 %; finalize the migration",
            ));
        }
        let next = p
            .next()
            .filter(|n| matches!(n, Phase::Cutover(_)))
            .ok_or_else(|| {
                StepError::invalid(format!("no cutover step follows phase {p:?}; verify first"))
            })?;
        p.transition(next)
    }

    /// Readies the record for a bulk-copy call: PROVISIONED moves to BULK_SYNC. True when
    /// the record changed and must be saved before copying.
    pub fn begin_bulk(&mut self) -> Result<bool, StepError> {
        match self.phase {
            Phase::Provisioned => {
                self.advance(Phase::BulkSync)?;
                Ok(true)
            }
            Phase::BulkSync => Ok(false),
            // A bulk call retried after dual-write began (its answer was lost) finds every
            // copy finished and has nothing to do; it must not fail the migration.
            p if p.target_has_writes() && self.checkpoints.values().all(|c| c.bulk_done) => {
                Ok(false)
            }
            p => Err(StepError::invalid(format!(
                "a bulk copy cannot run in phase {p:?}"
            ))),
        }
    }

    /// Readies the record for a catch-up call: DUAL_WRITE or VERIFIED moves to CATCHING_UP
    /// with the deadline `options.catchup_timeout_seconds` after `now`. True when the
    /// record changed and must be saved before catching up.
    pub fn begin_catch_up(&mut self, now: time::OffsetDateTime) -> Result<bool, StepError> {
        match self.phase {
            Phase::DualWrite | Phase::Verified => {
                let secs = self.options.catchup_timeout_seconds;
                // Past i64::MAX seconds the deadline is out of range anyway; saturating
                // reports that instead of wrapping to a negative timeout.
                let timeout = time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX));
                // Computed before the phase moves, so a refused deadline changes nothing.
                let deadline = deadline_text(now, timeout)?;
                self.advance(Phase::CatchingUp)?;
                self.catchup_deadline = Some(deadline);
                Ok(true)
            }
            Phase::CatchingUp => Ok(false),
            p => Err(StepError::invalid(format!(
                "catch-up cannot run in phase {p:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::StepError;
    use crate::migration::testing::record;
    use crate::migration::{Checkpoint, MigrationRecord, Phase};
    use time::macros::datetime;

    const ALL: [Phase; 13] = [
        Phase::Pending,
        Phase::Provisioned,
        Phase::BulkSync,
        Phase::DualWrite,
        Phase::CatchingUp,
        Phase::Verified,
        Phase::Cutover(10),
        Phase::Cutover(25),
        Phase::Cutover(50),
        Phase::Cutover(100),
        Phase::Migrated,
        Phase::RolledBack,
        Phase::Failed,
    ];

    fn at(phase: Phase, bulk_done: bool) -> MigrationRecord {
        let mut m = record();
        m.phase = phase;
        for s in m.systems.clone() {
            m.checkpoints.insert(
                s,
                Checkpoint {
                    bulk_done,
                    ..Checkpoint::default()
                },
            );
        }
        m
    }

    fn refused(r: Result<impl std::fmt::Debug, StepError>, want: &str) {
        let e = r.expect_err(want);
        assert_eq!(e.error_type(), "InvalidRequest", "{e}");
        assert!(e.to_string().contains(want), "{e} lacks {want}");
    }

    #[test]
    fn dual_write_follows_a_finished_bulk_copy_only() {
        assert_eq!(
            at(Phase::BulkSync, true).dual_write_phase(),
            Ok(Phase::DualWrite)
        );
        refused(
            at(Phase::BulkSync, false).dual_write_phase(),
            "dual-write starts after the bulk copy has finished",
        );
        let mut unstarted = at(Phase::BulkSync, true);
        unstarted.checkpoints.clear();
        refused(
            unstarted.dual_write_phase(),
            "dual-write starts after the bulk copy has finished",
        );
        for p in ALL.into_iter().filter(|p| *p != Phase::BulkSync) {
            refused(
                at(p, true).dual_write_phase(),
                &format!("dual-write starts after the bulk copy, not in phase {p:?}"),
            );
        }
    }

    #[test]
    fn next_moves_verified_through_each_cutover_step() {
        let steps = [
            (Phase::Verified, Phase::Cutover(10)),
            (Phase::Cutover(10), Phase::Cutover(25)),
            (Phase::Cutover(25), Phase::Cutover(50)),
            (Phase::Cutover(50), Phase::Cutover(100)),
        ];
        for (from, to) in steps {
            assert_eq!(at(from, true).next_cutover_phase(), Ok(to), "{from:?}");
        }
        refused(
            at(Phase::Cutover(100), true).next_cutover_phase(),
            "the cutover is at 100 %; finalize the migration",
        );
        for p in ALL
            .into_iter()
            .filter(|p| !matches!(p, Phase::Verified | Phase::Cutover(_)))
        {
            refused(
                at(p, true).next_cutover_phase(),
                &format!("no cutover step follows phase {p:?}; verify first"),
            );
        }
    }

    #[test]
    fn a_bulk_copy_starts_once_and_a_late_retry_is_a_no_op() {
        let mut m = at(Phase::Provisioned, false);
        assert_eq!(m.begin_bulk(), Ok(true));
        assert_eq!(m.phase, Phase::BulkSync);
        assert_eq!(m.begin_bulk(), Ok(false), "resumed");
        assert_eq!(m.phase, Phase::BulkSync);
        for p in ALL.into_iter().filter(|p| p.target_has_writes()) {
            let mut done = at(p, true);
            assert_eq!(done.begin_bulk(), Ok(false), "{p:?}");
            assert_eq!(done.phase, p, "a retry leaves the phase alone");
            refused(
                at(p, false).begin_bulk(),
                &format!("a bulk copy cannot run in phase {p:?}"),
            );
        }
        for p in [
            Phase::Pending,
            Phase::Migrated,
            Phase::RolledBack,
            Phase::Failed,
        ] {
            refused(
                at(p, true).begin_bulk(),
                &format!("a bulk copy cannot run in phase {p:?}"),
            );
        }
    }

    #[test]
    fn catch_up_starts_after_dual_write_or_a_failed_verification() {
        let now = datetime!(2026-01-01 00:00:00 UTC);
        for from in [Phase::DualWrite, Phase::Verified] {
            let mut m = at(from, true);
            assert_eq!(m.begin_catch_up(now), Ok(true), "{from:?}");
            assert_eq!(m.phase, Phase::CatchingUp);
            assert_eq!(
                m.catchup_deadline.as_deref(),
                Some("2026-01-01T00:15:00Z"),
                "the default timeout is 900 s"
            );
            let later = datetime!(2026-01-01 00:10:00 UTC);
            assert_eq!(m.begin_catch_up(later), Ok(false), "resumed");
            assert_eq!(
                m.catchup_deadline.as_deref(),
                Some("2026-01-01T00:15:00Z"),
                "a resumed catch-up keeps its deadline"
            );
        }
        for p in ALL
            .into_iter()
            .filter(|p| !matches!(p, Phase::DualWrite | Phase::Verified | Phase::CatchingUp))
        {
            let mut m = at(p, true);
            refused(
                m.begin_catch_up(now),
                &format!("catch-up cannot run in phase {p:?}"),
            );
            assert_eq!((m.phase, m.catchup_deadline), (p, None));
        }
    }

    #[test]
    fn a_catch_up_timeout_out_of_range_is_refused_and_changes_nothing() {
        let mut m = at(Phase::DualWrite, true);
        m.options.catchup_timeout_seconds = u64::MAX;
        let e = m
            .begin_catch_up(datetime!(2026-01-01 00:00:00 UTC))
            .expect_err("out of range");
        assert!(e.to_string().contains("out of range"), "{e}");
        assert_eq!((m.phase, m.catchup_deadline), (Phase::DualWrite, None));
    }
}
