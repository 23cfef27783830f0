//! The mixtures over alternatives shared by cases A, B and C, combined in log space.
//!
//! - [`THETA_GRID`] (uniform weights): the new-signature test of case C.
//! - [`REGRESSION_GRID`]: rate ratios above the tolerance, as multiples θ ≥ 1 of ρ. Most
//!   of the weight sits on moderate rises (1.1–2 × ρ), where evidence is scarcest and
//!   a test needs it most; large rises gather evidence so fast that a small weight
//!   costs them only a bucket or two.
//! - [`HEALTHY_GRID`]: ratios below the tolerance (θ < 1 of ρ) for the mirror-image
//!   test that calls a release healthy; θ = ⅔ is an unchanged release at ρ = 1.5.
//! - [`FLOOR_GRID`]: multiples c < 1 of the absolute floor, for the test that the new
//!   rate stays under the floor altogether (a baseline with almost no errors).
//!
//! Weights sum to 1, so each mixture is an average of e-processes and one itself.

/// Alternatives (multiples of the null rate). All are ≥ 1, which is what keeps each
/// component a supermartingale for every null ratio up to ρ, not only at ρ.
pub const THETA_GRID: [f64; 7] = [1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0];

/// (θ, weight) pairs of the regression mixture, θ a multiple of ρ.
pub const REGRESSION_GRID: [(f64, f64); 8] = [
    (1.1, 0.2),
    (1.25, 0.3),
    (1.5, 0.2),
    (2.0, 0.1),
    (3.0, 0.07),
    (5.0, 0.05),
    (10.0, 0.04),
    (30.0, 0.04),
];

/// (θ, weight) pairs of the healthy mixture, θ a multiple of ρ below 1.
pub const HEALTHY_GRID: [(f64, f64); 5] = [
    (0.85, 0.15),
    (0.667, 0.5),
    (0.5, 0.2),
    (0.3, 0.1),
    (0.1, 0.05),
];

/// (c, weight) pairs: alternatives c × the absolute floor for the under-the-floor test.
pub const FLOOR_GRID: [(f64, f64); 4] = [(0.7, 0.3), (0.5, 0.3), (0.25, 0.2), (0.1, 0.2)];

/// ln Σ_k w_k · exp(l_k / φ) for a weighted grid and its per-alternative log
/// likelihood ratios (in grid order).
pub fn log_weighted_mixture(grid: &[(f64, f64)], log_l: &[f64], dispersion: f64) -> f64 {
    let phi = sanitize_dispersion(dispersion);
    let terms: Vec<f64> = grid
        .iter()
        .zip(log_l)
        .map(|(&(_, w), l)| w.ln() + l / phi)
        .collect();
    log_sum_exp(&terms)
}

/// Per-alternative log likelihood ratios, in the order of [`THETA_GRID`].
pub type LogLikelihoods = [f64; THETA_GRID.len()];

/// ln Σ exp(xᵢ), stable; NaN terms are ignored, and an empty or all −∞ input is −∞.
pub fn log_sum_exp(xs: &[f64]) -> f64 {
    let max = xs
        .iter()
        .copied()
        .filter(|x| !x.is_nan())
        .fold(f64::NEG_INFINITY, f64::max);
    if max.is_infinite() {
        return max;
    }
    let sum: f64 = xs
        .iter()
        .filter(|x| !x.is_nan())
        .map(|x| (x - max).exp())
        .sum();
    max + sum.ln()
}

/// ln M for uniform weights, with a dispersion factor φ ≥ 1 applied to each component:
/// ln Σ_k w_k · exp(ln L_k / φ).
///
/// For φ = 1 this is exactly ln M. For φ > 1 it is the recipe's "log M / φ" taken per
/// alternative rather than on the sum. The two differ by at most ln(#θ), and the
/// per-component form is the smaller (power-mean inequality); it is also the exact
/// mixture martingale when errors arrive in bursts of constant size φ (each component
/// then is the Poisson martingale of the burst count), which the sum form is not.
pub fn log_mixture(log_l: &LogLikelihoods, dispersion: f64) -> f64 {
    let phi = sanitize_dispersion(dispersion);
    let ln_w = -(THETA_GRID.len() as f64).ln();
    let mut terms = [0.0; THETA_GRID.len()];
    for (term, l) in terms.iter_mut().zip(log_l) {
        *term = ln_w + l / phi;
    }
    log_sum_exp(&terms)
}

/// φ as used everywhere: finite and at least 1, anything else is 1.
pub fn sanitize_dispersion(phi: f64) -> f64 {
    if phi.is_finite() && phi > 1.0 {
        phi
    } else {
        1.0
    }
}

/// Keeps a log statistic finite for reporting (JSON has no ±∞ or NaN).
pub fn finite_or_clamped(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(-f64::MAX, f64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sum_exp_is_stable() {
        assert!((log_sum_exp(&[0.0, 0.0]) - 2f64.ln()).abs() < 1e-15);
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert!((log_sum_exp(&[-1000.0, 0.0]) - 0.0).abs() < 1e-15);
        assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
        assert_eq!(log_sum_exp(&[f64::NEG_INFINITY; 3]), f64::NEG_INFINITY);
        assert_eq!(log_sum_exp(&[f64::INFINITY, 1.0]), f64::INFINITY);
        assert!((log_sum_exp(&[f64::NAN, 0.0]) - 0.0).abs() < 1e-15);
    }

    #[test]
    fn mixture_of_zero_evidence_is_one() {
        assert!(log_mixture(&[0.0; 7], 1.0).abs() < 1e-15);
        assert!(log_mixture(&[0.0; 7], 4.0).abs() < 1e-15);
    }

    #[test]
    fn weights_sum_to_one() {
        for grid in [&REGRESSION_GRID[..], &HEALTHY_GRID[..], &FLOOR_GRID[..]] {
            let sum: f64 = grid.iter().map(|(_, w)| w).sum();
            assert!((sum - 1.0).abs() < 1e-12, "{grid:?}");
        }
        assert!(REGRESSION_GRID.iter().all(|(t, _)| *t >= 1.0));
        assert!(HEALTHY_GRID.iter().all(|(t, _)| *t < 1.0));
        assert!(FLOOR_GRID.iter().all(|(c, _)| *c < 1.0));
        assert!(log_weighted_mixture(&HEALTHY_GRID, &[0.0; 5], 2.0).abs() < 1e-12);
    }

    #[test]
    fn dispersion_shrinks_evidence_per_component() {
        let l = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 20.0];
        let plain = log_mixture(&l, 1.0);
        let damped = log_mixture(&l, 3.0);
        assert!(damped < plain / 3.0 + 1e-12, "per-component ≤ log M / φ");
        assert!(damped >= plain / 3.0 - (7f64).ln() - 1e-12);
        assert_eq!(sanitize_dispersion(f64::NAN), 1.0);
        assert_eq!(sanitize_dispersion(0.5), 1.0);
    }
}
