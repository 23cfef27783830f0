//! Tests of the public verdict API.

use std::time::Duration;

use super::*;

fn s(exposure: u64, errors: u64) -> Sample {
    Sample { exposure, errors }
}

fn kinds(a: &Assessment) -> Vec<&str> {
    a.evidence.iter().map(|e| e.kind.as_str()).collect()
}

const TEN_MIN: Duration = Duration::from_secs(600);

/// A baseline window of 360 buckets holding `exposure` and `errors` between them, as
/// evenly as integers allow.
fn hour(exposure: u64, errors: u64) -> Vec<Sample> {
    let n = 360;
    (0..n)
        .map(|i| {
            s(
                exposure * (i + 1) / n - exposure * i / n,
                errors * (i + 1) / n - errors * i / n,
            )
        })
        .collect()
}

#[test]
fn defaults_are_the_documented_ones() {
    let t = Thresholds::default();
    assert_eq!(
        (t.rho, t.alpha, t.min_errors, t.min_abs_rise),
        (1.5, 0.01, 5, 0.001)
    );
    assert_eq!(t.min_duration, Duration::from_secs(300));
    assert_eq!((t.severe_ratio, t.severe_abs_rise), (3.0, 0.01));
    assert_eq!(VerdictKind::Unhealthy.as_str(), "unhealthy");
}

#[test]
fn severe_spike_is_unhealthy_with_full_evidence() {
    let a = assess_cutover(
        &hour(100_000, 1_000),
        s(5_000, 250),
        TEN_MIN,
        &Thresholds::default(),
    );
    assert_eq!(a.verdict, VerdictKind::Unhealthy);
    assert!(a.log_m >= a.log_threshold);
    assert!((a.log_threshold - 100f64.ln()).abs() < 1e-12);
    for k in ["baseline", "new", "ratio", "e_value", "regression"] {
        assert!(kinds(&a).contains(&k), "missing {k}: {:?}", a.evidence);
    }
    let text = format!("{:?}", a.evidence);
    assert!(text.contains("1000 errors / 100000") && text.contains("250 errors / 5000"));
    assert!(text.contains("5.00×"), "{text}");
    assert_eq!(a.more_exposure_needed, None);
}

#[test]
fn significant_small_rise_is_degraded() {
    // 0.2% → 0.5%: 2.5×, +0.3 points: significant, below both severity bars.
    let a = assess_cutover(
        &hour(1_000_000, 2_000),
        s(100_000, 500),
        TEN_MIN,
        &Thresholds::default(),
    );
    assert_eq!(a.verdict, VerdictKind::Degraded, "{:?}", a.evidence);
    // The same counts with +1 point are unhealthy.
    let b = assess_cutover(
        &hour(1_000_000, 2_000),
        s(100_000, 1_300),
        TEN_MIN,
        &Thresholds::default(),
    );
    assert_eq!(b.verdict, VerdictKind::Unhealthy);
}

#[test]
fn floors_block_tiny_absolute_rises() {
    // 0.001% → 0.05% is 50×, hugely significant, but +0.049 points < 0.1.
    let a = assess_cutover(
        &hour(10_000_000, 100),
        s(1_000_000, 500),
        TEN_MIN,
        &Thresholds::default(),
    );
    assert!(a.log_m >= a.log_threshold);
    assert_ne!(a.verdict, VerdictKind::Degraded);
    assert_ne!(a.verdict, VerdictKind::Unhealthy);
    assert!(kinds(&a).contains(&"floors"));
}

#[test]
fn clean_release_goes_from_pending_to_healthy() {
    let t = Thresholds::default();
    let baseline = &hour(100_000, 1_000);
    let early = assess_cutover(baseline, s(200, 2), Duration::from_secs(20), &t);
    assert_eq!(early.verdict, VerdictKind::Pending);
    let needed = early.more_exposure_needed.unwrap();
    let decidable = early.decidable_exposure.unwrap();
    assert!(
        needed > 0 && needed + 200 >= decidable,
        "{needed} {decidable}"
    );
    assert!(early.log_healthy < early.log_healthy_threshold);
    assert!(early.more_time_needed.unwrap() >= Duration::from_secs(280));
    assert!(kinds(&early).contains(&"needed"));

    let enough = decidable + 1;
    let soon = assess_cutover(
        baseline,
        s(enough, enough / 100),
        Duration::from_secs(60),
        &t,
    );
    assert_eq!(soon.verdict, VerdictKind::Pending, "minimum duration first");
    assert_eq!(soon.more_exposure_needed, Some(0));
    assert_eq!(soon.more_time_needed, Some(Duration::from_secs(240)));

    let later = assess_cutover(baseline, s(enough, enough / 100), TEN_MIN, &t);
    assert_eq!(later.verdict, VerdictKind::Healthy, "{:?}", later.evidence);
    assert!(kinds(&later).contains(&"healthy"));
    assert!(later.log_m < later.log_threshold);
    assert!(later.log_healthy >= later.log_healthy_threshold);
}

#[test]
fn a_release_at_twice_the_rate_is_never_healthy() {
    // 1 % → 2 %, however long it is watched: a regression, never healthy.
    let t = Thresholds::default();
    let baseline = &hour(30_000, 300);
    for e in [1_000u64, 5_000, 30_000, 300_000] {
        let a = assess_cutover(baseline, s(e, e / 50), TEN_MIN, &t);
        assert_ne!(a.verdict, VerdictKind::Healthy, "{e}: {:?}", a.evidence);
    }
    let a = assess_cutover(baseline, s(300_000, 6_000), TEN_MIN, &t);
    assert_eq!(a.verdict, VerdictKind::Unhealthy, "+1 point is severe");
}

#[test]
fn a_release_at_the_tolerance_stays_pending_and_says_so() {
    let t = Thresholds::default();
    let a = assess_cutover(&hour(1_000_000, 10_000), s(100_000, 1_500), TEN_MIN, &t);
    assert_eq!(a.verdict, VerdictKind::Pending, "{:?}", a.evidence);
    let needed = a.evidence.iter().find(|e| e.kind == "needed").unwrap();
    assert!(
        needed.summary.contains("cannot be shown healthy") || needed.summary.contains("tolerance"),
        "{needed:?}"
    );
}

#[test]
fn rising_rate_reports_the_trend() {
    // 4% against a 1% baseline, not yet enough to confirm.
    let a = assess_cutover(
        &hour(100_000, 1_000),
        s(150, 6),
        Duration::from_secs(15),
        &Thresholds::default(),
    );
    assert_eq!(a.verdict, VerdictKind::Pending);
    assert!(kinds(&a).contains(&"trend"), "{:?}", a.evidence);
    assert!(a.more_exposure_needed.is_some_and(|n| n > 0));
    assert_eq!(a.decidable_exposure, None, "4 % cannot be shown healthy");
}

#[test]
fn no_baseline_is_pending_then_healthy_by_default() {
    let t = Thresholds::default();
    for baseline in [vec![], vec![s(0, 0)], vec![s(0, 17)]] {
        let baseline = &baseline[..];
        let early = assess_cutover(baseline, s(50, 40), Duration::from_secs(30), &t);
        assert_eq!(early.verdict, VerdictKind::Pending);
        assert_eq!(early.more_exposure_needed, Some(50));
        let later = assess_cutover(baseline, s(500, 400), TEN_MIN, &t);
        assert_eq!(later.verdict, VerdictKind::Healthy);
        assert!(later.evidence[0].summary.contains("no baseline"));
    }
}

#[test]
fn no_new_exposure_is_pending() {
    let a = assess_cutover(&hour(1_000, 10), s(0, 50), TEN_MIN, &Thresholds::default());
    assert_eq!(a.verdict, VerdictKind::Pending);
    assert_eq!(a.log_m, 0.0);
    assert!(a.new_rate.is_none() && a.rate_ratio.is_none());
}

#[test]
fn dispersion_damps_a_borderline_alarm() {
    // 1% → 2.6%: clear with Poisson noise, not with φ = 4.
    let (b, n) = (&hour(100_000, 1_000), s(10_000, 260));
    let t = Thresholds::default();
    let plain = assess_cutover(b, n, TEN_MIN, &t);
    assert_eq!(plain.verdict, VerdictKind::Unhealthy);
    let damped = assess_cutover_with_dispersion(b, n, TEN_MIN, &t, 4.0);
    assert!(damped.log_m < damped.log_threshold);
    assert!(matches!(
        damped.verdict,
        VerdictKind::Pending | VerdictKind::Healthy
    ));
    assert!(damped
        .evidence
        .iter()
        .any(|e| e.summary.contains("φ = 4.00")));
}

#[test]
fn any_inputs_are_safe() {
    let values = [0, 1, 5, 1_000, 1 << 40, u64::MAX];
    let broken = Thresholds {
        rho: f64::NAN,
        alpha: 2.0,
        min_abs_rise: f64::INFINITY,
        severe_ratio: -1.0,
        severe_abs_rise: f64::NAN,
        beta: 1.0,
        min_duration: Duration::MAX,
        ..Thresholds::default()
    };
    let settings = [
        (Thresholds::default(), Duration::ZERO, 1.0),
        (Thresholds::default(), Duration::MAX, f64::NAN),
        (broken.clone(), TEN_MIN, 7.5),
        (broken, Duration::MAX, 1.0),
    ];
    for (t, elapsed, phi) in &settings {
        for &be in &values {
            for &bx in &values {
                for &ne in &values {
                    for &nx in &values {
                        let base = [s(be / 2, bx / 2), s(be - be / 2, bx - bx / 2)];
                        let a = assess_cutover_with_dispersion(&base, s(ne, nx), *elapsed, t, *phi);
                        check_finite(&a);
                    }
                }
            }
        }
    }
}

fn check_finite(a: &Assessment) {
    assert!(a.log_m.is_finite() && a.log_threshold.is_finite(), "{a:?}");
    assert!(
        a.log_healthy.is_finite() && a.log_healthy_threshold.is_finite(),
        "{a:?}"
    );
    for v in [a.baseline_rate, a.new_rate, a.rate_ratio]
        .into_iter()
        .flatten()
    {
        assert!(v.is_finite(), "{a:?}");
    }
    assert!(a.evidence.len() >= 3, "{a:?}");
    if a.verdict == VerdictKind::Pending {
        assert!(a.evidence.iter().any(|e| e.kind == "needed"), "{a:?}");
    }
}
