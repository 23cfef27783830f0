//! The judgement of one release from its counts: pure, no IO. The evaluator feeds it
//! from the store; the detection simulation (`examples/detection_sim.rs`) feeds it
//! simulated traffic, so both exercise exactly this code.
//!
//! 1. Error rate against the baseline: DETECTION.md case B ([`ConcurrentTest`]) over
//!    paired buckets while both versions serve, else case A ([`assess_cutover_with_dispersion`])
//!    against the baseline's window before the deploy; φ from the baseline's buckets
//!    (case D), taken at its upper confidence bound.
//! 2. New and regressed issues: case C per fingerprint ([`super::signatures`]).
//! 3. Latency: the share of new requests slower than the baseline's p95 bound × λ + δ
//!    (DETECTION.md G, [`crate::detect::latency`]).
//!
//! The verdict is the worst of the three findings.

use std::collections::HashMap;
use std::time::Duration;

use crate::detect::exposure::exposure_until;
use crate::detect::latency::{latency_test, LatencyRule};
use crate::detect::special::{gamma_quantile, poisson_upper_mean};
use crate::detect::two_sample::{log_average, log_e_under_floor};
use crate::detect::{
    assess_cutover_with_dispersion, dispersion_upper, ConcurrentTest, Direction, Sample,
    VerdictKind,
};
use crate::health::{Evidence, Figures, SideFigures, Verdict};

use super::settings::ServiceDetection;
use super::signatures::{judge_issues, IssueObservation};

/// (bucket start in Unix ms, counts), oldest first.
pub type Buckets = Vec<(i64, Sample)>;

/// How the new release is compared with its baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Both serve at the same time: case B over paired buckets.
    Concurrent,
    /// The baseline ran before the deploy: case A against its window.
    Cutover,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Concurrent => "concurrent",
            Method::Cutover => "cutover",
        }
    }
}

/// The baseline's side of the comparison.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BaselineInput {
    pub version: String,
    /// Buckets of its window before the deploy.
    pub before: Buckets,
    /// Buckets since the deploy (concurrent traffic).
    pub since: Buckets,
    /// Sampled span durations (ms) of its window before the deploy (the latency test's
    /// cut-off is fixed by them).
    pub latency_ms: Vec<f64>,
    /// Said in the evidence, e.g. why an older release is the baseline.
    pub note: Option<String>,
}

/// Everything the judgement needs about one release at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisInput {
    /// Time since the deploy.
    pub elapsed: Duration,
    /// `server_spans`, `spans` or `log_records`.
    pub exposure_kind: &'static str,
    pub method: Method,
    pub baseline: Option<BaselineInput>,
    /// Buckets of the new release since the deploy.
    pub new: Buckets,
    pub issues: Vec<IssueObservation>,
    /// Sampled span durations (ms) of the new release.
    pub latency_ms: Vec<f64>,
}

/// Verdict, evidence and figures, plus the fingerprints that crossed their threshold in
/// this evaluation (the caller keeps their streaks).
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub evidence: Vec<Evidence>,
    pub figures: Figures,
    pub crossed: Vec<String>,
}

pub fn total(buckets: &[(i64, Sample)]) -> Sample {
    buckets
        .iter()
        .fold(Sample::default(), |acc, (_, s)| Sample {
            exposure: acc.exposure.saturating_add(s.exposure),
            errors: acc.errors.saturating_add(s.errors),
        })
}

fn side(s: Sample) -> SideFigures {
    SideFigures {
        exposure: s.exposure,
        errors: s.errors,
        rate: (s.exposure > 0).then(|| s.errors as f64 / s.exposure as f64),
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn verdict_of(kind: VerdictKind) -> Verdict {
    match kind {
        VerdictKind::Pending => Verdict::Pending,
        VerdictKind::Healthy => Verdict::Healthy,
        VerdictKind::Degraded => Verdict::Degraded,
        VerdictKind::Unhealthy => Verdict::Unhealthy,
    }
}

/// (1 − α) interval of the rate ratio new/baseline from exact Poisson bounds on each
/// side at α/4 (conservative). None where a bound is undefined.
pub fn ratio_interval(new: Sample, base: Sample, alpha: f64) -> (Option<f64>, Option<f64>) {
    if new.exposure == 0 || base.exposure == 0 {
        return (None, None);
    }
    let tail = alpha / 4.0;
    let (e, b) = (new.exposure as f64, base.exposure as f64);
    let new_low = if new.errors == 0 {
        0.0
    } else {
        gamma_quantile(tail, new.errors as f64)
    };
    let new_high = poisson_upper_mean(new.errors as f64, tail);
    let base_low = if base.errors == 0 {
        0.0
    } else {
        gamma_quantile(tail, base.errors as f64)
    };
    let base_high = poisson_upper_mean(base.errors as f64, tail);
    let lower = finite((new_low / e) / (base_high / b));
    let upper = if base_low > 0.0 {
        finite((new_high / e) / (base_low / b))
    } else {
        None
    };
    (lower, upper)
}

/// Judges one release. `streaks[fingerprint]` is how many immediately preceding
/// scheduled evaluations that fingerprint crossed its threshold in.
pub fn judge(
    input: &AnalysisInput,
    settings: &ServiceDetection,
    streaks: &HashMap<String, u32>,
) -> Judgement {
    let t = &settings.thresholds;
    let new = total(&input.new);
    let mut figures = Figures {
        exposure_kind: input.exposure_kind.to_owned(),
        new: side(new),
        dispersion: 1.0,
        ..Figures::default()
    };
    let mut evidence = Vec::new();
    let verdict = match &input.baseline {
        Some(b) if input.method == Method::Concurrent && total(&b.since).exposure > 0 => {
            concurrent(input, b, settings, &mut figures, &mut evidence)
        }
        baseline => cutover(
            input,
            baseline.as_ref(),
            settings,
            &mut figures,
            &mut evidence,
        ),
    };
    if let Some(note) = input.baseline.as_ref().and_then(|b| b.note.clone()) {
        evidence.push(Evidence::new("baseline_choice", note));
    }

    // Case C: new exposure against the baseline exposure over which they were not seen.
    let baseline_exposure = input.baseline.as_ref().map_or(0, |b| {
        total(&b.before)
            .exposure
            .saturating_add(total(&b.since).exposure)
    });
    let issues = judge_issues(
        &input.issues,
        new.exposure,
        baseline_exposure,
        streaks,
        t,
        settings.new_issue_min_rate,
    );
    let mut verdict = verdict;
    if !issues.flagged.is_empty() {
        verdict = verdict.worst(Verdict::Degraded);
    }
    figures.flagged_issues = issues.flagged.clone();
    evidence.extend(issues.evidence);

    if let Some((latency_verdict, item)) = judge_latency(input, settings) {
        verdict = verdict.worst(latency_verdict);
        evidence.push(item);
    }
    Judgement {
        verdict,
        evidence,
        figures,
        crossed: issues.crossed,
    }
}

fn cutover(
    input: &AnalysisInput,
    baseline: Option<&BaselineInput>,
    settings: &ServiceDetection,
    figures: &mut Figures,
    evidence: &mut Vec<Evidence>,
) -> Verdict {
    let t = &settings.thresholds;
    let new = total(&input.new);
    let base = baseline.map(|b| total(&b.before));
    let phi = baseline.map_or(1.0, |b| {
        dispersion_upper(&b.before.iter().map(|(_, s)| *s).collect::<Vec<_>>())
    });
    let usable = base.filter(|b| b.exposure > 0);
    let buckets: Vec<Sample> = baseline.map_or_else(Vec::new, |b| {
        b.before.iter().map(|(_, s)| *s).collect::<Vec<_>>()
    });
    let a = assess_cutover_with_dispersion(&buckets, new, input.elapsed, t, phi);
    figures.method = if usable.is_some() {
        "cutover"
    } else {
        "no_baseline"
    }
    .to_owned();
    figures.baseline_version = baseline.map(|b| b.version.clone());
    figures.baseline = base.map(side);
    figures.dispersion = phi;
    figures.rate_ratio = a.rate_ratio;
    if let Some(b) = usable {
        (figures.rate_ratio_lower, figures.rate_ratio_upper) = ratio_interval(new, b, t.alpha);
    }
    figures.log_e_value = a.log_m;
    figures.log_threshold = a.log_threshold;
    figures.log_healthy_e_value = a.log_healthy;
    figures.log_healthy_threshold = a.log_healthy_threshold;
    figures.exposure_needed = a.more_exposure_needed;
    figures.time_needed_ms = a.more_time_needed.map(millis);
    figures.decidable_exposure = a.decidable_exposure;
    for item in a.evidence {
        let mut e = Evidence::new(item.kind.clone(), item.summary);
        e = match item.kind.as_str() {
            "baseline" => e
                .with("version", baseline.map(|b| b.version.clone()))
                .with("method", &figures.method)
                .with("exposure", base.map(|b| b.exposure))
                .with("errors", base.map(|b| b.errors))
                .with("rate", a.baseline_rate),
            "new" => e
                .with("exposure", new.exposure)
                .with("errors", new.errors)
                .with("rate", a.new_rate),
            "ratio" => e
                .with("rate_ratio", a.rate_ratio)
                .with("lower", figures.rate_ratio_lower)
                .with("upper", figures.rate_ratio_upper),
            "e_value" => e
                .with("log_e_value", finite(a.log_m))
                .with("log_threshold", finite(a.log_threshold))
                .with("dispersion", phi),
            "healthy_e_value" => e
                .with("log_e_value", finite(a.log_healthy))
                .with("log_threshold", finite(a.log_healthy_threshold)),
            "needed" => e
                .with("exposure_needed", a.more_exposure_needed)
                .with("time_needed_ms", a.more_time_needed.map(millis)),
            _ => e,
        };
        evidence.push(e);
    }
    verdict_of(a.verdict)
}

fn concurrent(
    input: &AnalysisInput,
    baseline: &BaselineInput,
    settings: &ServiceDetection,
    figures: &mut Figures,
    evidence: &mut Vec<Evidence>,
) -> Verdict {
    let t = &settings.thresholds;
    // Pair buckets by start; both lists are sorted.
    let mut test = ConcurrentTest::new(t.rho);
    let (mut i, mut j) = (0, 0);
    let (news, bases) = (&input.new, &baseline.since);
    while i < news.len() || j < bases.len() {
        let (n, b) = match (news.get(i), bases.get(j)) {
            (Some(n), Some(b)) if n.0 == b.0 => {
                i += 1;
                j += 1;
                (n.1, b.1)
            }
            (Some(n), Some(b)) if n.0 < b.0 => {
                i += 1;
                (n.1, Sample::default())
            }
            (Some(n), None) => {
                i += 1;
                (n.1, Sample::default())
            }
            (_, Some(b)) => {
                j += 1;
                (Sample::default(), b.1)
            }
            (None, None) => break,
        };
        test.update(n.exposure, b.exposure, n.errors, b.errors);
    }
    let samples: Vec<Sample> = baseline
        .before
        .iter()
        .chain(baseline.since.iter())
        .map(|(_, s)| *s)
        .collect();
    let phi = dispersion_upper(&samples);
    let new = Sample {
        exposure: test.new_exposure,
        errors: test.new_errors,
    };
    let base = Sample {
        exposure: test.baseline_exposure,
        errors: test.baseline_errors,
    };
    let new_rate = side(new).rate;
    let base_rate = side(base).rate.unwrap_or(0.0);
    let ratio = new_rate.and_then(|n| (base_rate > 0.0).then(|| n / base_rate));
    let log_m = test.log_e(Direction::Up, phi);
    let log_threshold = ConcurrentTest::log_threshold(t.alpha);
    let log_healthy = |more: f64| {
        let ratio = if more == 0.0 {
            Some(test.log_e(Direction::Down, phi))
        } else {
            test.log_e_after(Direction::Down, more, phi)
        };
        let e = new.exposure as f64 + more;
        let x = new_rate.unwrap_or(0.0) * e;
        log_average(
            ratio.unwrap_or(f64::NEG_INFINITY),
            log_e_under_floor(x, e, t.min_abs_rise, phi),
        )
    };
    let log_h = log_healthy(0.0);
    let log_healthy_threshold = (1.0 / t.beta).ln();
    let regression = test.is_regression(t.alpha, t.min_errors, t.min_abs_rise, phi);
    figures.method = "concurrent".to_owned();
    figures.baseline_version = Some(baseline.version.clone());
    figures.baseline = Some(side(base));
    figures.dispersion = phi;
    figures.rate_ratio = ratio.and_then(finite);
    (figures.rate_ratio_lower, figures.rate_ratio_upper) = ratio_interval(new, base, t.alpha);
    figures.log_e_value = finite(log_m).unwrap_or(0.0);
    figures.log_threshold = log_threshold;
    figures.log_healthy_e_value = finite(log_h).unwrap_or(0.0);
    figures.log_healthy_threshold = log_healthy_threshold;

    let pct = |r: Option<f64>| r.map_or("n/a".to_owned(), |r| format!("{:.3}%", r * 100.0));
    evidence.push(
        Evidence::new(
            "baseline",
            format!(
                "baseline {} serving concurrently: error rate {} ({} errors / {})",
                baseline.version,
                pct(side(base).rate),
                base.errors,
                base.exposure
            ),
        )
        .with("version", &baseline.version)
        .with("method", "concurrent")
        .with("exposure", base.exposure)
        .with("errors", base.errors)
        .with("rate", side(base).rate),
    );
    evidence.push(
        Evidence::new(
            "new",
            format!(
                "new error rate {} ({} errors / {})",
                pct(new_rate),
                new.errors,
                new.exposure
            ),
        )
        .with("exposure", new.exposure)
        .with("errors", new.errors)
        .with("rate", new_rate),
    );
    evidence.push(
        Evidence::new(
            "ratio",
            match figures.rate_ratio {
                Some(r) => format!("rate ratio {r:.2}× (new / baseline, same time buckets)"),
                None => "rate ratio undefined: no baseline errors or no new traffic".to_owned(),
            },
        )
        .with("rate_ratio", figures.rate_ratio)
        .with("lower", figures.rate_ratio_lower)
        .with("upper", figures.rate_ratio_upper),
    );
    evidence.push(
        Evidence::new(
            "e_value",
            format!(
                "e-value M = {} vs threshold {:.0} (1/α, α = {}; errors attributed per bucket, \
                 null: rate ratio ≤ ρ {}{})",
                describe_log(log_m),
                log_threshold.exp(),
                t.alpha,
                t.rho,
                if phi > 1.0 {
                    format!(", damped by dispersion φ = {phi:.2}")
                } else {
                    String::new()
                }
            ),
        )
        .with("log_e_value", finite(log_m))
        .with("log_threshold", log_threshold)
        .with("dispersion", phi),
    );
    if regression {
        let n = new_rate.unwrap_or(0.0);
        let severe =
            ratio.is_none_or(|r| r >= t.severe_ratio) || n - base_rate >= t.severe_abs_rise;
        evidence.push(Evidence::new(
            "regression",
            format!(
                "{} error rate regression: {} vs {} on the baseline at the same time",
                if severe { "severe" } else { "significant" },
                pct(new_rate),
                pct(Some(base_rate))
            ),
        ));
        return if severe {
            Verdict::Unhealthy
        } else {
            Verdict::Degraded
        };
    }
    evidence.push(
        Evidence::new(
            "healthy_e_value",
            format!(
                "healthy e-value {} vs threshold {:.0} (1/β, β = {}; null: rate ratio ≥ ρ {} \
                 and a rise of ≥ {:.3} points)",
                describe_log(log_h),
                log_healthy_threshold.exp(),
                t.beta,
                t.rho,
                t.min_abs_rise * 100.0
            ),
        )
        .with("log_e_value", finite(log_h))
        .with("log_threshold", log_healthy_threshold),
    );
    let proven = new.exposure > 0 && log_h >= log_healthy_threshold;
    if proven && input.elapsed >= t.min_duration {
        evidence.push(Evidence::new(
            "healthy",
            format!(
                "healthy after {} exposure alongside the baseline: the evidence bounds the \
                 error rate below ρ = {} × the baseline's, with at most a {}% chance of \
                 passing a release whose rate rose more",
                new.exposure,
                t.rho,
                t.beta * 100.0
            ),
        ));
        return Verdict::Healthy;
    }
    // Pending: how far each decision is if the rates and the traffic split stay.
    let scale = (new.exposure as f64).max(1.0);
    let to_regression = new_rate
        .filter(|n| n - base_rate >= t.min_abs_rise)
        .and_then(|n| {
            exposure_until(
                |more| {
                    test.log_e_after(Direction::Up, more, phi)
                        .is_some_and(|l| l >= log_threshold)
                        && n * (new.exposure as f64 + more) >= t.min_errors as f64
                },
                scale,
            )
        });
    let to_healthy = if proven {
        Some(0.0)
    } else {
        exposure_until(|more| log_healthy(more) >= log_healthy_threshold, scale)
    };
    figures.decidable_exposure = to_healthy.map(|h| (new.exposure as f64 + h).ceil() as u64);
    let more = match (to_regression, to_healthy) {
        (Some(r), Some(h)) => Some(r.min(h)),
        (r, h) => r.or(h),
    };
    let secs = input.elapsed.as_secs_f64();
    let floor = t.min_duration.saturating_sub(input.elapsed);
    let time = more.and_then(|m| {
        (new.exposure > 0 && secs > 0.0)
            .then(|| Duration::try_from_secs_f64(m * secs / new.exposure as f64).ok())
            .flatten()
            .map(|d| d.max(floor))
    });
    let more = more.map(|m| m.ceil() as u64);
    figures.exposure_needed = more;
    figures.time_needed_ms = time.map(millis);
    let summary = match (more, time) {
        (Some(m), Some(d)) => format!(
            "{m} more exposure needed, about {}s at the current traffic rate and minimum \
             duration",
            d.as_secs()
        ),
        (Some(m), None) => format!("{m} more exposure needed (traffic rate not known yet)"),
        (None, _) => "neither healthy nor a regression can be decided at the current error \
                      rates: the new release sits at the tolerance; the verdict stays pending"
            .to_owned(),
    };
    evidence.push(
        Evidence::new("needed", summary)
            .with("exposure_needed", more)
            .with("time_needed_ms", time.map(millis)),
    );
    Verdict::Pending
}

fn describe_log(log_m: f64) -> String {
    if log_m.abs() < 30.0 {
        format!("{:.3}", log_m.exp())
    } else {
        format!("e^{log_m:.1}")
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Latency finding: the worse verdict it implies and its evidence (DETECTION.md G):
/// regression when the share of new requests above λ × the baseline's p95 bound + δ is
/// significantly over 5 %, always valid. An insignificant comparison is plain evidence.
fn judge_latency(
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

#[cfg(test)]
mod tests {
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
}
