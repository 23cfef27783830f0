//! Latency regression: a one-sided Mann–Whitney rank test that the new release's span
//! durations tend to be larger than the baseline's (normal approximation with tie
//! correction), reported with the shift of the 95th percentile.

use crate::detect::special::normal_cdf;

/// Fewest durations per side before the test says anything.
pub const MIN_SAMPLES: usize = 20;

/// Outcome of the rank test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankTest {
    /// U statistic of the new sample (pairs where new > baseline, ties count half).
    pub u: f64,
    /// Standardised U (continuity-corrected); positive when new is slower.
    pub z: f64,
    /// One-sided p-value for "new is stochastically larger".
    pub p_value: f64,
}

/// Mann–Whitney U test, one-sided (alternative: `new` larger than `baseline`). None when
/// either side has fewer than [`MIN_SAMPLES`] finite values or every value is tied.
pub fn mann_whitney_greater(new: &[f64], baseline: &[f64]) -> Option<RankTest> {
    let new: Vec<f64> = new.iter().copied().filter(|v| v.is_finite()).collect();
    let base: Vec<f64> = baseline.iter().copied().filter(|v| v.is_finite()).collect();
    let (n1, n2) = (new.len(), base.len());
    if n1 < MIN_SAMPLES || n2 < MIN_SAMPLES {
        return None;
    }
    // Pool, sort, and give tied values their average rank.
    let mut pooled: Vec<(f64, bool)> = new
        .iter()
        .map(|&v| (v, true))
        .chain(base.iter().map(|&v| (v, false)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = pooled.len();
    let mut rank_sum_new = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && pooled[j].0 == pooled[i].0 {
            j += 1;
        }
        let t = (j - i) as f64;
        // Ranks i+1 ..= j, average (i + 1 + j) / 2.
        let average = (i + 1 + j) as f64 / 2.0;
        rank_sum_new += average * pooled[i..j].iter().filter(|(_, is_new)| *is_new).count() as f64;
        tie_term += t * t * t - t;
        i = j;
    }
    let (n1f, n2f, nf) = (n1 as f64, n2 as f64, n as f64);
    let u = rank_sum_new - n1f * (n1f + 1.0) / 2.0;
    let mean = n1f * n2f / 2.0;
    let variance = n1f * n2f / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)));
    if variance.is_nan() || variance <= 0.0 {
        return None;
    }
    let z = (u - mean - 0.5) / variance.sqrt();
    Some(RankTest {
        u,
        z,
        p_value: 1.0 - normal_cdf(z),
    })
}

/// The q-quantile (0 ≤ q ≤ 1) by linear interpolation between order statistics; None
/// for an empty sample.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let position = q * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    let fraction = position - low as f64;
    Some(sorted[low] + (sorted[high] - sorted[low]) * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_hand_computed_case_with_ties() {
        // new: 20 values 2..=21, baseline: 20 values 1..=20. Ties at 2..=20.
        let new: Vec<f64> = (2..=21).map(f64::from).collect();
        let base: Vec<f64> = (1..=20).map(f64::from).collect();
        let t = mann_whitney_greater(&new, &base).unwrap();
        // U = Σ over new of (#base below + ½ #base equal): for v in 2..=20: (v−1) + ½, for 21: 20.
        let expected_u: f64 = (2..=20).map(|v| (v - 1) as f64 + 0.5).sum::<f64>() + 20.0;
        assert!((t.u - expected_u).abs() < 1e-9, "{} vs {expected_u}", t.u);
        // A shift of one in 20 is far from significant.
        assert!(t.p_value > 0.2 && t.p_value < 0.5, "{}", t.p_value);
    }

    #[test]
    fn detects_a_shift_and_not_its_opposite() {
        let base: Vec<f64> = (0..200).map(|i| 100.0 + (i % 50) as f64).collect();
        let slow: Vec<f64> = base.iter().map(|v| v * 1.3).collect();
        let up = mann_whitney_greater(&slow, &base).unwrap();
        assert!(up.p_value < 1e-6 && up.z > 0.0);
        let down = mann_whitney_greater(&base, &slow).unwrap();
        assert!(down.p_value > 0.99);
        let same = mann_whitney_greater(&base, &base).unwrap();
        assert!(same.p_value > 0.4 && same.p_value < 0.6, "{}", same.p_value);
    }

    #[test]
    fn small_or_degenerate_samples_say_nothing() {
        assert!(mann_whitney_greater(&[1.0; 5], &[2.0; 100]).is_none());
        assert!(
            mann_whitney_greater(&[1.0; 30], &[1.0; 30]).is_none(),
            "all tied"
        );
        assert!(mann_whitney_greater(&[f64::NAN; 30], &[1.0; 30]).is_none());
    }

    #[test]
    fn quantiles() {
        let v: Vec<f64> = (1..=101).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.95), Some(96.0));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[3.0, 1.0], 0.5), Some(2.0));
    }
}
