//! Case C: a new error signature. A fingerprint never seen in the baseline nor in recent
//! releases is case A for that fingerprint alone with x_b = 0, at a stricter level
//! α′ = 0.001 / min(candidates, 50) (Bonferroni over the candidates looked at).

use super::cutover::{floors_met, CutoverTest};

/// Family-wise level for new signatures before the Bonferroni split.
pub const NEW_SIGNATURE_ALPHA: f64 = 0.001;
/// Cap on the Bonferroni divisor; candidates beyond it are reported as overflow.
pub const MAX_BONFERRONI_DIVISOR: u64 = 50;

/// α′ = 0.001 / min(max(candidates, 1), 50).
pub fn new_signature_alpha(candidates: u64) -> f64 {
    NEW_SIGNATURE_ALPHA / candidates.clamp(1, MAX_BONFERRONI_DIVISOR) as f64
}

/// What one evaluation of one new fingerprint found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewSignature {
    /// ln M of this fingerprint's count against r_b⁺ = ln(2/α′)/E_b.
    pub log_m: f64,
    /// ln(2/α′).
    pub log_threshold: f64,
    /// α′ used.
    pub alpha: f64,
    /// M reached the threshold and the case A floors hold (track this across
    /// evaluations to feed `prior_consecutive`).
    pub crossed: bool,
    /// `crossed`, and seen on ≥ 2 instances or crossed in ≥ 2 consecutive evaluations.
    pub flagged: bool,
    /// Candidates beyond the Bonferroni cap (the guarantee is per 50 candidates).
    pub overflow: u64,
}

/// Evaluates one candidate new fingerprint.
///
/// `errors`/`exposure`: its count and the new release's exposure; `baseline_exposure`:
/// exposure over which it was never seen; `candidates`: new fingerprints evaluated in
/// this round; `instances`: distinct instances that reported it; `prior_consecutive`:
/// how many immediately preceding evaluations had `crossed`. The case A floors
/// (`min_errors`, `min_abs_rise` against a baseline rate of 0) apply as well.
#[allow(clippy::too_many_arguments)] // each is a distinct count the caller already has
pub fn assess_new_signature(
    errors: u64,
    exposure: u64,
    baseline_exposure: u64,
    candidates: u64,
    instances: u64,
    prior_consecutive: u32,
    rho: f64,
    min_errors: u64,
    min_abs_rise: f64,
) -> NewSignature {
    let alpha = new_signature_alpha(candidates);
    let log_threshold = (2.0 / alpha).ln();
    let overflow = candidates.saturating_sub(MAX_BONFERRONI_DIVISOR);
    let test = CutoverTest::new(0, baseline_exposure, rho, alpha, 1.0);
    let log_m = test.map_or(0.0, |t| t.log_m(errors as f64, exposure as f64));
    let crossed = test.is_some()
        && log_m >= log_threshold
        && floors_met(
            errors as f64,
            exposure as f64,
            0.0,
            min_errors,
            min_abs_rise,
        );
    let flagged = crossed && (instances >= 2 || prior_consecutive >= 1);
    NewSignature {
        log_m: if log_m.is_nan() { 0.0 } else { log_m },
        log_threshold,
        alpha,
        crossed,
        flagged,
        overflow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bonferroni_split_is_capped() {
        assert_eq!(new_signature_alpha(0), 0.001);
        assert_eq!(new_signature_alpha(1), 0.001);
        assert!((new_signature_alpha(10) - 1e-4).abs() < 1e-18);
        assert!((new_signature_alpha(1_000) - 2e-5).abs() < 1e-18);
    }

    #[test]
    fn null_rate_is_the_zero_count_bound() {
        let s = assess_new_signature(0, 1_000, 10_000, 1, 1, 0, 1.5, 5, 0.001);
        assert!((s.log_threshold - 2_000f64.ln()).abs() < 1e-12);
        assert!(!s.crossed && !s.flagged);
    }

    #[test]
    fn needs_two_instances_or_two_evaluations() {
        // 20 occurrences in 1 000 requests, never seen in 100 000 baseline requests.
        let one = assess_new_signature(20, 1_000, 100_000, 3, 1, 0, 1.5, 5, 0.001);
        assert!(one.crossed && !one.flagged);
        let again = assess_new_signature(20, 1_000, 100_000, 3, 1, 1, 1.5, 5, 0.001);
        assert!(again.flagged);
        let spread = assess_new_signature(20, 1_000, 100_000, 3, 2, 0, 1.5, 5, 0.001);
        assert!(spread.flagged);
        let many = assess_new_signature(20, 1_000, 100_000, 80, 2, 0, 1.5, 5, 0.001);
        assert_eq!(many.overflow, 30);
    }

    #[test]
    fn no_baseline_exposure_means_no_claim() {
        let s = assess_new_signature(u64::MAX, u64::MAX, 0, u64::MAX, 9, 9, 1.5, 5, 0.001);
        assert!(!s.crossed && !s.flagged && s.log_m == 0.0);
    }
}
