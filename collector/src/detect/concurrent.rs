//! Case B: concurrent traffic (canary, rolling, blue-green). Both versions serve at the
//! same time, so each error is attributed to one of them given the bucket's exposures.
//!
//! Given nᵢ = xᵢ + yᵢ errors in bucket i, xᵢ ~ Binomial(nᵢ, pᵢ) with
//! pᵢ = r·eᵢ / (r·eᵢ + bᵢ), r the true rate ratio. Under the null r ≤ ρ, pᵢ ≤ p0ᵢ, and
//! for θ ≥ 1 the per-bucket likelihood ratio of p_k,ᵢ against p0ᵢ has conditional mean
//! ≤ 1, so each ln L_k is a supermartingale log and M ≥ 1/α has probability ≤ α.
//! Conditioning on nᵢ cancels whatever moves both versions together (time of day,
//! traffic swings, a shared dependency failing).

use super::cutover::floors_met;
use super::mixture::{log_mixture, LogLikelihoods, THETA_GRID};

/// Incremental state of the concurrent test; one `update` per bucket (≤ 10 s).
#[derive(Debug, Clone, PartialEq)]
pub struct ConcurrentTest {
    rho: f64,
    log_l: LogLikelihoods,
    /// Cumulative exposure of the new release.
    pub new_exposure: u64,
    /// Cumulative errors of the new release.
    pub new_errors: u64,
    /// Cumulative exposure of the baseline.
    pub baseline_exposure: u64,
    /// Cumulative errors of the baseline.
    pub baseline_errors: u64,
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
            log_l: [0.0; THETA_GRID.len()],
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
        for (l, theta) in self.log_l.iter_mut().zip(THETA_GRID) {
            // ln(p_k/p0) = ln θ + d and ln((1−p_k)/(1−p0)) = d with
            // d = ln((ρe + b)/(θρe + b)) = −ln(1 + (θ−1)·p0).
            let d = -((theta - 1.0) * p0).ln_1p();
            *l += x * theta.ln() + n * d;
        }
    }

    /// ln M with φ = 1.
    pub fn log_m(&self) -> f64 {
        log_mixture(&self.log_l, 1.0)
    }

    /// ln M with the evidence damped by a dispersion φ (case D).
    pub fn log_m_dispersed(&self, dispersion: f64) -> f64 {
        log_mixture(&self.log_l, dispersion)
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
        self.log_m_dispersed(dispersion) >= Self::log_threshold(alpha)
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
        let m: f64 = THETA_GRID
            .iter()
            .map(|th| {
                let pk = th * 1.5 * e / (th * 1.5 * e + b);
                (pk / p0).powf(x) * ((1.0 - pk) / (1.0 - p0)).powf(y) / 7.0
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
        assert_eq!(t.new_errors, u64::MAX);
        assert!(!t.log_m().is_nan());
    }

    #[test]
    fn a_clear_canary_regression_is_flagged() {
        let mut t = ConcurrentTest::new(1.5);
        for _ in 0..10 {
            t.update(100, 900, 5, 9); // new 5%, baseline 1%
        }
        assert!(t.is_regression(0.01, 5, 0.001, 1.0));
        assert!(
            !t.is_regression(0.01, 5, 0.001, 50.0),
            "heavy dispersion damps it"
        );
        let mut calm = ConcurrentTest::new(1.5);
        for _ in 0..10 {
            calm.update(100, 900, 1, 9);
        }
        assert!(!calm.is_regression(0.01, 5, 0.001, 1.0));
        assert!(calm.log_m() < 0.0);
    }

    #[test]
    fn huge_counts_never_give_nan() {
        let mut t = ConcurrentTest::new(1.5);
        t.update(u64::MAX, 1, u64::MAX, u64::MAX);
        t.update(1, u64::MAX, u64::MAX, 0);
        assert!(!t.log_m().is_nan());
        assert!(!t.is_regression(0.01, 5, 0.001, 1.0) || t.log_m() >= 100f64.ln());
    }
}
