//! The steady part of the error stream, tested on its own (DETECTION.md D).
//!
//! Bursts of one fingerprint (a retry storm, one bad user) make the error counts of the
//! whole release over-dispersed, and the dispersion φ they imply divides the evidence on
//! every other fingerprint too: at 100 requests/s, bursts of a noisy error that make up
//! 4 % of the errors give φ ≈ 1.4 for all of them, and at 10 requests/s φ ≈ 4. So the
//! fingerprints that were *steady* in the baseline's window before the deploy (at least
//! [`MIN_STEADY_ERRORS`] errors, spread over its buckets with an upper dispersion bound
//! of at most [`MAX_STEADY_DISPERSION`]) form a stream of their own, with their own φ,
//! and a regression is a rise past ρ of the error rate as a whole *or* of this steady
//! part. Fingerprints that are rare, bursty or new stay in the whole stream (and new
//! ones have their own test, case C).
//!
//! The regression e-value is the average W·M_steady + (1 − W)·M_all: each part is an
//! e-process under its own null, so the average is one under both at once and Ville's
//! inequality still bounds the false-alarm probability by α. The classification only
//! looks at the baseline's window before the deploy, so it is fixed before any of the
//! tested new-release data arrive. Healthy stays a claim about the whole stream.

use bellwether_detect::cutover::floors_met;
use bellwether_detect::mixture::{log_sum_exp, REGRESSION_GRID};
use bellwether_detect::two_sample::{split_baseline, Prior, TwoSampleTest};
use bellwether_detect::{dispersion_upper, Direction, Sample, Thresholds};
use bellwether_model::health::{Evidence, Figures, Verdict};

use crate::evaluate::analysis::{describe_log, total, Buckets};
use crate::evaluate::concurrent::paired;

/// Weight of the steady stream's e-value in the regression e-value.
pub const STEADY_WEIGHT: f64 = 0.8;

/// A fingerprint is steady only with at least this many errors before the deploy...
pub const MIN_STEADY_ERRORS: u64 = 20;

/// ... and an upper dispersion bound of its per-bucket counts of at most this.
pub const MAX_STEADY_DISPERSION: f64 = 2.0;

/// Most fingerprints of a baseline considered (the most frequent ones).
pub const MAX_FINGERPRINTS: usize = 20;

/// Per-bucket error counts of one of the baseline's fingerprints, (bucket start, count),
/// oldest first; buckets without any may be left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FingerprintSeries {
    pub fingerprint: String,
    /// The baseline's buckets before the deploy.
    pub before: Vec<(i64, u64)>,
    /// The baseline's buckets since the deploy (concurrent traffic).
    pub since: Vec<(i64, u64)>,
    /// The new release's buckets since the deploy.
    pub new: Vec<(i64, u64)>,
}

/// The steady stream: the total buckets with their errors replaced by those of the
/// steady fingerprints (never more than the bucket's errors).
#[derive(Clone, Debug, PartialEq)]
pub struct SteadyStream {
    pub fingerprints: Vec<String>,
    pub before: Buckets,
    pub since: Buckets,
    pub new: Buckets,
}

/// The steady stream of a release, or None when no fingerprint of the baseline is
/// steady (or the steady ones are all its errors: then the stream is the whole one).
pub fn steady_stream(
    series: &[FingerprintSeries],
    before: &Buckets,
    since: &Buckets,
    new: &Buckets,
) -> Option<SteadyStream> {
    let steady: Vec<&FingerprintSeries> = series
        .iter()
        .take(MAX_FINGERPRINTS)
        .filter(|f| is_steady(f, before))
        .collect();
    if steady.is_empty() {
        return None;
    }
    let stream = SteadyStream {
        fingerprints: steady.iter().map(|f| f.fingerprint.clone()).collect(),
        before: restrict(before, steady.iter().map(|f| &f.before[..])),
        since: restrict(since, steady.iter().map(|f| &f.since[..])),
        new: restrict(new, steady.iter().map(|f| &f.new[..])),
    };
    let errors = |b: &Buckets| b.iter().map(|(_, s)| s.errors).fold(0, u64::saturating_add);
    let same = errors(&stream.before) == errors(before)
        && errors(&stream.since) == errors(since)
        && errors(&stream.new) == errors(new);
    (!same).then_some(stream)
}

fn is_steady(f: &FingerprintSeries, before: &Buckets) -> bool {
    let own = restrict(before, std::iter::once(&f.before[..]));
    let samples: Vec<Sample> = own.iter().map(|(_, s)| *s).collect();
    let errors = samples
        .iter()
        .map(|s| s.errors)
        .fold(0, u64::saturating_add);
    errors >= MIN_STEADY_ERRORS && dispersion_upper(&samples) <= MAX_STEADY_DISPERSION
}

/// `total` with each bucket's errors replaced by the sum of `parts` at its start,
/// capped at the bucket's errors (a request reported under two fingerprints is one
/// failing request).
fn restrict<'a>(total: &Buckets, parts: impl Iterator<Item = &'a [(i64, u64)]>) -> Buckets {
    let mut sums: std::collections::HashMap<i64, u64> = std::collections::HashMap::new();
    for part in parts {
        for &(start, count) in part {
            let sum = sums.entry(start).or_default();
            *sum = sum.saturating_add(count);
        }
    }
    total
        .iter()
        .map(|&(start, s)| {
            let errors = sums.get(&start).copied().unwrap_or(0).min(s.errors);
            (
                start,
                Sample {
                    exposure: s.exposure,
                    errors,
                },
            )
        })
        .collect()
}

/// The steady stream's regression test at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct SteadyFinding {
    /// ln M of the steady stream's regression test (0 without new exposure).
    pub log_m: f64,
    pub dispersion: f64,
    pub new: Sample,
    pub baseline: Sample,
}

/// The steady stream's regression e-value: case B over its paired buckets when both
/// versions serve, else case A against its buckets before the deploy, each with the
/// stream's own φ (upper bound, as for the whole stream).
pub fn steady_finding(stream: &SteadyStream, concurrent: bool, rho: f64) -> SteadyFinding {
    let new = total(&stream.new);
    if concurrent {
        let samples: Vec<Sample> = stream
            .before
            .iter()
            .chain(&stream.since)
            .map(|(_, s)| *s)
            .collect();
        let phi = dispersion_upper(&samples);
        let test = paired(&stream.new, &stream.since, rho);
        return SteadyFinding {
            log_m: test.log_e(Direction::Up, phi),
            dispersion: phi,
            new,
            baseline: total(&stream.since),
        };
    }
    let samples: Vec<Sample> = stream.before.iter().map(|(_, s)| *s).collect();
    let phi = dispersion_upper(&samples);
    let (prior, tested) = split_baseline(&samples);
    let prior = Prior::from_counts(prior.errors, prior.exposure, phi);
    let log_m = match TwoSampleTest::new(prior, tested, rho, phi) {
        Some(test) if new.exposure > 0 => test.log_e(
            Direction::Up,
            &REGRESSION_GRID,
            new.errors as f64,
            new.exposure as f64,
        ),
        _ => 0.0,
    };
    SteadyFinding {
        log_m,
        dispersion: phi,
        new,
        baseline: total(&stream.before),
    }
}

/// Folds the steady stream's test into the verdict of the whole stream, which was
/// reached at level (1 − [`STEADY_WEIGHT`])·α (so that it alone alarms exactly when
/// its share of the average does): the regression e-value becomes the average, and a
/// crossing of 1/α with the steady stream's floors met is a regression.
pub fn fold_steady(
    verdict: Verdict,
    stream: &SteadyStream,
    finding: &SteadyFinding,
    t: &Thresholds,
    figures: &mut Figures,
    evidence: &mut Vec<Evidence>,
) -> Verdict {
    let log_all = figures.log_e_value;
    let log_m = log_sum_exp(&[
        STEADY_WEIGHT.ln() + finding.log_m,
        (1.0 - STEADY_WEIGHT).ln() + log_all,
    ]);
    let log_threshold = (1.0 / t.alpha).ln();
    figures.log_e_value = if log_m.is_finite() { log_m } else { 0.0 };
    figures.log_threshold = log_threshold;
    let rate = |s: Sample| (s.exposure > 0).then(|| s.errors as f64 / s.exposure as f64);
    let (new_rate, base_rate) = (rate(finding.new), rate(finding.baseline).unwrap_or(0.0));
    let crossed = finding.new.exposure > 0
        && log_m >= log_threshold
        && floors_met(
            finding.new.errors as f64,
            finding.new.exposure as f64,
            base_rate,
            t.min_errors,
            t.min_abs_rise,
        );
    let pct = |r: Option<f64>| r.map_or("n/a".to_owned(), |r| format!("{:.3}%", r * 100.0));
    evidence.push(
        Evidence::new(
            "steady_e_value",
            format!(
                "steady errors ({} fingerprint(s) steady in the baseline): {} vs {} on the                  baseline, e-value {}{}; regression e-value {:.0}%·M_steady + {:.0}%·M_all =                  {} vs threshold {:.0} (1/α)",
                stream.fingerprints.len(),
                pct(new_rate),
                pct(Some(base_rate)),
                describe_log(finding.log_m),
                if finding.dispersion > 1.0 {
                    format!(" (dispersion φ = {:.2})", finding.dispersion)
                } else {
                    String::new()
                },
                STEADY_WEIGHT * 100.0,
                (1.0 - STEADY_WEIGHT) * 100.0,
                describe_log(log_m),
                log_threshold.exp(),
            ),
        )
        .with("fingerprints", &stream.fingerprints)
        .with("exposure", finding.new.exposure)
        .with("errors", finding.new.errors)
        .with("rate", new_rate)
        .with("baseline_rate", base_rate)
        .with("log_steady_e_value", finding.log_m.is_finite().then_some(finding.log_m))
        .with("log_e_value", figures.log_e_value)
        .with("log_threshold", log_threshold)
        .with("dispersion", finding.dispersion),
    );
    if !crossed || matches!(verdict, Verdict::Degraded | Verdict::Unhealthy) {
        return verdict;
    }
    // A release proven within the tolerance as a whole but regressed in its steady
    // errors is a regression: drop the healthy claim.
    evidence.retain(|e| e.kind != "healthy");
    let n = new_rate.unwrap_or(0.0);
    let severe =
        (base_rate <= 0.0 || n / base_rate >= t.severe_ratio) || n - base_rate >= t.severe_abs_rise;
    evidence.push(Evidence::new(
        "regression",
        format!(
            "{} error rate regression of the steady errors: {} vs {}",
            if severe { "severe" } else { "significant" },
            pct(new_rate),
            pct(Some(base_rate))
        ),
    ));
    if severe {
        Verdict::Unhealthy
    } else {
        Verdict::Degraded
    }
}

#[cfg(test)]
#[path = "steady_tests.rs"]
mod tests;
