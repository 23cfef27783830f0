//! Case G: latency. Users care whether the slow end got slower by more than a
//! tolerance, not whether two distributions differ at all: with thousands of samples a
//! rank test rejects on any shift, even 0.3 → 0.4 ms, and a freshly started process is
//! often a little slower for its first minutes.
//!
//! Null: p95 of the new release ≤ λ × the baseline's p95 + δ. Take a cut-off
//! c = λ·q⁺ + δ, with q⁺ an upper (1 − α/2) confidence bound of the baseline's p95 (an
//! order statistic of its samples, exact by the binomial): then, unless that bound
//! failed (probability ≤ α/2), c is at or above the new release's p95 under the null,
//! so each new sample lands above c with probability at most 5 %. The count of new
//! samples above c is then tested against a share of 5 % with the same binomial mixture
//! martingale as case B (alternatives 1.5× … 19× that share, all ≥ 1), at threshold
//! 2/α: P(ever flagged | null) ≤ α/2 + α/2, however often it is checked. The cut-off is
//! fixed by the baseline's samples from before the deploy, so it does not move as the
//! new release's samples arrive.

use super::mixture::log_sum_exp;
use super::special::normal_quantile;

/// The quantile tested.
pub const QUANTILE: f64 = 0.95;
/// (multiple of the null share 1 − [`QUANTILE`], weight).
const SHARE_GRID: [(f64, f64); 6] = [
    (1.5, 0.2),
    (2.0, 0.25),
    (3.0, 0.2),
    (5.0, 0.15),
    (10.0, 0.1),
    (19.0, 0.1),
];
/// A regression also needs this many new samples above the cut-off.
pub const MIN_SLOW: u64 = 5;

/// The settings of the latency test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyRule {
    /// λ: the new p95 may be up to this multiple of the baseline's...
    pub ratio: f64,
    /// ... plus this many milliseconds (δ).
    pub floor_ms: f64,
    /// False-alarm probability, however often it is checked.
    pub alpha: f64,
}

/// The outcome of one look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyTest {
    /// Point estimates of the two p95s (ms).
    pub p95_ms: f64,
    pub baseline_p95_ms: f64,
    /// q⁺: upper confidence bound of the baseline's p95 (ms).
    pub baseline_p95_upper_ms: f64,
    /// c = λ·q⁺ + δ (ms).
    pub cutoff_ms: f64,
    /// New samples above c, and all new samples.
    pub slow: u64,
    pub samples: u64,
    /// ln M and ln(2/α).
    pub log_e: f64,
    pub log_threshold: f64,
    /// M reached its threshold, with at least [`MIN_SLOW`] slow samples and the p95
    /// estimate itself past λ × baseline p95 + δ.
    pub regression: bool,
}

/// Index (0-based, into sorted samples) of an upper (1 − tail) confidence bound of the
/// q-quantile: the smallest k with P(Binomial(n, q) ≤ k) ≥ 1 − tail (normal
/// approximation with continuity correction, never below the point estimate's index).
/// None when n is too small for such a bound to exist.
fn upper_quantile_index(n: usize, q: f64, tail: f64) -> Option<usize> {
    // The largest sample bounds the quantile with confidence 1 − qⁿ.
    if n == 0 || (n as f64) * q.ln() > tail.ln() {
        return None;
    }
    let nf = n as f64;
    let z = normal_quantile(1.0 - tail);
    let k = (nf * q + z * (nf * q * (1.0 - q)).sqrt() + 0.5).ceil() as usize;
    Some(k.clamp(0, n - 1))
}

/// Sorted finite values.
fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn point_quantile(sorted: &[f64], q: f64) -> f64 {
    let idx = ((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1);
    sorted[idx.min(sorted.len() - 1)]
}

/// The fixed side of the test, from the baseline's samples before the deploy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cutoff {
    /// Point estimate of the baseline's p95 (ms).
    pub baseline_p95_ms: f64,
    /// q⁺, its upper (1 − α/2) confidence bound (ms).
    pub baseline_p95_upper_ms: f64,
    /// c = λ·q⁺ + δ (ms).
    pub cutoff_ms: f64,
    /// λ and δ as used.
    pub ratio: f64,
    pub floor_ms: f64,
    pub alpha: f64,
}

/// The cut-off from the baseline's durations (ms). None when they are too few to bound
/// the p95 at α/2 (fewer than 104 at α = 0.01).
pub fn cutoff(baseline: &[f64], rule: &LatencyRule) -> Option<Cutoff> {
    let base = sorted(baseline);
    let alpha = if rule.alpha > 0.0 && rule.alpha < 1.0 {
        rule.alpha
    } else {
        0.01
    };
    let upper = upper_quantile_index(base.len(), QUANTILE, alpha / 2.0)?;
    let ratio = if rule.ratio.is_finite() && rule.ratio > 0.0 {
        rule.ratio
    } else {
        1.2
    };
    let floor_ms = if rule.floor_ms.is_finite() && rule.floor_ms >= 0.0 {
        rule.floor_ms
    } else {
        0.0
    };
    Some(Cutoff {
        baseline_p95_ms: point_quantile(&base, QUANTILE),
        baseline_p95_upper_ms: base[upper],
        cutoff_ms: ratio * base[upper] + floor_ms,
        ratio,
        floor_ms,
        alpha,
    })
}

/// ln M after `slow` of `samples` new durations were above the cut-off.
pub fn log_e(slow: u64, samples: u64) -> f64 {
    let q0 = 1.0 - QUANTILE;
    let (s, rest) = (slow as f64, samples.saturating_sub(slow) as f64);
    let terms: Vec<f64> = SHARE_GRID
        .iter()
        .map(|&(m, w)| {
            let q = q0 * m;
            w.ln() + s * (q / q0).ln() + rest * ((1.0 - q) / (1.0 - q0)).ln()
        })
        .collect();
    log_sum_exp(&terms)
}

impl Cutoff {
    /// ln(2/α).
    pub fn log_threshold(&self) -> f64 {
        (2.0 / self.alpha).ln()
    }

    /// Whether the evidence and the point estimate together make a regression.
    pub fn is_regression(&self, slow: u64, samples: u64, p95_ms: f64) -> bool {
        log_e(slow, samples) >= self.log_threshold()
            && slow >= MIN_SLOW
            && p95_ms > self.ratio * self.baseline_p95_ms + self.floor_ms
    }
}

/// The latency test of `new` durations (ms) against `baseline` durations (ms) from
/// before the deploy. None when the baseline has too few samples to bound its p95 or
/// the new release has none.
pub fn latency_test(new: &[f64], baseline: &[f64], rule: &LatencyRule) -> Option<LatencyTest> {
    let c = cutoff(baseline, rule)?;
    let fresh = sorted(new);
    if fresh.is_empty() {
        return None;
    }
    let slow = fresh.iter().filter(|&&v| v > c.cutoff_ms).count() as u64;
    let n = fresh.len() as u64;
    let p95 = point_quantile(&fresh, QUANTILE);
    Some(LatencyTest {
        p95_ms: p95,
        baseline_p95_ms: c.baseline_p95_ms,
        baseline_p95_upper_ms: c.baseline_p95_upper_ms,
        cutoff_ms: c.cutoff_ms,
        slow,
        samples: n,
        log_e: log_e(slow, n),
        log_threshold: c.log_threshold(),
        regression: c.is_regression(slow, n, p95),
    })
}

/// The p95 point estimate of unsorted durations (ms); None without finite values.
pub fn p95(values: &[f64]) -> Option<f64> {
    let v = sorted(values);
    (!v.is_empty()).then(|| point_quantile(&v, QUANTILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: LatencyRule = LatencyRule {
        ratio: 1.2,
        floor_ms: 5.0,
        alpha: 0.01,
    };

    /// Deterministic values with the shape of a latency distribution: 10–50 ms, a tail
    /// to 100 ms.
    fn spread(n: usize, scale: f64) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let u = (i as f64 * 0.618_033_988_75).fract();
                scale
                    * (10.0
                        + 40.0 * u
                        + if u > 0.9 {
                            50.0 * (u - 0.9) * 10.0
                        } else {
                            0.0
                        })
            })
            .collect()
    }

    #[test]
    fn equal_distributions_and_sub_millisecond_shifts_are_no_regression() {
        let base = spread(2_000, 1.0);
        let t = latency_test(&spread(2_000, 1.0), &base, &RULE).unwrap();
        assert!(!t.regression && t.log_e < 0.0, "{t:?}");
        // 0.3 → 0.4 ms: far under the 5 ms floor.
        let tiny: Vec<f64> = spread(5_000, 0.01);
        let slower: Vec<f64> = spread(5_000, 0.0133);
        assert!(!latency_test(&slower, &tiny, &RULE).unwrap().regression);
    }

    #[test]
    fn a_doubled_p95_is_a_regression() {
        let base = spread(2_000, 1.0);
        let t = latency_test(&spread(500, 2.0), &base, &RULE).unwrap();
        assert!(t.regression, "{t:?}");
        assert!(t.p95_ms > 1.9 * t.baseline_p95_ms);
        assert!(t.cutoff_ms > 1.2 * t.baseline_p95_ms + 5.0 - 1e-9);
    }

    #[test]
    fn too_few_baseline_samples_give_no_test() {
        assert!(latency_test(&spread(100, 1.0), &spread(50, 1.0), &RULE).is_none());
        assert!(latency_test(&[], &spread(500, 1.0), &RULE).is_none());
        assert!(latency_test(&[f64::NAN; 10], &spread(500, 1.0), &RULE).is_none());
        assert_eq!(upper_quantile_index(103, 0.95, 0.005), None);
        assert!(upper_quantile_index(104, 0.95, 0.005).is_some());
    }
}
