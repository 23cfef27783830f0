//! Tests of the judgement of one release.

use super::*;

fn buckets(n: usize, exposure: u64, errors: u64, start: i64) -> Buckets {
    (0..n)
        .map(|i| (start + i as i64 * 10_000, Sample { exposure, errors }))
        .collect()
}

fn settings() -> ServiceDetection {
    let mut s = ServiceDetection::default();
    s.thresholds.min_duration = Duration::from_secs(60);
    s
}

fn input(method: Method, baseline: Option<BaselineInput>, new: Buckets) -> AnalysisInput {
    AnalysisInput {
        elapsed: Duration::from_secs(new.len() as u64 * 10),
        exposure_kind: "log_records",
        method,
        baseline,
        new,
        issues: Vec::new(),
        latency_ms: Vec::new(),
        dependencies: Vec::new(),
        flags: Vec::new(),
    }
}

#[test]
fn concurrent_traffic_uses_case_b_and_cutover_case_a() {
    let base = BaselineInput {
        version: "1".into(),
        before: buckets(360, 1_000, 10, -3_600_000),
        since: buckets(60, 900, 9, 0),
        ..BaselineInput::default()
    };
    let bad = buckets(60, 100, 5, 0); // 5% vs 1%
    let j = judge(
        &input(Method::Concurrent, Some(base.clone()), bad.clone()),
        &settings(),
        &HashMap::new(),
    );
    assert_eq!(j.figures.method, "concurrent");
    assert_eq!(j.verdict, Verdict::Unhealthy);
    assert_eq!(j.figures.baseline.map(|b| b.exposure), Some(54_000));
    assert!(
        j.figures.rate_ratio_lower.is_some_and(|l| l > 1.5),
        "{:?}",
        j.figures
    );

    let j = judge(
        &input(Method::Cutover, Some(base.clone()), bad),
        &settings(),
        &HashMap::new(),
    );
    assert_eq!(j.figures.method, "cutover");
    assert_eq!(j.figures.baseline.map(|b| b.exposure), Some(360_000));
    assert_eq!(j.verdict, Verdict::Unhealthy);

    let good = buckets(60, 1_000, 10, 0);
    let j = judge(
        &input(Method::Cutover, Some(base.clone()), good.clone()),
        &settings(),
        &HashMap::new(),
    );
    assert_eq!(j.verdict, Verdict::Healthy, "{:#?}", j.evidence);
    let j = judge(
        &input(Method::Concurrent, Some(base), good),
        &settings(),
        &HashMap::new(),
    );
    assert_eq!(j.verdict, Verdict::Healthy, "{:#?}", j.evidence);
}

#[test]
fn a_concurrent_baseline_without_traffic_since_falls_back_to_cutover() {
    let base = BaselineInput {
        version: "1".into(),
        before: buckets(360, 1_000, 10, -3_600_000),
        ..BaselineInput::default()
    };
    let j = judge(
        &input(Method::Concurrent, Some(base), buckets(3, 10, 0, 0)),
        &settings(),
        &HashMap::new(),
    );
    assert_eq!(j.figures.method, "cutover");
    assert_eq!(j.verdict, Verdict::Pending);
    assert!(j.figures.exposure_needed.is_some_and(|n| n > 0));
}

#[test]
fn latency_regression_is_degraded_by_default() {
    let base = BaselineInput {
        version: "1".into(),
        before: buckets(360, 1_000, 10, -3_600_000),
        latency_ms: (0..500).map(|i| 50.0 + (i % 100) as f64).collect(),
        ..BaselineInput::default()
    };
    let mut i = input(Method::Cutover, Some(base), buckets(60, 1_000, 10, 0));
    i.latency_ms = (0..500).map(|i| 1.5 * (50.0 + (i % 100) as f64)).collect();
    let j = judge(&i, &settings(), &HashMap::new());
    assert_eq!(j.verdict, Verdict::Degraded);
    assert!(j.evidence.iter().any(|e| e.kind == "latency_regression"));
    let mut strict = settings();
    strict.latency_verdict = Verdict::Unhealthy;
    assert_eq!(
        judge(&i, &strict, &HashMap::new()).verdict,
        Verdict::Unhealthy
    );
}

#[test]
fn ratio_interval_brackets_the_estimate() {
    let (lo, hi) = ratio_interval(
        Sample {
            exposure: 10_000,
            errors: 200,
        },
        Sample {
            exposure: 10_000,
            errors: 100,
        },
        0.01,
    );
    let (lo, hi) = (lo.unwrap_or(f64::NAN), hi.unwrap_or(f64::NAN));
    assert!(lo < 2.0 && lo > 1.0 && hi > 2.0 && hi < 4.0, "{lo} {hi}");
    let (lo, hi) = ratio_interval(
        Sample {
            exposure: 100,
            errors: 3,
        },
        Sample {
            exposure: 100,
            errors: 0,
        },
        0.01,
    );
    assert!(lo.is_some() && hi.is_none());
}

#[test]
fn a_new_signature_seen_twice_holds_healthy_back() {
    use crate::evaluate::signatures::IssueClass;
    let base = BaselineInput {
        version: "1".into(),
        before: buckets(360, 1_000, 10, -3_600_000),
        ..BaselineInput::default()
    };
    let mut i = input(Method::Cutover, Some(base), buckets(60, 1_000, 10, 0));
    assert_eq!(
        judge(&i, &settings(), &HashMap::new()).verdict,
        Verdict::Healthy
    );
    let issue = |count| IssueObservation {
        fingerprint: "f".into(),
        title: "NewError".into(),
        class: IssueClass::New,
        count,
        instances: 1,
        sample: None,
    };
    // Once: a stray error, no hold.
    i.issues = vec![issue(1)];
    assert_eq!(
        judge(&i, &settings(), &HashMap::new()).verdict,
        Verdict::Healthy
    );
    // Four times in 60 000 (not flagged yet: one instance, first round): pending.
    i.issues = vec![issue(4)];
    let j = judge(&i, &settings(), &HashMap::new());
    assert_eq!(j.verdict, Verdict::Pending, "{:#?}", j.evidence);
    assert!(j.evidence.iter().any(|e| e.kind == "new_issue_pending"));
    assert!(j.evidence.iter().all(|e| e.kind != "healthy"));
    assert!(j.figures.log_healthy_e_value < j.figures.log_healthy_threshold);
}

#[test]
fn a_rise_of_the_steady_fingerprint_is_found_under_another_ones_bursts() {
    // Main fingerprint 1 % → 2 %; a noisy one bursting 40 errors every 12th bucket
    // before and after. The whole stream's φ is large; the steady stream's is not.
    let burst = |i: usize| if i % 12 == 5 { 40 } else { 0 };
    let series = |n: usize, start: i64, f: &dyn Fn(usize) -> u64| -> Vec<(i64, u64)> {
        (0..n).map(|i| (start + i as i64 * 10_000, f(i))).collect()
    };
    let with = |n: usize, start: i64, main: u64| -> Buckets {
        (0..n)
            .map(|i| {
                let errors = main + burst(i);
                (
                    start + i as i64 * 10_000,
                    Sample {
                        exposure: 1_000,
                        errors,
                    },
                )
            })
            .collect()
    };
    let base = BaselineInput {
        version: "1".into(),
        before: with(360, -3_600_000, 10),
        fingerprints: vec![
            FingerprintSeries {
                fingerprint: "main".into(),
                before: series(360, -3_600_000, &|_| 10),
                since: Vec::new(),
                new: series(12, 0, &|_| 20),
            },
            FingerprintSeries {
                fingerprint: "noisy".into(),
                before: series(360, -3_600_000, &burst),
                since: Vec::new(),
                new: series(12, 0, &burst),
            },
        ],
        ..BaselineInput::default()
    };
    let i = input(Method::Cutover, Some(base.clone()), with(12, 0, 20));
    let j = judge(&i, &settings(), &HashMap::new());
    assert!(
        matches!(j.verdict, Verdict::Degraded | Verdict::Unhealthy),
        "{:#?}",
        j.evidence
    );
    assert!(j.evidence.iter().any(|e| e.kind == "steady_e_value"));
    // Without the per-fingerprint counts the same data are not enough yet.
    let plain = BaselineInput {
        fingerprints: Vec::new(),
        ..base
    };
    let j = judge(
        &input(Method::Cutover, Some(plain), with(12, 0, 20)),
        &settings(),
        &HashMap::new(),
    );
    assert_eq!(j.verdict, Verdict::Pending, "{:#?}", j.figures);
}

#[test]
fn one_burst_in_one_bucket_is_no_regression_but_a_sustained_rise_is() {
    let base = BaselineInput {
        version: "1".into(),
        before: buckets(30, 100, 1, -300_000),
        ..BaselineInput::default()
    };
    // 10 requests/s at 1 %, and a burst of 40 errors in the first bucket.
    let mut burst = buckets(6, 100, 1, 0);
    burst[0].1.errors = 40;
    let j = judge(
        &input(Method::Cutover, Some(base.clone()), burst),
        &settings(),
        &HashMap::new(),
    );
    assert_eq!(j.verdict, Verdict::Pending, "{:#?}", j.evidence);
    assert!(j.evidence.iter().any(|e| e.kind == "one_bucket"));
    assert!(j.figures.log_e_value < j.figures.log_threshold);
    // The first bucket alone is no regression of the whole stream either.
    let mut first = buckets(1, 100, 1, 0);
    first[0].1.errors = 40;
    let j = judge(
        &input(Method::Cutover, Some(base.clone()), first),
        &settings(),
        &HashMap::new(),
    );
    assert_eq!(j.verdict, Verdict::Pending, "{:#?}", j.evidence);
    let j = judge(
        &input(Method::Cutover, Some(base), buckets(6, 100, 12, 0)),
        &settings(),
        &HashMap::new(),
    );
    assert_eq!(j.verdict, Verdict::Unhealthy, "{:#?}", j.evidence);
}
