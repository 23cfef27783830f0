//! Case E: how much more exposure is needed. Two questions, both solved on the case A
//! statistic by bracketing and bisection:
//! - at the error rate seen so far, when would M cross the threshold (a regression in
//!   the making)?
//! - for a clean release, when would a *severe* regression have been caught with the
//!   required probability, so that "healthy" means something?

use super::cutover::CutoverTest;
use super::mixture::{log_sum_exp, THETA_GRID};
use super::special::normal_cdf;

/// Severe rates are never below this multiple of the null rate μ0: a rise at or below
/// ρ·r_b⁺ can never be detected, and one just above it takes forever.
pub const MIN_SEVERE_OVER_NULL: f64 = 1.5;

/// The floors of case A, as the planner needs them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Floors {
    /// The baseline's observed rate x_b / E_b.
    pub baseline_rate: f64,
    /// Minimum error count.
    pub min_errors: u64,
    /// Minimum rise of the new rate over `baseline_rate`.
    pub min_abs_rise: f64,
}

/// Smallest (fractional) error count X with ln M(X, E) ≥ threshold at exposure E.
/// ln M is convex and increasing in X, so Newton's method started above the root (at a
/// closed-form upper bound) descends onto it monotonically and never undershoots.
pub fn errors_to_cross(test: &CutoverTest, exposure: f64) -> f64 {
    let c = test.log_threshold;
    if test.log_m(0.0, exposure) >= c {
        return 0.0;
    }
    // ln M ≥ ln(1/#θ) + ln L_max / φ, with L_max the largest θ's component.
    let theta = THETA_GRID[THETA_GRID.len() - 1];
    let cost = if exposure > 0.0 {
        (theta - 1.0) * test.null_rate * exposure
    } else {
        0.0
    };
    let upper = (test.dispersion * (c + (THETA_GRID.len() as f64).ln()) + cost) / theta.ln();
    if !upper.is_finite() {
        return f64::INFINITY;
    }
    let mut x = upper;
    let ln_w = -(THETA_GRID.len() as f64).ln();
    for _ in 0..100 {
        let terms = test
            .log_likelihoods(x, exposure)
            .map(|l| ln_w + l / test.dispersion);
        let log_m = log_sum_exp(&terms);
        let excess = log_m - c;
        if excess <= 1e-12 * c.abs().max(1.0) {
            break;
        }
        // d ln M / dX = Σ_k softmax_k · ln θ_k / φ
        let slope: f64 = terms
            .iter()
            .zip(THETA_GRID)
            .map(|(t, th)| (t - log_m).exp() * th.ln())
            .sum::<f64>()
            / test.dispersion;
        let next = x - excess / slope;
        if next >= x || !next.is_finite() {
            break;
        }
        x = next.max(0.0);
    }
    // Rounding can leave the last iterate a hair below the boundary: finish by
    // bisection between it and the bound, which is always above.
    let (mut lo, mut hi) = (x, upper);
    if test.log_m(x, exposure) >= c {
        return x;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if test.log_m(mid, exposure) >= c {
            hi = mid;
        } else {
            lo = mid;
        }
        if hi - lo <= 1e-12 * hi {
            break;
        }
    }
    hi
}

/// Smallest exposure at which errors arriving at `rate` would make M cross and meet the
/// floors. None when that never happens: the rate is too close to μ0, or under the
/// absolute floor. ln M(rE, E) is a log-sum-exp of linear functions of E, hence
/// convex and 0 at E = 0: once above the threshold it stays there, so bisection works.
pub fn exposure_to_cross(test: &CutoverTest, rate: f64, floors: &Floors) -> Option<f64> {
    if !(rate > 0.0 && rate.is_finite()) || rate - floors.baseline_rate < floors.min_abs_rise {
        return None;
    }
    let drifts_up = THETA_GRID
        .iter()
        .any(|th| rate * th.ln() - (th - 1.0) * test.null_rate > 0.0);
    if !drifts_up {
        return None;
    }
    let crossed = |e: f64| test.log_m(rate * e, e) >= test.log_threshold;
    let mut hi = 1.0 / rate;
    let mut lo = 0.0;
    while !crossed(hi) {
        lo = hi;
        hi *= 2.0;
        if !hi.is_finite() {
            return None;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if crossed(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
        if hi - lo <= 1e-9 * hi {
            break;
        }
    }
    Some(hi.max(floors.min_errors as f64 / rate))
}

/// The severe regression "healthy" must rule out: the larger of `ratio` × the baseline
/// rate and the baseline rate + `abs_rise`, kept detectable (≥ 1.5·μ0, and at least
/// twice the absolute floor above the baseline).
pub fn severe_rate(test: &CutoverTest, floors: &Floors, ratio: f64, abs_rise: f64) -> f64 {
    let b = floors.baseline_rate;
    (ratio * b)
        .max(b + abs_rise)
        .max(b + 2.0 * floors.min_abs_rise)
        .max(MIN_SEVERE_OVER_NULL * test.null_rate)
}

/// Probability (normal approximation, variance φ·mean, continuity-corrected) that a
/// release with error rate `rate` is detected by a single look at exposure E.
pub fn detection_probability(test: &CutoverTest, rate: f64, floors: &Floors, exposure: f64) -> f64 {
    let needed = errors_to_cross(test, exposure)
        .max(floors.min_errors as f64)
        .max(exposure * (floors.baseline_rate + floors.min_abs_rise))
        .ceil();
    let mean = rate * exposure;
    if mean.is_nan() || mean <= 0.0 || !needed.is_finite() {
        return 0.0;
    }
    let sd = (test.dispersion * mean).sqrt();
    normal_cdf((mean - (needed - 0.5)) / sd)
}

/// Exposure from which a release at `severe` error rate would be detected with
/// probability ≥ `power`: the point where a clean result becomes informative. None if
/// that never happens (it does for any severe rate produced by [`severe_rate`]).
pub fn decidable_exposure(
    test: &CutoverTest,
    severe: f64,
    floors: &Floors,
    power: f64,
) -> Option<f64> {
    if !(severe > 0.0 && severe.is_finite()) {
        return None;
    }
    let enough = |e: f64| detection_probability(test, severe, floors, e) >= power;
    // Start below the exposure that would even produce min_errors at the severe rate.
    let mut hi = (floors.min_errors.max(1) as f64 / severe).max(f64::MIN_POSITIVE);
    let mut lo = 0.0;
    while !enough(hi) {
        lo = hi;
        hi *= 2.0;
        if !hi.is_finite() {
            return None;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if enough(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
        if hi - lo <= 1e-3 * hi {
            break;
        }
    }
    Some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (CutoverTest, Floors) {
        // Baseline 1% over 100 000 requests.
        let test = CutoverTest::new(1_000, 100_000, 1.5, 0.01, 1.0).unwrap();
        let floors = Floors {
            baseline_rate: 0.01,
            min_errors: 5,
            min_abs_rise: 0.001,
        };
        (test, floors)
    }

    #[test]
    fn errors_to_cross_is_the_boundary() {
        let (test, _) = setup();
        for e in [0.0, 10.0, 1_000.0, 1e6] {
            let x = errors_to_cross(&test, e);
            assert!(test.log_m(x, e) >= test.log_threshold - 1e-9);
            assert!(
                test.log_m(x * 0.999 - 1e-6, e) < test.log_threshold,
                "e={e}"
            );
        }
    }

    #[test]
    fn exposure_to_cross_matches_direct_check() {
        let (test, floors) = setup();
        let rate = 0.05;
        let e = exposure_to_cross(&test, rate, &floors).unwrap();
        assert!(test.crossed(rate * e * 1.0001, e * 1.0001));
        assert!(!test.crossed(rate * e * 0.99, e * 0.99));
        // A rate below μ0 never crosses, nor one under the absolute floor.
        assert_eq!(exposure_to_cross(&test, 0.012, &floors), None);
        let tiny = Floors {
            baseline_rate: 0.0,
            ..floors
        };
        let t0 = CutoverTest::with_null_rate(1e-6, 200f64.ln(), 1.0).unwrap();
        assert_eq!(exposure_to_cross(&t0, 0.0005, &tiny), None);
        assert_eq!(exposure_to_cross(&test, f64::NAN, &floors), None);
    }

    #[test]
    fn decidable_exposure_gives_the_requested_power() {
        let (test, floors) = setup();
        let severe = severe_rate(&test, &floors, 3.0, 0.01);
        assert!(severe >= 0.03 && severe >= 1.5 * test.null_rate);
        let e = decidable_exposure(&test, severe, &floors, 0.8).unwrap();
        let p = detection_probability(&test, severe, &floors, e);
        assert!(p >= 0.8, "power {p} at {e}");
        assert!(detection_probability(&test, severe, &floors, e * 0.8) < 0.8);
        // Noisier data need more exposure.
        let noisy = CutoverTest::new(1_000, 100_000, 1.5, 0.01, 3.0).unwrap();
        let e3 = decidable_exposure(&noisy, severe, &floors, 0.8).unwrap();
        assert!(e3 > 2.0 * e, "{e3} vs {e}");
    }

    #[test]
    fn severe_rate_is_always_decidable() {
        // Tiny baseline: r_b⁺ is large, and 3× the observed rate would be undetectable.
        let test = CutoverTest::new(1, 50, 1.5, 0.01, 1.0).unwrap();
        let floors = Floors {
            baseline_rate: 0.02,
            min_errors: 5,
            min_abs_rise: 0.001,
        };
        let severe = severe_rate(&test, &floors, 3.0, 0.01);
        assert!(severe > test.null_rate);
        assert!(decidable_exposure(&test, severe, &floors, 0.8).is_some());
    }
}
