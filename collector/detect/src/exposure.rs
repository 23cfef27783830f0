//! Case E, "how much more is needed" for a pending release: the further exposure at
//! which a test would decide if the error rate stays as observed. Both tests (the
//! regression and the healthy one) have closed forms in the counts, so the answer is a
//! bracketing search and a bisection on "would it have decided by then?".

/// Exposure beyond which the planner gives up (the answer is then "not at this rate").
const MAX_EXPOSURE: f64 = 1e13;

/// Smallest further exposure Δ ≥ 0 with `decided(Δ)`, to within 0.1 %, searching up
/// from `start` (a scale hint, such as the exposure so far). The statistics grow
/// linearly in Δ once the rate is fixed, so once decided they stay decided and
/// bisection finds the boundary. None when it is not decided by [`MAX_EXPOSURE`].
pub fn exposure_until(decided: impl Fn(f64) -> bool, start: f64) -> Option<f64> {
    if decided(0.0) {
        return Some(0.0);
    }
    let mut lo = 0.0;
    let mut hi = if start.is_finite() && start >= 1.0 {
        start
    } else {
        1.0
    };
    while !decided(hi) {
        lo = hi;
        hi *= 2.0;
        if hi > MAX_EXPOSURE {
            return None;
        }
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if decided(mid) {
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

    #[test]
    fn finds_the_boundary_of_a_monotone_decision() {
        let at = exposure_until(|d| d >= 12_345.0, 100.0).unwrap();
        assert!((12_345.0..12_345.0 * 1.001 + 1.0).contains(&at), "{at}");
        assert_eq!(exposure_until(|_| true, 100.0), Some(0.0));
        assert_eq!(exposure_until(|_| false, 100.0), None);
        assert!(exposure_until(|d| d > 3.0, f64::NAN).is_some());
    }
}
