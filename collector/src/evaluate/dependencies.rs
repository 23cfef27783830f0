//! Which dependency a release broke: each dependency's error rate (calls made by client
//! and producer spans) against the baseline's calls to the same dependency, with the
//! same always-valid two-sample test as the whole stream, at α divided by the number of
//! dependencies tested.
//!
//! The baseline's calls are those of its window before the deploy for a cut-over, and
//! its calls since the deploy while it serves concurrently (a canary): then a dependency
//! that fails for every release at once fails for both sides and is not blamed on the
//! new one. A cut-over has no concurrent calls to compare with, so a dependency that
//! goes down right at the deploy shows as the new release's.

use std::collections::BTreeMap;
use std::ops::Range;

use bellwether_detect::cutover::floors_met;
use bellwether_detect::dispersion_upper;
use bellwether_detect::evidence::{percent, rate};
use bellwether_detect::latency::{latency_test, p95, LatencyRule};
use bellwether_detect::mixture::REGRESSION_GRID;
use bellwether_detect::two_sample::{split_baseline, Prior};
use bellwether_detect::verdict::Sample;
use bellwether_detect::{Direction, TwoSampleTest};
use bellwether_model::dependency::{
    duration_middle_ms, DependencyCounts, DependencyFigures, DURATION_BUCKETS,
};
use bellwether_model::health::Evidence;
use bellwether_model::release::ReleaseKey;
use bellwether_store::{ReleaseStore, StoreError};

use crate::evaluate::analysis::{describe_log, finite};
use crate::evaluate::settings::ServiceDetection;

/// One dependency's calls: the baseline's per bucket (oldest first) and the new
/// release's in all.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DependencyInput {
    pub name: String,
    pub baseline: Vec<Sample>,
    pub new: Sample,
    /// Calls per duration bucket, the baseline's and the new release's.
    pub baseline_durations: [u64; DURATION_BUCKETS],
    pub new_durations: [u64; DURATION_BUCKETS],
}

fn add_durations(into: &mut [u64; DURATION_BUCKETS], counts: &[u32; DURATION_BUCKETS]) {
    for (sum, n) in into.iter_mut().zip(counts) {
        *sum = sum.saturating_add(u64::from(*n));
    }
}

/// At most [`MAX_DURATION_SAMPLES`] durations (ms) standing for a duration histogram:
/// each bucket's middle, in proportion to its calls (every bucket with calls gets one).
fn duration_samples(durations: &[u64; DURATION_BUCKETS]) -> Vec<f64> {
    let total = durations.iter().fold(0u64, |a, n| a.saturating_add(*n));
    if total == 0 {
        return Vec::new();
    }
    let take = total.min(MAX_DURATION_SAMPLES);
    let mut out = Vec::new();
    for (i, n) in durations.iter().enumerate().filter(|(_, n)| **n > 0) {
        let share = (u128::from(*n) * u128::from(take) / u128::from(total)).max(1);
        let share = usize::try_from(share).unwrap_or(usize::MAX);
        out.extend(std::iter::repeat_n(duration_middle_ms(i), share));
    }
    out
}

/// Durations the latency comparison of one dependency takes from each side.
const MAX_DURATION_SAMPLES: u64 = 1_024;

/// Calls (or requests) as exposure, failed ones as errors.
pub(super) fn sample_of(counts: &DependencyCounts) -> Sample {
    Sample {
        exposure: counts.calls,
        errors: counts.errors,
    }
}

/// The calls of `release` (buckets in `new_range`) and of `baseline` (buckets in
/// `baseline_range`) to every dependency the new release called.
pub(super) fn gather_dependencies(
    store: &dyn ReleaseStore,
    baseline: &ReleaseKey,
    baseline_range: Range<i64>,
    release: &ReleaseKey,
    new_range: Range<i64>,
) -> Result<Vec<DependencyInput>, StoreError> {
    let mut new: BTreeMap<String, (Sample, [u64; DURATION_BUCKETS])> = BTreeMap::new();
    for bucket in store.dependency_buckets(release, new_range)? {
        let (side, durations) = new.entry(bucket.dependency).or_default();
        *side = side.plus(sample_of(&bucket.counts));
        add_durations(durations, &bucket.counts.durations);
    }
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let mut before: BTreeMap<String, BTreeMap<i64, Sample>> = BTreeMap::new();
    let mut before_durations: BTreeMap<String, [u64; DURATION_BUCKETS]> = BTreeMap::new();
    for bucket in store.dependency_buckets(baseline, baseline_range)? {
        if new.contains_key(&bucket.dependency) {
            add_durations(
                before_durations
                    .entry(bucket.dependency.clone())
                    .or_default(),
                &bucket.counts.durations,
            );
            before
                .entry(bucket.dependency)
                .or_default()
                .insert(bucket.bucket_start_unix_ms, sample_of(&bucket.counts));
        }
    }
    Ok(new
        .into_iter()
        .map(|(name, (new, new_durations))| DependencyInput {
            baseline: before
                .remove(&name)
                .map(|b| b.into_values().collect())
                .unwrap_or_default(),
            baseline_durations: before_durations.remove(&name).unwrap_or_default(),
            new_durations,
            name,
            new,
        })
        .collect())
}

/// Every dependency's figures, and evidence for each one whose error rate rose past the
/// tolerance (the errors floors included) with an e-value of at least k/α for k
/// dependencies compared, or whose calls became slower past the latency tolerance (at
/// the latency test's α over k).
pub(super) fn judge_dependencies(
    dependencies: &[DependencyInput],
    settings: &ServiceDetection,
) -> (Vec<DependencyFigures>, Vec<Evidence>) {
    let t = settings.thresholds.sanitized();
    let compared = dependencies
        .iter()
        .filter(|d| d.new.exposure > 0 && d.baseline.iter().any(|b| b.exposure > 0))
        .count()
        .max(1);
    let log_threshold = (compared as f64 / t.alpha).ln();
    let mut figures = Vec::with_capacity(dependencies.len());
    let mut evidence = Vec::new();
    for dependency in dependencies {
        let whole = dependency
            .baseline
            .iter()
            .copied()
            .fold(Sample::default(), Sample::plus);
        let phi = dispersion_upper(&dependency.baseline);
        let (prior, tested) = split_baseline(&dependency.baseline);
        let prior = Prior::from_counts(prior.errors, prior.exposure, phi);
        let new = dependency.new;
        let log_e = TwoSampleTest::new(prior, tested, t.rho, phi).map(|test| {
            test.log_e(
                Direction::Up,
                &REGRESSION_GRID,
                new.errors as f64,
                new.exposure as f64,
            )
        });
        let regression = log_e.is_some_and(|l| l >= log_threshold)
            && floors_met(
                new.errors as f64,
                new.exposure as f64,
                rate(&whole).unwrap_or(0.0),
                t.min_errors,
                t.min_abs_rise,
            );
        if regression {
            let summary = format!(
                "calls to {}: errors {} vs {} in the baseline ({} of {} calls, baseline {} of \
                 {}); e-value {} vs threshold {:.0} ({} dependencies compared at α = {})",
                dependency.name,
                percent(rate(&new).unwrap_or(0.0)),
                percent(rate(&whole).unwrap_or(0.0)),
                new.errors,
                new.exposure,
                whole.errors,
                whole.exposure,
                describe_log(log_e.unwrap_or(0.0)),
                log_threshold.exp(),
                compared,
                t.alpha,
            );
            evidence.push(
                Evidence::new("dependency_regression", summary)
                    .with("dependency", dependency.name.as_str())
                    .with("calls", new.exposure)
                    .with("errors", new.errors)
                    .with("baseline_calls", whole.exposure)
                    .with("baseline_errors", whole.errors)
                    .with("log_e_value", log_e.and_then(finite))
                    .with("log_threshold", log_threshold),
            );
        }
        let rule = LatencyRule {
            ratio: settings.latency_min_ratio,
            floor_ms: settings.latency_min_rise.as_secs_f64() * 1_000.0,
            alpha: settings.latency_alpha / compared as f64,
        };
        let latency = latency_test(
            &duration_samples(&dependency.new_durations),
            &duration_samples(&dependency.baseline_durations),
            &rule,
        );
        let slower = latency.is_some_and(|l| l.regression);
        if let Some(test) = latency.filter(|l| l.regression) {
            evidence.push(
                Evidence::new(
                    "dependency_latency_regression",
                    format!(
                        "calls to {}: p95 {:.1} ms vs {:.1} ms in the baseline; {} of {} calls \
                         slower than {:.1} ms, e-value {} vs threshold {:.0}",
                        dependency.name,
                        test.p95_ms,
                        test.baseline_p95_ms,
                        test.slow,
                        test.samples,
                        test.cutoff_ms,
                        describe_log(test.log_e),
                        test.log_threshold.exp(),
                    ),
                )
                .with("dependency", dependency.name.as_str())
                .with("p95_ms", test.p95_ms)
                .with("baseline_p95_ms", test.baseline_p95_ms)
                .with("log_e_value", finite(test.log_e)),
            );
        }
        figures.push(DependencyFigures {
            name: dependency.name.clone(),
            calls: new.exposure,
            errors: new.errors,
            baseline_calls: whole.exposure,
            baseline_errors: whole.errors,
            log_e_value: log_e.and_then(finite),
            log_threshold: log_e.map(|_| log_threshold),
            regression,
            p95_ms: p95(&duration_samples(&dependency.new_durations)),
            baseline_p95_ms: p95(&duration_samples(&dependency.baseline_durations)),
            latency_regression: slower,
        });
    }
    (figures, evidence)
}

#[cfg(test)]
#[path = "dependencies_tests.rs"]
mod tests;
