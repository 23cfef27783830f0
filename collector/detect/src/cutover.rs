//! The one-sample test of a count against a fixed null rate, as case C uses it for a
//! new error signature (its baseline rate is zero, taken pessimistically as the exact
//! upper bound after zero errors), and the absolute floors every detection needs.
//! (A full cut-over no longer uses it: [`super::two_sample`] tests both releases'
//! counts together instead of bounding the baseline rate first.)
//!
//! For a Poisson count X over exposure E with rate μ ≤ μ0 and any θ ≥ 1,
//! E[θ^X · e^(−(θ−1)·μ0·E)] = e^((θ−1)(μ−μ0)E) ≤ 1, and the product over disjoint
//! stretches of exposure keeps that property: each component, and so their average M, is
//! a nonnegative supermartingale in E. Ville: P(ever M ≥ 2/α) ≤ α/2. The other α/2 pays
//! for the baseline rate being estimated (μ0 uses its upper bound).

use super::mixture::{log_mixture, sanitize_dispersion, LogLikelihoods, THETA_GRID};
use super::special::poisson_upper_mean;

/// The sequential test of one new release against a fixed null rate μ0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CutoverTest {
    /// μ0 = ρ · r_b⁺, errors per unit of exposure.
    pub null_rate: f64,
    /// ln of the threshold M must reach (ln(2/α) for case A).
    pub log_threshold: f64,
    /// φ ≥ 1; evidence is damped by it (case D).
    pub dispersion: f64,
}

/// r_b⁺: upper bound on a rate with one-sided tail probability `tail`, from `errors`
/// over `exposure`. With a dispersion φ the counts are treated as φ-sized bursts
/// (quasi-Poisson), i.e. errors/φ events over exposure/φ, which widens the bound.
/// None when there is no exposure or the result is not finite.
pub fn pessimistic_rate(errors: u64, exposure: u64, tail: f64, dispersion: f64) -> Option<f64> {
    if exposure == 0 {
        return None;
    }
    let phi = sanitize_dispersion(dispersion);
    let mean = poisson_upper_mean(errors as f64 / phi, tail);
    let rate = mean * phi / exposure as f64;
    (rate.is_finite() && rate >= 0.0).then_some(rate)
}

/// The absolute floors every detection needs on top of the e-value: at least
/// `min_errors` errors, and the new rate above the baseline's observed rate by at least
/// `min_abs_rise` (a fraction: 0.001 is +0.1 percentage point).
pub fn floors_met(
    errors: f64,
    exposure: f64,
    baseline_rate: f64,
    min_errors: u64,
    min_abs_rise: f64,
) -> bool {
    exposure > 0.0
        && errors >= min_errors as f64
        && errors / exposure - baseline_rate >= min_abs_rise
}

impl CutoverTest {
    /// Builds the test from the baseline's counts: μ0 = ρ · r_b⁺ with r_b⁺ the upper
    /// (1 − α/2) bound, and threshold 2/α. None without baseline exposure or with
    /// parameters that make μ0 meaningless (ρ or α not positive and finite, α ≥ 1).
    pub fn new(
        baseline_errors: u64,
        baseline_exposure: u64,
        rho: f64,
        alpha: f64,
        dispersion: f64,
    ) -> Option<Self> {
        if !(alpha > 0.0 && alpha < 1.0 && rho.is_finite() && rho > 0.0) {
            return None;
        }
        let upper = pessimistic_rate(baseline_errors, baseline_exposure, alpha / 2.0, dispersion)?;
        Self::with_null_rate(rho * upper, (2.0 / alpha).ln(), dispersion)
    }

    /// A test against an explicit null rate and threshold (case C builds its own).
    pub fn with_null_rate(null_rate: f64, log_threshold: f64, dispersion: f64) -> Option<Self> {
        let ok = null_rate.is_finite() && null_rate >= 0.0 && log_threshold.is_finite();
        ok.then_some(Self {
            null_rate,
            log_threshold,
            dispersion: sanitize_dispersion(dispersion),
        })
    }

    /// ln L_k = X ln θ_k − (θ_k − 1) μ0 E for every θ on the grid. X may be fractional
    /// (the exposure planner in case E asks "what if").
    pub fn log_likelihoods(&self, errors: f64, exposure: f64) -> LogLikelihoods {
        let mut out = [0.0; THETA_GRID.len()];
        let cost = if exposure > 0.0 {
            self.null_rate * exposure
        } else {
            0.0
        };
        let errors = if errors > 0.0 { errors } else { 0.0 };
        for (l, theta) in out.iter_mut().zip(THETA_GRID) {
            *l = errors * theta.ln() - (theta - 1.0) * cost;
        }
        out
    }

    /// ln M after `errors` errors over `exposure` (cumulative since the deploy).
    pub fn log_m(&self, errors: f64, exposure: f64) -> f64 {
        log_mixture(&self.log_likelihoods(errors, exposure), self.dispersion)
    }

    /// Whether M has reached the threshold (floors are checked separately).
    pub fn crossed(&self, errors: f64, exposure: f64) -> bool {
        self.log_m(errors, exposure) >= self.log_threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_baseline_errors_give_the_closed_form() {
        let t = CutoverTest::new(0, 1_000, 1.5, 0.01, 1.0).unwrap();
        let expected = 1.5 * (2.0f64 / 0.01).ln() / 1_000.0;
        assert!((t.null_rate - expected).abs() < 1e-12 * expected);
        assert!((t.log_threshold - 200f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn statistic_matches_the_formula() {
        let t = CutoverTest::with_null_rate(0.01, 200f64.ln(), 1.0).unwrap();
        let (x, e) = (30.0, 1_000.0);
        let m: f64 = THETA_GRID
            .iter()
            .map(|th| th.powf(x) * (-(th - 1.0) * 0.01 * e).exp() / 7.0)
            .sum();
        assert!((t.log_m(x, e) - m.ln()).abs() < 1e-10);
        assert!(t.log_m(0.0, 0.0).abs() < 1e-15, "no data, no evidence");
        assert!(t.log_m(0.0, 1e6) < -1.0, "clean exposure lowers M");
        assert!(t.crossed(30.0, 1_000.0));
        assert!(!t.crossed(12.0, 1_000.0));
    }

    #[test]
    fn pessimistic_rate_is_above_observed_and_widens_with_dispersion() {
        let plain = pessimistic_rate(100, 10_000, 0.005, 1.0).unwrap();
        let wide = pessimistic_rate(100, 10_000, 0.005, 4.0).unwrap();
        assert!(plain > 0.01 && wide > plain);
        assert!(pessimistic_rate(5, 0, 0.005, 1.0).is_none());
        assert!(CutoverTest::new(5, 10, f64::NAN, 0.01, 1.0).is_none());
        assert!(CutoverTest::new(5, 10, 1.5, 1.0, 1.0).is_none());
    }

    #[test]
    fn extreme_inputs_stay_finite_or_infinite_never_nan() {
        let t = CutoverTest::new(u64::MAX, 1, 1.5, 0.01, 1.0).unwrap();
        assert!(!t.log_m(u64::MAX as f64, u64::MAX as f64).is_nan());
        let t = CutoverTest::new(0, u64::MAX, 1.5, 0.01, 1.0).unwrap();
        assert!(t.log_m(u64::MAX as f64, 1.0).is_finite());
        assert!(floors_met(5.0, 100.0, 0.0, 5, 0.001));
        assert!(!floors_met(4.0, 100.0, 0.0, 5, 0.001));
        assert!(!floors_met(5.0, 100.0, 0.0495, 5, 0.001));
        assert!(!floors_met(5.0, 0.0, 0.0, 5, 0.001));
    }
}
