//! Case B: concurrent traffic (canary, rolling, blue-green). Both versions serve at the
//! same time, so each error is attributed to one of them given the bucket's exposures.
//!
//! Given nᵢ = xᵢ + yᵢ errors in bucket i, xᵢ ~ Binomial(nᵢ, pᵢ) with
//! pᵢ = r·eᵢ / (r·eᵢ + bᵢ), r the true rate ratio. Under the null r ≤ ρ, pᵢ ≤ p0ᵢ, and
//! for θ ≥ 1 the per-bucket likelihood ratio of p_k,ᵢ against p0ᵢ has conditional mean
//! ≤ 1, so each ln L_k is a supermartingale log and M ≥ 1/α has probability ≤ α.
//! Conditioning on nᵢ cancels whatever moves both versions together (time of day,
//! traffic swings, a shared dependency failing).
//!
//! The healthy test is the mirror image: null r ≥ ρ, alternatives θ < 1
//! ([`HEALTHY_GRID`]); the likelihood ratio then falls with xᵢ, and the same argument
//! holds with the inequalities turned round.

use super::cutover::floors_met;
use super::mixture::{log_weighted_mixture, HEALTHY_GRID, REGRESSION_GRID};
use super::two_sample::Direction;

/// Incremental state of the concurrent test; one `update` per bucket (≤ 10 s).
#[derive(Debug, Clone, PartialEq)]
pub struct ConcurrentTest {
    rho: f64,
    log_up: [f64; REGRESSION_GRID.len()],
    log_down: [f64; HEALTHY_GRID.len()],
    /// Cumulative exposure of the new release.
    pub new_exposure: u64,
    /// Cumulative errors of the new release.
    pub new_errors: u64,
    /// Cumulative exposure of the baseline.
    pub baseline_exposure: u64,
    /// Cumulative errors of the baseline.
    pub baseline_errors: u64,
}

/// ln(p_k/p0) = ln θ + d and ln((1−p_k)/(1−p0)) = d with
/// d = ln((ρe + b)/(θρe + b)) = −ln(1 + (θ−1)·p0).
fn bucket_log_lr(theta: f64, p0: f64, x: f64, n: f64) -> f64 {
    let d = -((theta - 1.0) * p0).ln_1p();
    x * theta.ln() + n * d
}

impl ConcurrentTest {
    /// A fresh test with tolerance ρ (non-finite or non-positive ρ falls back to 1.5).
    pub fn new(rho: f64) -> Self {
        Self {
            rho: if rho.is_finite() && rho > 0.0 {
                rho
            } else {
                1.5
            },
            log_up: [0.0; REGRESSION_GRID.len()],
            log_down: [0.0; HEALTHY_GRID.len()],
            new_exposure: 0,
            new_errors: 0,
            baseline_exposure: 0,
            baseline_errors: 0,
        }
    }

    /// Adds one bucket: new exposure eᵢ, baseline exposure bᵢ, new errors xᵢ, baseline
    /// errors yᵢ. A bucket where either side had no exposure says nothing about the
    /// ratio (all its errors are attributed with certainty), so it only adds to the
    /// totals used by the floors.
    pub fn update(&mut self, e_i: u64, b_i: u64, x_i: u64, y_i: u64) {
        self.new_exposure = self.new_exposure.saturating_add(e_i);
        self.baseline_exposure = self.baseline_exposure.saturating_add(b_i);
        self.new_errors = self.new_errors.saturating_add(x_i);
        self.baseline_errors = self.baseline_errors.saturating_add(y_i);
        if e_i == 0 || b_i == 0 {
            return;
        }
        let scaled = self.rho * e_i as f64;
        let p0 = scaled / (scaled + b_i as f64);
        let (x, n) = (x_i as f64, x_i as f64 + y_i as f64);
        for (l, (theta, _)) in self.log_up.iter_mut().zip(REGRESSION_GRID) {
            *l += bucket_log_lr(theta, p0, x, n);
        }
        for (l, (theta, _)) in self.log_down.iter_mut().zip(HEALTHY_GRID) {
            *l += bucket_log_lr(theta, p0, x, n);
        }
    }

    /// ln M with φ = 1.
    pub fn log_m(&self) -> f64 {
        self.log_e(Direction::Up, 1.0)
    }

    /// ln M of the regression (`Up`) or healthy (`Down`) test, the evidence damped by
    /// a dispersion φ (case D).
    pub fn log_e(&self, dir: Direction, dispersion: f64) -> f64 {
        match dir {
            Direction::Up => log_weighted_mixture(&REGRESSION_GRID, &self.log_up, dispersion),
            Direction::Down => log_weighted_mixture(&HEALTHY_GRID, &self.log_down, dispersion),
        }
    }

    /// ln M if `more` new exposure arrived with the rates and traffic split seen so far:
    /// each unit of new exposure brings r_n new errors, k = b/e baseline exposure and
    /// r_b·k baseline errors, and adds their expected log likelihood ratio. The
    /// planner's "if it stays like this"; None before both sides have traffic.
    pub fn log_e_after(&self, dir: Direction, more: f64, dispersion: f64) -> Option<f64> {
        if self.new_exposure == 0 || self.baseline_exposure == 0 {
            return None;
        }
        let e = self.new_exposure as f64;
        let k = self.baseline_exposure as f64 / e;
        let r_n = self.new_errors as f64 / e;
        let r_b = self.baseline_errors as f64 / self.baseline_exposure as f64;
        let p0 = self.rho / (self.rho + k);
        let step = |theta: f64| bucket_log_lr(theta, p0, r_n * more, (r_n + r_b * k) * more);
        Some(match dir {
            Direction::Up => {
                let l: Vec<f64> = (self.log_up.iter().zip(REGRESSION_GRID))
                    .map(|(l, (t, _))| l + step(t))
                    .collect();
                log_weighted_mixture(&REGRESSION_GRID, &l, dispersion)
            }
            Direction::Down => {
                let l: Vec<f64> = (self.log_down.iter().zip(HEALTHY_GRID))
                    .map(|(l, (t, _))| l + step(t))
                    .collect();
                log_weighted_mixture(&HEALTHY_GRID, &l, dispersion)
            }
        })
    }

    /// ln(1/α): no part of α is spent on a baseline bound here.
    pub fn log_threshold(alpha: f64) -> f64 {
        (1.0 / alpha).ln()
    }

    /// Regression: M ≥ 1/α and the same floors as case A (cumulative counts).
    pub fn is_regression(
        &self,
        alpha: f64,
        min_errors: u64,
        min_abs_rise: f64,
        dispersion: f64,
    ) -> bool {
        if !(alpha > 0.0 && alpha < 1.0) || self.baseline_exposure == 0 {
            return false;
        }
        let baseline_rate = self.baseline_errors as f64 / self.baseline_exposure as f64;
        self.log_e(Direction::Up, dispersion) >= Self::log_threshold(alpha)
            && floors_met(
                self.new_errors as f64,
                self.new_exposure as f64,
                baseline_rate,
                min_errors,
                min_abs_rise,
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_matches_binomial_formula() {
        let mut t = ConcurrentTest::new(1.5);
        t.update(100, 900, 4, 10);
        let (e, b, x, y) = (100.0, 900.0, 4.0, 10.0);
        let p0 = 1.5 * e / (1.5 * e + b);
        let m: f64 = REGRESSION_GRID
            .iter()
            .map(|(th, w)| {
                let pk = th * 1.5 * e / (th * 1.5 * e + b);
                w * (pk / p0).powf(x) * ((1.0 - pk) / (1.0 - p0)).powf(y)
            })
            .sum();
        assert!((t.log_m() - m.ln()).abs() < 1e-12);
    }

    #[test]
    fn empty_sides_carry_no_evidence_but_count() {
        let mut t = ConcurrentTest::new(1.5);
        t.update(0, 100, 3, 1);
        t.update(100, 0, 3, 1);
        t.update(0, 0, u64::MAX, u64::MAX);
        assert!(t.log_m().abs() < 1e-15);
        assert!(t.log_e(Direction::Down, 1.0).abs() < 1e-15);
        assert_eq!(t.new_errors, u64::MAX);
        assert!(!t.log_m().is_nan());
    }

    #[test]
    fn a_clear_canary_regression_is_flagged_and_a_calm_one_is_healthy() {
        let mut t = ConcurrentTest::new(1.5);
        for _ in 0..10 {
            t.update(100, 900, 5, 9); // new 5%, baseline 1%
        }
        assert!(t.is_regression(0.01, 5, 0.001, 1.0));
        assert!(
            !t.is_regression(0.01, 5, 0.001, 50.0),
            "heavy dispersion damps it"
        );
        assert!(t.log_e(Direction::Down, 1.0) < 0.0);
        let mut calm = ConcurrentTest::new(1.5);
        for _ in 0..100 {
            calm.update(100, 900, 1, 9);
        }
        assert!(!calm.is_regression(0.01, 5, 0.001, 1.0));
        assert!(calm.log_m() < 0.0);
        assert!(calm.log_e(Direction::Down, 1.0) > 20f64.ln());
    }

    #[test]
    fn the_planner_extrapolates_the_current_rates() {
        let mut t = ConcurrentTest::new(1.5);
        for _ in 0..3 {
            t.update(100, 900, 3, 9); // 3 % vs 1 %
        }
        let now = t.log_e(Direction::Up, 1.0);
        let later = t.log_e_after(Direction::Up, 3_000.0, 1.0).unwrap();
        assert!(later > now && later > 100f64.ln(), "{now} {later}");
        assert_eq!(t.log_e_after(Direction::Up, 0.0, 1.0), Some(now));
        assert!(ConcurrentTest::new(1.5)
            .log_e_after(Direction::Up, 1.0, 1.0)
            .is_none());
    }

    #[test]
    fn huge_counts_never_give_nan() {
        let mut t = ConcurrentTest::new(1.5);
        t.update(u64::MAX, 1, u64::MAX, u64::MAX);
        t.update(1, u64::MAX, u64::MAX, 0);
        assert!(!t.log_m().is_nan());
        assert!(!t.log_e(Direction::Down, 1.0).is_nan());
        assert!(!t.is_regression(0.01, 5, 0.001, 1.0) || t.log_m() >= 100f64.ln());
    }
}
