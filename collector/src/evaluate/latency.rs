//! The latency finding of the judgement (DETECTION.md G, [`bellwether_detect::latency`]).

use bellwether_detect::latency::{latency_test, LatencyRule};
use bellwether_model::health::{Evidence, Verdict};

use crate::evaluate::analysis::{describe_log, finite, AnalysisInput};
use crate::evaluate::settings::ServiceDetection;

pub(super) fn judge_latency(
    input: &AnalysisInput,
    settings: &ServiceDetection,
) -> Option<(Verdict, Evidence)> {
    let baseline = input.baseline.as_ref()?;
    let rule = LatencyRule {
        ratio: settings.latency_min_ratio,
        floor_ms: settings.latency_min_rise.as_secs_f64() * 1_000.0,
        alpha: settings.latency_alpha,
    };
    let test = latency_test(&input.latency_ms, &baseline.latency_ms, &rule)?;
    let shift = (test.baseline_p95_ms > 0.0).then(|| test.p95_ms / test.baseline_p95_ms);
    let summary = format!(
        "p95 latency {:.1} ms vs {:.1} ms on the baseline ({}); {} of {} new requests slower \
         than {:.1} ms (= {} × the baseline p95's upper bound {:.1} ms + {} ms), e-value {} \
         vs threshold {:.0} (2/α, α = {})",
        test.p95_ms,
        test.baseline_p95_ms,
        shift.map_or("n/a".to_owned(), |s| format!("{s:.2}×")),
        test.slow,
        test.samples,
        test.cutoff_ms,
        rule.ratio,
        test.baseline_p95_upper_ms,
        rule.floor_ms,
        describe_log(test.log_e),
        test.log_threshold.exp(),
        rule.alpha,
    );
    let item = Evidence::new(
        if test.regression {
            "latency_regression"
        } else {
            "latency"
        },
        summary,
    )
    .with("p95_ms", test.p95_ms)
    .with("baseline_p95_ms", test.baseline_p95_ms)
    .with("cutoff_ms", test.cutoff_ms)
    .with("shift", shift)
    .with("slow", test.slow)
    .with("log_e_value", finite(test.log_e))
    .with("log_threshold", test.log_threshold)
    .with("samples", test.samples)
    .with("baseline_samples", baseline.latency_ms.len());
    let verdict = if test.regression {
        settings.latency_verdict
    } else {
        Verdict::Healthy
    };
    Some((verdict, item))
}
