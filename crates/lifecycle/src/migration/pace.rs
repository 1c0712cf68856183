//! How catch-up keeps pace with the writes: its rate against the writes' rate over one
//! call, and whether the writes outpace it (the cutover then waits for it, up to the
//! migration's catch-up deadline).

use serde::{Deserialize, Serialize};

/// One catch-up call's pace, over every system.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Pace {
    /// Feed entries applied per second.
    pub applied_per_s: f64,
    /// Feed entries that arrived per second while the call ran (the writes' rate).
    pub writes_per_s: f64,
    /// True when the call ran out of time before the head it found and the writes came at
    /// least as fast as it applied them: the lag is not shrinking.
    pub outpaced: bool,
}

impl Pace {
    /// The pace of a call that applied `applied` feed entries and saw `arrived` new ones
    /// in `seconds`; `drained` when it reached the head it found at its start.
    pub fn of(applied: u64, arrived: u64, seconds: f64, drained: bool) -> Self {
        let s = seconds.max(1e-3);
        Self {
            applied_per_s: applied as f64 / s,
            writes_per_s: arrived as f64 / s,
            outpaced: !drained && arrived >= applied,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_outpace_catch_up_only_when_it_cannot_reach_its_head() {
        let p = Pace::of(500, 800, 2.0, false);
        assert!(p.outpaced);
        assert!((p.applied_per_s - 250.0).abs() < 1e-9 && (p.writes_per_s - 400.0).abs() < 1e-9);
        assert!(
            !Pace::of(500, 100, 2.0, false).outpaced,
            "behind, but gaining"
        );
        assert!(
            !Pace::of(500, 900, 2.0, true).outpaced,
            "it reached its head"
        );
        assert!(!Pace::of(0, 0, 0.0, true).outpaced);
    }
}
