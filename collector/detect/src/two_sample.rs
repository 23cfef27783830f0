//! Case A with both counts: the new release against its baseline's window before the
//! deploy, where the baseline rate is not taken as known but estimated with the new
//! release's counts in one test.
//!
//! # The statistic
//!
//! Data: the baseline's x_b errors over exposure E_b (fixed before the deploy), and the
//! new release's X errors over E (growing). Null (regression test): λ_n ≤ ρ·λ_b, for any
//! λ_b. For one alternative ratio r (λ_n = r·λ_b) the e-value is
//!
//!   M_r = ∫ Pois(x_b; λE_b) Pois(X; rλE) π(dλ) / sup_{λ_n ≤ ρλ_b} Pois(x_b; λ_bE_b) Pois(X; λ_nE)
//!
//! with π a gamma prior on λ_b. The numerator is one fixed probability law of the whole
//! data stream, so for every null (λ_b, λ_n) it is a test martingale against that null's
//! likelihood; the denominator is at least that likelihood, so M_r is below a test
//! martingale for every null at once (an e-process), and Ville's inequality gives
//! P(ever M ≥ 1/α) ≤ α with no part of α spent on a bound of the baseline rate. Both
//! sides are closed form (gamma–Poisson conjugacy; the constrained maximum is on the
//! boundary λ_n = ρλ_b, at λ̂ = (x_b + X) / (E_b + ρE)). The mixture over r is an average
//! of e-processes, hence one itself.
//!
//! Healthy is the mirror image: null λ_n ≥ ρ·λ_b, alternatives r < ρ.
//!
//! # The prior, and why the baseline is split
//!
//! Any fixed prior keeps the promise; it only decides how fast the test is. A vague
//! prior costs about ½·ln(x_b + X) nats (the gap between averaging and maximising over
//! λ_b), which for an hour of baseline is as much as the threshold itself. So the
//! earliest [`PRIOR_SHARE`] (a tenth, the best of the shares tried in the simulation) of
//! the baseline window's exposure makes the prior (its
//! gamma posterior) and only the rest enters the test: the prior is then independent of
//! the tested data and centred close to the truth, and the cost falls to well under a
//! nat. A baseline of a single bucket has no earlier part; it gets a weak prior.
//!
//! # Dispersion
//!
//! With over-dispersed counts (case D) every count and exposure is divided by φ
//! (quasi-Poisson: bursts of φ errors counted as one), which divides the evidence by
//! about φ and widens what the baseline can say.

use super::mixture::{log_sum_exp, FLOOR_GRID};
use super::special::ln_gamma;
use super::verdict::Sample;

/// Share of the baseline window's exposure, from its start, that forms the prior.
pub const PRIOR_SHARE: f64 = 0.1;

/// Prior error rate assumed when the baseline has no earlier part to learn from (shape
/// ½: as weak as a single observation).
const WEAK_PRIOR_RATE: f64 = 0.01;

/// Which null is tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Null λ_n ≤ ρλ_b: evidence of a regression.
    Up,
    /// Null λ_n ≥ ρλ_b: evidence that the rise stays below the tolerance.
    Down,
}

/// Gamma(shape, rate) prior on the baseline's error rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    pub shape: f64,
    pub rate: f64,
}

impl Prior {
    /// The gamma posterior after `errors` over `exposure` from a shape-½ start, both
    /// divided by φ; a weak prior at 1 % without exposure.
    pub fn from_counts(errors: u64, exposure: u64, dispersion: f64) -> Self {
        let phi = dispersion.max(1.0);
        if exposure == 0 {
            return Self {
                shape: 0.5,
                rate: 0.5 / WEAK_PRIOR_RATE,
            };
        }
        Self {
            shape: errors as f64 / phi + 0.5,
            rate: exposure as f64 / phi,
        }
    }
}

/// The baseline's buckets split into the prior's part and the tested part: the earliest
/// buckets until they hold [`PRIOR_SHARE`] of the exposure (never all of it).
pub fn split_baseline(buckets: &[Sample]) -> (Sample, Sample) {
    let total: u64 = buckets
        .iter()
        .map(|b| b.exposure)
        .fold(0, u64::saturating_add);
    let target = (total as f64 * PRIOR_SHARE) as u64;
    let mut prior = Sample::default();
    let mut tested = Sample::default();
    for (i, b) in buckets.iter().enumerate() {
        let last = i + 1 == buckets.len();
        let into_prior =
            prior.exposure < target && !(last && tested.exposure == 0) && b.exposure < total;
        let side = if into_prior { &mut prior } else { &mut tested };
        side.exposure = side.exposure.saturating_add(b.exposure);
        side.errors = side.errors.saturating_add(b.errors);
    }
    (prior, tested)
}

/// The two-sample sequential test of one new release against its baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwoSampleTest {
    pub prior: Prior,
    /// Baseline counts in the test (after the prior's part), divided by φ.
    base_errors: f64,
    base_exposure: f64,
    pub rho: f64,
    pub dispersion: f64,
}

impl TwoSampleTest {
    /// None without tested baseline exposure or with a meaningless ρ.
    pub fn new(prior: Prior, tested: Sample, rho: f64, dispersion: f64) -> Option<Self> {
        let phi = if dispersion.is_finite() && dispersion > 1.0 {
            dispersion
        } else {
            1.0
        };
        let ok = tested.exposure > 0
            && rho.is_finite()
            && rho > 0.0
            && prior.shape > 0.0
            && prior.rate > 0.0
            && prior.shape.is_finite()
            && prior.rate.is_finite();
        ok.then_some(Self {
            prior,
            base_errors: tested.errors as f64 / phi,
            base_exposure: tested.exposure as f64 / phi,
            rho,
            dispersion: phi,
        })
    }

    /// The baseline rate of the tested part.
    pub fn baseline_rate(&self) -> f64 {
        self.base_errors / self.base_exposure
    }

    /// ln M_r for one alternative ratio r, after `errors` over `exposure` of the new
    /// release (raw counts; fractional values allowed for planning).
    pub fn log_e_one(&self, dir: Direction, ratio: f64, errors: f64, exposure: f64) -> f64 {
        let phi = self.dispersion;
        let (xb, eb) = (self.base_errors, self.base_exposure);
        let x = (errors / phi).max(0.0);
        let e = (exposure / phi).max(0.0);
        let n = xb + x;
        let Prior { shape: a, rate: b } = self.prior;
        let numerator = xlny(x, ratio) + a * b.ln() - ln_gamma(a) + ln_gamma(a + n)
            - (a + n) * (b + eb + ratio * e).ln();
        // Is the unconstrained maximum (x_b/E_b, X/E) inside the null?
        let inside = match dir {
            Direction::Up => x * eb <= self.rho * xb * e,
            Direction::Down => x * eb >= self.rho * xb * e,
        };
        let denominator = if inside {
            xlny(xb, xb / eb) - xb + if e > 0.0 { xlny(x, x / e) - x } else { 0.0 }
        } else {
            let lambda = n / (eb + self.rho * e);
            xlny(n, lambda) + xlny(x, self.rho) - n
        };
        let out = numerator - denominator;
        if out.is_nan() {
            f64::NEG_INFINITY
        } else {
            out
        }
    }

    /// ln M: the weighted mixture over `grid` (ratios relative to ρ, with weights).
    pub fn log_e(&self, dir: Direction, grid: &[(f64, f64)], errors: f64, exposure: f64) -> f64 {
        let terms: Vec<f64> = grid
            .iter()
            .map(|&(theta, w)| w.ln() + self.log_e_one(dir, self.rho * theta, errors, exposure))
            .collect();
        log_sum_exp(&terms)
    }
}

/// ln M of the test that the new release's rate is under `floor` (null λ_n ≥ floor,
/// alternatives c·floor with c < 1 from [`FLOOR_GRID`]). Each component
/// c^X·e^{−(c−1)·floor·E} has expectation e^{(c−1)(λ_n−floor)E} ≤ 1 under the null, so
/// the mixture is a test martingale with no baseline in it. A regression needs the rate
/// above the baseline's by the floor, so a rate proven under the floor is no regression
/// whatever the baseline did. −∞ without a floor.
pub fn log_e_under_floor(errors: f64, exposure: f64, floor: f64, dispersion: f64) -> f64 {
    if !(floor > 0.0 && floor.is_finite()) {
        return f64::NEG_INFINITY;
    }
    let phi = if dispersion.is_finite() && dispersion > 1.0 {
        dispersion
    } else {
        1.0
    };
    let (x, e) = ((errors / phi).max(0.0), (exposure / phi).max(0.0));
    let terms: Vec<f64> = FLOOR_GRID
        .iter()
        .map(|&(c, w)| w.ln() + xlny(x, c) - (c - 1.0) * floor * e)
        .collect();
    log_sum_exp(&terms)
}

/// ln(½·M_a + ½·M_b): the average of two e-values, valid whenever either null holds.
pub fn log_average(log_a: f64, log_b: f64) -> f64 {
    log_sum_exp(&[log_a, log_b]) - std::f64::consts::LN_2
}

/// Weight of the under-the-floor test in the healthy e-value when the baseline's rate
/// is well above the floor (at least twice): a rate under the floor would then be a
/// fall of more than half, which the ratio test shows as fast, so the floor test gets
/// little weight and the ratio test keeps 95 % of it. Otherwise both get half.
pub const FLOOR_WEIGHT_ABOVE: f64 = 0.05;

/// ln of the healthy e-value from its two parts, weighted by where the baseline's rate
/// (fixed before the deploy, so the weights are too) sits against the floor.
pub fn log_healthy_mix(log_ratio: f64, log_floor: f64, baseline_rate: f64, floor: f64) -> f64 {
    let w = if baseline_rate >= 2.0 * floor {
        FLOOR_WEIGHT_ABOVE
    } else {
        0.5
    };
    log_sum_exp(&[(1.0 - w).ln() + log_ratio, w.ln() + log_floor])
}

/// x·ln y with 0·ln 0 = 0.
fn xlny(x: f64, y: f64) -> f64 {
    if x == 0.0 {
        0.0
    } else {
        x * y.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mixture::{HEALTHY_GRID, REGRESSION_GRID};

    fn test_of(xb: u64, eb: u64) -> TwoSampleTest {
        let prior = Prior::from_counts(xb / 3, eb / 3, 1.0);
        TwoSampleTest::new(
            prior,
            Sample {
                errors: xb,
                exposure: eb,
            },
            1.5,
            1.0,
        )
        .unwrap()
    }

    /// ∫ by the trapezoid rule on a log grid, to check the closed-form numerator.
    #[test]
    fn closed_form_matches_numeric_integration() {
        let t = test_of(30, 3_000);
        let (x, e, r) = (25.0, 1_000.0, 2.25);
        let closed = t.log_e_one(Direction::Up, r, x, e);
        let (a, b) = (t.prior.shape, t.prior.rate);
        let (xb, eb) = (t.base_errors, t.base_exposure);
        let ln_f = |l: f64| {
            xb * l.ln() - l * eb + x * (r * l).ln() - r * l * e + a * b.ln() - ln_gamma(a)
                + (a - 1.0) * l.ln()
                - b * l
        };
        let mut sum = 0.0;
        let steps = 200_000;
        let (lo, hi) = (1e-6f64.ln(), 1f64.ln());
        let h = (hi - lo) / steps as f64;
        for i in 0..=steps {
            let u = lo + i as f64 * h;
            let l = u.exp();
            let w = if i == 0 || i == steps { 0.5 } else { 1.0 };
            sum += w * (ln_f(l)).exp() * l * h;
        }
        let lambda = (xb + x) / (eb + 1.5 * e);
        let den = (xb + x) * lambda.ln() + x * 1.5f64.ln() - (xb + x);
        assert!(
            (closed - (sum.ln() - den)).abs() < 1e-6,
            "{closed} vs {}",
            sum.ln() - den
        );
    }

    #[test]
    fn evidence_points_the_right_way() {
        let t = test_of(300, 30_000); // 1 %
        let up = |x, e| t.log_e(Direction::Up, &REGRESSION_GRID, x, e);
        let down = |x, e| t.log_e(Direction::Down, &HEALTHY_GRID, x, e);
        assert!(
            up(600.0, 30_000.0) > 100f64.ln(),
            "2 % vs 1 % is a regression"
        );
        assert!(up(300.0, 30_000.0) < 0.0);
        assert!(
            down(300.0, 30_000.0) > 20f64.ln(),
            "1 % vs 1 % bounds the rise"
        );
        assert!(down(600.0, 30_000.0) < 0.0);
        assert!(
            up(0.0, 0.0) <= 0.0 && down(0.0, 0.0) <= 0.0,
            "no data, no evidence"
        );
    }

    #[test]
    fn under_the_floor_needs_a_clean_rate() {
        assert!(log_e_under_floor(0.0, 10_000.0, 0.001, 1.0) > 20f64.ln());
        assert!(log_e_under_floor(20.0, 10_000.0, 0.001, 1.0) < 0.0);
        assert_eq!(log_e_under_floor(0.0, 1e6, 0.0, 1.0), f64::NEG_INFINITY);
        let a = log_average(f64::NEG_INFINITY, 2f64.ln());
        assert!((a - 0.0).abs() < 1e-12);
    }

    #[test]
    fn healthy_weights_follow_the_baseline_rate() {
        let (ratio, floor) = (3.0, f64::NEG_INFINITY);
        let high = log_healthy_mix(ratio, floor, 0.01, 0.001);
        assert!((high - (3.0 + (1.0 - FLOOR_WEIGHT_ABOVE).ln())).abs() < 1e-12);
        let low = log_healthy_mix(ratio, floor, 0.0015, 0.001);
        assert!((low - (3.0 - std::f64::consts::LN_2)).abs() < 1e-12);
        // Weights sum to one either way: zero evidence stays zero.
        assert!(log_healthy_mix(0.0, 0.0, 0.01, 0.001).abs() < 1e-12);
        assert!(log_healthy_mix(0.0, 0.0, 0.0, 0.001).abs() < 1e-12);
    }

    #[test]
    fn split_keeps_a_tested_part() {
        let b = |e| Sample {
            exposure: e,
            errors: e / 100,
        };
        let (p, t) = split_baseline(&[b(100), b(100), b(100), b(100)]);
        assert_eq!((p.exposure, t.exposure), (100, 300));
        let (p, t) = split_baseline(&[b(100)]);
        assert_eq!((p.exposure, t.exposure), (0, 100));
        let (p, t) = split_baseline(&[]);
        assert_eq!((p.exposure, t.exposure), (0, 0));
        let (p, t) = split_baseline(&[b(0), b(0), b(100)]);
        assert_eq!((p.exposure, t.exposure), (0, 100));
    }

    #[test]
    fn extreme_counts_never_give_nan() {
        for (xb, eb, x, e) in [
            (0u64, 1u64, 0.0, 0.0),
            (u64::MAX, u64::MAX, u64::MAX as f64, u64::MAX as f64),
            (0, u64::MAX, 1e18, 1.0),
            (5, 10, 0.0, 1e18),
        ] {
            let t = TwoSampleTest::new(
                Prior::from_counts(xb, eb, 1.0),
                Sample {
                    errors: xb,
                    exposure: eb,
                },
                1.5,
                1.0,
            )
            .unwrap();
            for dir in [Direction::Up, Direction::Down] {
                assert!(!t.log_e(dir, &REGRESSION_GRID, x, e).is_nan());
            }
        }
    }
}
