//! Tests of the steady stream: which fingerprints form it, and how it folds into the
//! verdict.

use super::*;
use bellwether_model::health::Figures;

fn totals(n: usize, exposure: u64, errors: impl Fn(usize) -> u64, start: i64) -> Buckets {
    (0..n)
        .map(|i| {
            (
                start + i as i64 * 10_000,
                Sample {
                    exposure,
                    errors: errors(i),
                },
            )
        })
        .collect()
}

fn counts(n: usize, count: impl Fn(usize) -> u64, start: i64) -> Vec<(i64, u64)> {
    (0..n)
        .map(|i| (start + i as i64 * 10_000, count(i)))
        .filter(|(_, c)| *c > 0)
        .collect()
}

/// A main fingerprint at 10 errors a bucket and a noisy one bursting 30 at once every
/// tenth bucket, 60 buckets before the deploy and `n` after.
fn release(n: usize, main_after: u64) -> (Vec<FingerprintSeries>, Buckets, Buckets) {
    let burst = |i: usize| if i % 10 == 3 { 30 } else { 0 };
    let before = totals(60, 1_000, |i| 10 + burst(i), -600_000);
    let new = totals(n, 1_000, |i| main_after + burst(i), 0);
    let series = vec![
        FingerprintSeries {
            fingerprint: "main".into(),
            before: counts(60, |_| 10, -600_000),
            since: Vec::new(),
            new: counts(n, |_| main_after, 0),
        },
        FingerprintSeries {
            fingerprint: "noisy".into(),
            before: counts(60, burst, -600_000),
            since: Vec::new(),
            new: counts(n, burst, 0),
        },
    ];
    (series, before, new)
}

#[test]
fn bursty_and_rare_fingerprints_stay_out_of_the_steady_stream() {
    let (series, before, new) = release(6, 10);
    let s = steady_stream(&series, &before, &Vec::new(), &new).expect("main is steady");
    assert_eq!(s.fingerprints, vec!["main".to_owned()]);
    assert_eq!(total(&s.before).errors, 600);
    assert_eq!(total(&s.new).errors, 60);
    assert_eq!(
        total(&s.new).exposure,
        6_000,
        "exposure is the whole stream's"
    );
    // A fingerprint with too few errors is not steady; without steady ones, no stream.
    let rare = vec![FingerprintSeries {
        fingerprint: "rare".into(),
        before: counts(60, |i| u64::from(i % 20 == 0), -600_000),
        ..FingerprintSeries::default()
    }];
    assert_eq!(steady_stream(&rare, &before, &Vec::new(), &new), None);
    // When the steady fingerprints are all the errors, the whole stream is the test.
    let only_main = vec![series[0].clone()];
    let plain = totals(60, 1_000, |_| 10, -600_000);
    let plain_new = totals(6, 1_000, |_| 10, 0);
    assert_eq!(
        steady_stream(&only_main, &plain, &Vec::new(), &plain_new),
        None
    );
}

#[test]
fn steady_counts_never_exceed_the_buckets_errors() {
    let before = totals(30, 1_000, |_| 5, 0);
    let doubled = [
        FingerprintSeries {
            fingerprint: "a".into(),
            before: counts(30, |_| 5, 0),
            ..FingerprintSeries::default()
        },
        FingerprintSeries {
            fingerprint: "b".into(),
            before: counts(30, |_| 5, 0),
            ..FingerprintSeries::default()
        },
    ];
    let r = restrict(&before, doubled.iter().map(|f| &f.before[..]));
    assert!(r.iter().all(|(_, s)| s.errors == 5));
}

#[test]
fn a_steady_rise_under_bursts_is_a_regression_and_an_unchanged_release_is_not() {
    let t = Thresholds::default();
    let mut figures = Figures::default();
    let mut evidence = Vec::new();
    let (series, before, new) = release(30, 20);
    let s = steady_stream(&series, &before, &Vec::new(), &new).unwrap();
    let finding = steady_finding(&s, false, t.rho);
    assert!(finding.log_m > 100f64.ln(), "{finding:?}");
    assert!(
        finding.dispersion < 1.5,
        "bursts do not damp it: {finding:?}"
    );
    let v = fold_steady(
        Verdict::Pending,
        &s,
        &finding,
        &t,
        &mut figures,
        &mut evidence,
    );
    assert_eq!(v, Verdict::Unhealthy, "2×, a rise of 1 point: severe");
    assert!(figures.log_e_value >= (1.0 / t.alpha).ln());
    assert!(evidence.iter().any(|e| e.kind == "steady_e_value"));

    let (series, before, new) = release(30, 10);
    let s = steady_stream(&series, &before, &Vec::new(), &new).unwrap();
    let finding = steady_finding(&s, false, t.rho);
    assert!(finding.log_m < 0.0, "{finding:?}");
    let mut figures = Figures::default();
    let v = fold_steady(
        Verdict::Healthy,
        &s,
        &finding,
        &t,
        &mut figures,
        &mut Vec::new(),
    );
    assert_eq!(v, Verdict::Healthy);
    assert!(figures.log_e_value < 100f64.ln());
}

#[test]
fn the_average_keeps_the_whole_streams_alarm() {
    // The whole stream alone at 1/((1 − W)·α) is still a crossing of the average.
    let t = Thresholds::default();
    let (series, before, new) = release(6, 10);
    let s = steady_stream(&series, &before, &Vec::new(), &new).unwrap();
    let finding = SteadyFinding {
        log_m: f64::NEG_INFINITY,
        ..steady_finding(&s, false, t.rho)
    };
    let mut figures = Figures {
        log_e_value: (1.0 / (t.alpha * (1.0 - STEADY_WEIGHT))).ln(),
        ..Figures::default()
    };
    let v = fold_steady(
        Verdict::Degraded,
        &s,
        &finding,
        &t,
        &mut figures,
        &mut Vec::new(),
    );
    assert_eq!(v, Verdict::Degraded);
    assert!((figures.log_e_value - (1.0 / t.alpha).ln()).abs() < 1e-9);
}

#[test]
fn concurrent_steady_stream_is_paired_by_bucket() {
    let t = Thresholds::default();
    let burst = |i: usize| if i % 10 == 3 { 30 } else { 0 };
    let before = totals(60, 1_000, |i| 10 + burst(i), -600_000);
    let since = totals(30, 900, |i| 9 + burst(i), 0);
    let new = totals(30, 100, |_| 3, 0);
    let series = vec![
        FingerprintSeries {
            fingerprint: "main".into(),
            before: counts(60, |_| 10, -600_000),
            since: counts(30, |_| 9, 0),
            new: counts(30, |_| 3, 0),
        },
        FingerprintSeries {
            fingerprint: "noisy".into(),
            before: counts(60, burst, -600_000),
            since: counts(30, burst, 0),
            new: Vec::new(),
        },
    ];
    let s = steady_stream(&series, &before, &since, &new).unwrap();
    let finding = steady_finding(&s, true, t.rho);
    assert_eq!(finding.baseline.errors, 270);
    assert!(finding.log_m > 100f64.ln(), "3× in a canary: {finding:?}");
}
