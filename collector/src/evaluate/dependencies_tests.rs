use super::*;
use bellwether_detect::verdict::Thresholds;

/// `buckets` baseline buckets of `calls` calls each, one error every `error_every`
/// buckets.
fn steady(buckets: usize, calls: u64, error_every: usize) -> Vec<Sample> {
    (0..buckets)
        .map(|i| Sample {
            exposure: calls,
            errors: u64::from(i % error_every == 0),
        })
        .collect()
}

fn dependency(name: &str, baseline: Vec<Sample>, calls: u64, errors: u64) -> DependencyInput {
    DependencyInput {
        name: name.to_owned(),
        baseline,
        new: Sample {
            exposure: calls,
            errors,
        },
        ..DependencyInput::default()
    }
}

#[test]
fn the_failing_dependency_is_named_and_the_healthy_one_is_not() {
    // 0.2 % failing calls before the deploy on both; then payments-api fails 8 %.
    let inputs = [
        dependency("payments-api", steady(60, 100, 5), 4_000, 320),
        dependency("postgresql/orders", steady(60, 100, 5), 4_000, 8),
    ];
    let (figures, evidence) = judge_dependencies(&inputs, &ServiceDetection::default());
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    assert_eq!(evidence[0].kind, "dependency_regression");
    assert!(
        evidence[0]
            .summary
            .starts_with("calls to payments-api: errors 8.000% vs 0.200%"),
        "{}",
        evidence[0].summary
    );
    assert!(
        figures[0].regression && !figures[1].regression,
        "{figures:?}"
    );
    assert_eq!((figures[0].calls, figures[0].errors), (4_000, 320));
    assert_eq!(
        (figures[0].baseline_calls, figures[0].baseline_errors),
        (6_000, 12)
    );
    // Two dependencies compared: the threshold is 2/α.
    let threshold = figures[0].log_threshold.expect("compared");
    assert!(
        (threshold - (2.0f64 / 0.01).ln()).abs() < 1e-9,
        "{threshold}"
    );
}

#[test]
fn an_unchanged_rate_and_a_dependency_new_to_the_release_are_not_regressions() {
    let inputs = [
        dependency("payments-api", steady(60, 100, 5), 4_000, 9),
        // The baseline never called it: nothing to compare, no verdict on it.
        dependency("fraud-check", Vec::new(), 500, 40),
    ];
    let (figures, evidence) = judge_dependencies(&inputs, &ServiceDetection::default());
    assert!(evidence.is_empty(), "{evidence:?}");
    assert!(figures.iter().all(|f| !f.regression), "{figures:?}");
    assert_eq!(figures[1].log_e_value, None);
    assert_eq!(figures[1].baseline_calls, 0);
}

#[test]
fn a_rise_below_the_errors_floor_is_not_a_regression() {
    // 0 errors in 6 000 baseline calls, then 3 failing of 100: over ρ, under min_errors.
    let quiet: Vec<Sample> = (0..60)
        .map(|_| Sample {
            exposure: 100,
            errors: 0,
        })
        .collect();
    let inputs = [dependency("cache:6379", quiet, 100, 3)];
    let settings = ServiceDetection {
        thresholds: Thresholds {
            min_errors: 5,
            ..Thresholds::default()
        },
        ..ServiceDetection::default()
    };
    let (figures, evidence) = judge_dependencies(&inputs, &settings);
    assert!(evidence.is_empty(), "{evidence:?}");
    assert!(!figures[0].regression);
}

/// `calls` durations around `ms` (spread over the bucket and its two neighbours).
fn durations_around(ms: f64, calls: u64) -> [u64; DURATION_BUCKETS] {
    let mut out = [0u64; DURATION_BUCKETS];
    let i = bellwether_model::dependency::duration_bucket(ms);
    out[i - 1] = calls / 4;
    out[i] = calls / 2;
    out[i + 1] = calls / 4;
    out
}

#[test]
fn slower_calls_to_one_dependency_are_a_latency_finding() {
    let mut slow = dependency("payments-api", steady(60, 100, 5), 4_000, 8);
    slow.baseline_durations = durations_around(40.0, 6_000);
    slow.new_durations = durations_around(160.0, 4_000);
    let mut same = dependency("postgresql/orders", steady(60, 100, 5), 4_000, 8);
    same.baseline_durations = durations_around(3.0, 6_000);
    same.new_durations = durations_around(3.0, 4_000);
    let (figures, evidence) = judge_dependencies(&[slow, same], &ServiceDetection::default());
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    assert_eq!(evidence[0].kind, "dependency_latency_regression");
    assert!(
        evidence[0]
            .summary
            .starts_with("calls to payments-api: p95"),
        "{}",
        evidence[0].summary
    );
    assert!(figures[0].latency_regression && !figures[1].latency_regression);
    assert!(!figures[0].regression, "no error finding");
    let (p95, base) = (
        figures[0].p95_ms.unwrap_or(0.0),
        figures[0].baseline_p95_ms.unwrap_or(0.0),
    );
    assert!(p95 > 3.0 * base, "{p95} vs {base}");
}
