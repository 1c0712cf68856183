//! The health gate and the latency histogram it reads.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

/// The smallest baseline the latency gate compares with. A few milliseconds of p95 move
/// by 2x on scheduler jitter alone (an in-memory store answers in tens of microseconds,
/// and on two busy cores a p95 of 4-6 ms was seen with nothing slow): a breach must be
/// a real slowdown, past 10 ms at least, not noise.
pub const MIN_BASELINE_US: u64 = 5_000;

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

#[cfg(test)]
mod tests {
    use super::*;

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
            gate(
                Health {
                    p95_us: 10_001,
                    ..ok
                },
                1000
            ),
            Err(GateBreach::Latency { .. })
        ));
        assert!(matches!(
            gate(
                Health {
                    p95_us: 12_001,
                    ..ok
                },
                6000
            ),
            Err(GateBreach::Latency { .. })
        ));
        assert_eq!(
            gate(Health { p95_us: 6144, ..ok }, 1000),
            Ok(()),
            "a loaded machine's few milliseconds are not a slowdown"
        );
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
}
