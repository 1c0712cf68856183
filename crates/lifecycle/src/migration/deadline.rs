//! The catch-up deadline: stored as RFC 3339 text (UTC, whole seconds), compared as an
//! instant. Text order is not time order once a stored value carries a fraction or an
//! offset (`…00Z` sorts after `…00.5Z`), so the text is always parsed before comparing.

use super::MigrationRecord;
use crate::StepError;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// `timeout` after `now` as stored: RFC 3339, UTC, truncated to whole seconds (the form
/// records have always had, so older records and newer steps read each other).
pub(super) fn deadline_text(now: OffsetDateTime, timeout: Duration) -> Result<String, StepError> {
    let out_of_range = || {
        StepError::invalid(format!(
            "a catch-up deadline {timeout} after {now} is out of range"
        ))
    };
    let deadline = now
        .checked_add(timeout)
        .and_then(|d| d.checked_to_offset(UtcOffset::UTC))
        .ok_or_else(out_of_range)?
        .truncate_to_second();
    // RFC 3339 has four-digit years only; formatting refuses the rest.
    deadline.format(&Rfc3339).map_err(|_| out_of_range())
}

impl MigrationRecord {
    /// Sets the catch-up deadline to `timeout` after `now`, stored as RFC 3339 in UTC.
    pub fn set_catchup_deadline(
        &mut self,
        now: OffsetDateTime,
        timeout: Duration,
    ) -> Result<(), StepError> {
        self.catchup_deadline = Some(deadline_text(now, timeout)?);
        Ok(())
    }

    /// The catch-up deadline as an instant (`None` while none is set).
    pub fn catchup_deadline_at(&self) -> Result<Option<OffsetDateTime>, StepError> {
        let Some(text) = self.catchup_deadline.as_deref() else {
            return Ok(None);
        };
        OffsetDateTime::parse(text, &Rfc3339)
            .map(Some)
            .map_err(|e| {
                StepError::Internal(format!(
                    "migration {}: stored catch-up deadline {text:?} is not RFC 3339: {e}",
                    self.migration_id
                ))
            })
    }

    /// Time left until the catch-up deadline at `now`, zero once it has passed (`None`
    /// while no deadline is set).
    pub fn catchup_remaining(
        &self,
        now: OffsetDateTime,
    ) -> Result<Option<std::time::Duration>, StepError> {
        Ok(self.catchup_deadline_at()?.map(|d| {
            // Only a negative difference fails to convert, and that means no time is left.
            std::time::Duration::try_from(d - now).unwrap_or(std::time::Duration::ZERO)
        }))
    }

    /// True once `now` is at or past the catch-up deadline (false while none is set).
    pub fn catchup_expired(&self, now: OffsetDateTime) -> Result<bool, StepError> {
        Ok(self.catchup_deadline_at()?.is_some_and(|d| now >= d))
    }
}

#[cfg(test)]
mod tests {
    use crate::migration::MigrationRecord;
    use crate::migration::testing::record;
    use std::time::Duration as StdDuration;
    use time::Duration;
    use time::macros::datetime;

    fn with_deadline(text: &str) -> MigrationRecord {
        let mut m = record();
        m.catchup_deadline = Some(text.to_owned());
        m
    }

    #[test]
    fn the_deadline_is_stored_as_utc_rfc3339_in_whole_seconds() {
        let mut m = record();
        let now = datetime!(2026-01-01 01:59:59.750 +02:00);
        m.set_catchup_deadline(now, Duration::seconds(900))
            .expect("deadline");
        assert_eq!(m.catchup_deadline.as_deref(), Some("2026-01-01T00:14:59Z"));
        let json = serde_json::to_value(&m).expect("json");
        assert_eq!(json["catchup_deadline"], "2026-01-01T00:14:59Z");
        let back: MigrationRecord = serde_json::from_value(json).expect("load");
        assert_eq!(back, m, "an existing record loads unchanged");
        assert_eq!(
            back.catchup_deadline_at().expect("parse"),
            Some(datetime!(2026-01-01 00:14:59 UTC))
        );
    }

    #[test]
    fn the_deadline_expires_at_its_instant_not_before() {
        let m = with_deadline("2026-01-01T00:00:00Z");
        let cases = [
            (datetime!(2025-12-31 23:59:59 UTC), false),
            (datetime!(2025-12-31 23:59:59.999 UTC), false),
            (datetime!(2026-01-01 00:00:00 UTC), true),
            (datetime!(2026-01-01 00:00:01 UTC), true),
            (datetime!(2026-01-02 00:00:00 UTC), true),
        ];
        for (now, want) in cases {
            assert_eq!(m.catchup_expired(now), Ok(want), "{now}");
        }
        assert_eq!(
            m.catchup_remaining(datetime!(2025-12-31 23:59:30 UTC)),
            Ok(Some(StdDuration::from_secs(30)))
        );
        assert_eq!(
            m.catchup_remaining(datetime!(2026-01-01 00:00:00 UTC)),
            Ok(Some(StdDuration::ZERO))
        );
        assert_eq!(
            m.catchup_remaining(datetime!(2026-01-01 00:05:00 UTC)),
            Ok(Some(StdDuration::ZERO)),
            "a passed deadline leaves no time, never a negative one"
        );
    }

    #[test]
    fn a_deadline_set_before_midnight_expires_after_it() {
        let mut m = record();
        m.set_catchup_deadline(datetime!(2025-12-31 23:59:45 UTC), Duration::seconds(45))
            .expect("deadline");
        assert_eq!(m.catchup_deadline.as_deref(), Some("2026-01-01T00:00:30Z"));
        assert_eq!(
            m.catchup_expired(datetime!(2025-12-31 23:59:59 UTC)),
            Ok(false)
        );
        assert_eq!(
            m.catchup_expired(datetime!(2026-01-01 00:00:29 UTC)),
            Ok(false)
        );
        assert_eq!(
            m.catchup_expired(datetime!(2026-01-01 00:00:30 UTC)),
            Ok(true)
        );
    }

    #[test]
    fn a_deadline_with_an_offset_is_compared_as_an_instant() {
        // 00:30 UTC on the next day: as text, "2025-12-31…" sorts before any 2026 time.
        let m = with_deadline("2025-12-31T23:30:00-01:00");
        assert_eq!(
            m.catchup_expired(datetime!(2026-01-01 00:10:00 UTC)),
            Ok(false)
        );
        assert_eq!(
            m.catchup_expired(datetime!(2026-01-01 00:30:00 UTC)),
            Ok(true)
        );
        let ahead = with_deadline("2026-01-01T01:00:00+01:00");
        assert_eq!(
            ahead.catchup_expired(datetime!(2025-12-31 23:59:59 UTC)),
            Ok(false)
        );
        assert_eq!(
            ahead.catchup_expired(datetime!(2026-01-01 00:00:00 UTC)),
            Ok(true)
        );
    }

    #[test]
    fn fractions_of_any_length_compare_by_value() {
        // As text, "…00Z" >= "…00.5Z" ('Z' sorts after '.'): expired half a second early.
        let half = with_deadline("2026-01-01T00:00:00.5Z");
        assert_eq!(
            half.catchup_expired(datetime!(2026-01-01 00:00:00 UTC)),
            Ok(false)
        );
        assert_eq!(
            half.catchup_expired(datetime!(2026-01-01 00:00:00.25 UTC)),
            Ok(false)
        );
        assert_eq!(
            half.catchup_expired(datetime!(2026-01-01 00:00:00.5 UTC)),
            Ok(true)
        );
        assert_eq!(
            with_deadline("2026-01-01T00:00:00.500000000Z").catchup_deadline_at(),
            half.catchup_deadline_at(),
            "nine digits or one, the same instant"
        );
        // As text, ".25Z" >= ".250001Z" too ('Z' after '0'), though .25 is earlier.
        let long = with_deadline("2026-01-01T00:00:00.250001Z");
        assert_eq!(
            long.catchup_expired(datetime!(2026-01-01 00:00:00.25 UTC)),
            Ok(false)
        );
        assert_eq!(
            long.catchup_remaining(datetime!(2026-01-01 00:00:00.25 UTC)),
            Ok(Some(StdDuration::from_micros(1)))
        );
    }

    #[test]
    fn no_deadline_never_expires() {
        let m = record();
        assert_eq!(m.catchup_deadline_at(), Ok(None));
        assert_eq!(
            m.catchup_expired(datetime!(9999-12-31 23:59:59 UTC)),
            Ok(false)
        );
        assert_eq!(
            m.catchup_remaining(datetime!(2026-01-01 00:00:00 UTC)),
            Ok(None)
        );
    }

    #[test]
    fn an_unparsable_deadline_is_an_error_not_a_panic() {
        for text in [
            "tomorrow",
            "",
            "2026-01-01 00:00:00",
            "2026-13-01T00:00:00Z",
        ] {
            let m = with_deadline(text);
            let now = datetime!(2026-01-01 00:00:00 UTC);
            let e = m.catchup_expired(now).expect_err(text);
            assert_eq!(e.error_type(), "InternalError", "{e}");
            assert!(
                e.to_string().contains("mig-t1-green")
                    && e.to_string().contains(&format!("{text:?}"))
                    && e.to_string().contains("not RFC 3339"),
                "{e}"
            );
            assert_eq!(m.catchup_remaining(now), Err(e));
        }
    }

    #[test]
    fn a_deadline_out_of_range_is_refused() {
        let mut m = record();
        for (now, timeout) in [
            (datetime!(2026-01-01 00:00:00 UTC), Duration::MAX),
            (datetime!(9999-12-31 23:00:00 UTC), Duration::hours(2)),
            (datetime!(0000-01-01 00:30:00 +01:00), Duration::ZERO),
        ] {
            let e = m.set_catchup_deadline(now, timeout).expect_err("range");
            assert!(e.to_string().contains("out of range"), "{e}");
            assert_eq!(m.catchup_deadline, None);
        }
    }
}
