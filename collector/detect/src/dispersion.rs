//! Case D: data burstier than Poisson. Retry storms and single bad users make error
//! counts over-dispersed; a Poisson bound then promises more than it keeps. The
//! dispersion φ = variance / mean of the baseline's per-bucket counts (floor 1) is used
//! twice: it damps the evidence (see [`super::mixture::log_mixture`]), and it widens the
//! baseline's upper bound (see [`super::cutover::pessimistic_rate`]): bursty baseline
//! counts make r_b⁺ too tight as well, and the simulation shows that damping alone
//! leaves the false-alarm rate above α when φ is large.

use super::special::gamma_quantile;
use super::verdict::Sample;

/// φ = sample variance / mean of per-bucket error counts, at least 1. Fewer than two
/// buckets or no errors give 1 (nothing to estimate from).
pub fn dispersion(counts: &[u64]) -> f64 {
    if counts.len() < 2 {
        return 1.0;
    }
    let n = counts.len() as f64;
    let mean = counts.iter().map(|&c| c as f64).sum::<f64>() / n;
    if !(mean > 0.0 && mean.is_finite()) {
        return 1.0;
    }
    let var = counts
        .iter()
        .map(|&c| (c as f64 - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    finite_floor_one(var / mean)
}

/// φ from buckets of unequal exposure: Pearson's χ² / (n − 1) against the pooled rate,
/// so that traffic swings between buckets are not mistaken for over-dispersion. Equals
/// [`dispersion`] when every bucket has the same exposure. Buckets without exposure
/// are skipped.
pub fn dispersion_with_exposure(buckets: &[Sample]) -> f64 {
    pearson(buckets).map_or(1.0, |(chi2, df)| finite_floor_one(chi2 / df))
}

/// Pearson's χ² of the buckets against their pooled rate, and its degrees of freedom;
/// None with fewer than two buckets with exposure, or no errors.
fn pearson(buckets: &[Sample]) -> Option<(f64, f64)> {
    let used: Vec<&Sample> = buckets.iter().filter(|b| b.exposure > 0).collect();
    if used.len() < 2 {
        return None;
    }
    let exposure: f64 = used.iter().map(|b| b.exposure as f64).sum();
    let errors: f64 = used.iter().map(|b| b.errors as f64).sum();
    let rate = errors / exposure;
    if !(rate > 0.0 && rate.is_finite()) {
        return None;
    }
    let chi2: f64 = used
        .iter()
        .map(|b| {
            let expected = rate * b.exposure as f64;
            (b.errors as f64 - expected).powi(2) / expected
        })
        .sum();
    Some((chi2, used.len() as f64 - 1.0))
}

/// One-sided tail of the upper confidence bound [`dispersion_upper`] puts on φ.
pub const DISPERSION_TAIL: f64 = 0.1;

/// An upper (1 − [`DISPERSION_TAIL`]) confidence bound of φ from the same buckets:
/// X²/χ²_tail(n − 1) with X² Pearson's statistic, at least 1 (counts steadier than
/// Poisson give 1, as they should). A short baseline may not have seen the bursts
/// the process makes (30 buckets of a 5-minute window often hold none), and a φ̂ of 1
/// from it then promises too much; the bound widens with fewer buckets (×1.3 for 30,
/// ×1.1 for 360) and is what the tests use.
pub fn dispersion_upper(buckets: &[Sample]) -> f64 {
    let Some((observed, df)) = pearson(buckets) else {
        return 1.0;
    };
    let quantile = 2.0 * gamma_quantile(DISPERSION_TAIL, df / 2.0);
    if !(quantile > 0.0 && quantile.is_finite()) {
        return 1.0;
    }
    finite_floor_one(observed / quantile)
}

fn finite_floor_one(phi: f64) -> f64 {
    if phi.is_finite() && phi > 1.0 {
        phi
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variance_over_mean() {
        assert_eq!(dispersion(&[]), 1.0);
        assert_eq!(dispersion(&[7]), 1.0);
        assert_eq!(dispersion(&[0, 0, 0]), 1.0);
        assert_eq!(
            dispersion(&[5, 5, 5, 5]),
            1.0,
            "under-dispersed floors at 1"
        );
        // mean 5, sample variance 100/3 → φ = 20/3
        let phi = dispersion(&[0, 10, 0, 10]);
        assert!((phi - 20.0 / 3.0).abs() < 1e-12);
        assert!(dispersion(&[u64::MAX, 0]).is_finite());
    }

    #[test]
    fn the_upper_bound_widens_with_fewer_buckets() {
        let calm = |n: usize| -> Vec<Sample> {
            (0..n)
                .map(|i| Sample {
                    exposure: 1_000,
                    errors: 10 + 4 * (i % 3) as u64,
                })
                .collect()
        };
        let (short, long) = (dispersion_upper(&calm(30)), dispersion_upper(&calm(360)));
        assert!(short > long && long >= 1.0, "{short} {long}");
        assert!(short > 1.0);
        assert_eq!(dispersion_upper(&calm(1)), 1.0);
        let steady: Vec<Sample> = (0..30)
            .map(|_| Sample {
                exposure: 1_000,
                errors: 10,
            })
            .collect();
        assert_eq!(dispersion_upper(&steady), 1.0, "steadier than Poisson");
    }

    #[test]
    fn exposure_weighted_version_ignores_traffic_swings() {
        let steady: Vec<Sample> = [100u64, 400, 200, 800]
            .iter()
            .map(|&e| Sample {
                exposure: e,
                errors: e / 100,
            })
            .collect();
        assert_eq!(dispersion_with_exposure(&steady), 1.0);
        let counts: Vec<u64> = steady.iter().map(|s| s.errors).collect();
        assert!(
            dispersion(&counts) > 1.0,
            "raw counts mistake traffic for noise"
        );
        let same: Vec<Sample> = [0u64, 10, 0, 10]
            .iter()
            .map(|&x| Sample {
                exposure: 1_000,
                errors: x,
            })
            .collect();
        assert!((dispersion_with_exposure(&same) - 20.0 / 3.0).abs() < 1e-12);
    }
}
