//! The judgement of one release from its counts: pure, no IO. The evaluator feeds it
//! from the store; the detection simulation (`examples/detection_sim/`) feeds it
//! simulated traffic, so both exercise exactly this code.
//!
//! 1. Error rate against the baseline: DETECTION.md case B ([`super::concurrent`]) over
//!    paired buckets while both versions serve, else case A ([`assess_cutover_with_dispersion`])
//!    against the baseline's window before the deploy; φ from the baseline's buckets
//!    (case D), taken at its upper confidence bound.
//! 2. New and regressed issues: case C per fingerprint ([`super::signatures`]).
//! 3. Latency: the share of new requests slower than the baseline's p95 bound × λ + δ
//!    (DETECTION.md G, [`super::latency`]).
//!
//! The verdict is the worst of the three findings.

use std::collections::HashMap;
use std::time::Duration;

use bellwether_detect::special::{gamma_quantile, poisson_upper_mean};
use bellwether_detect::{assess_cutover_with_dispersion, dispersion_upper, Sample, VerdictKind};
use bellwether_model::health::{Evidence, Figures, SideFigures, Verdict};

use crate::evaluate::concurrent::concurrent;
use crate::evaluate::dependencies::{judge_dependencies, DependencyInput};
use crate::evaluate::flags::{judge_flags, FlagInput};
use crate::evaluate::latency::judge_latency;
use crate::evaluate::settings::ServiceDetection;
use crate::evaluate::signatures::{judge_issues, log_rare_e, IssueObservation, HOLD_COUNT};
use crate::evaluate::steady::{
    fold_steady, steady_finding, steady_stream, FingerprintSeries, STEADY_WEIGHT,
};

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
    /// Per-bucket counts of its most frequent fingerprints (the steady stream is made
    /// of those that were steady before the deploy, [`super::steady`]).
    pub fingerprints: Vec<FingerprintSeries>,
}

/// Everything the judgement needs about one release at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisInput {
    /// Time since the deploy.
    pub elapsed: Duration,
    /// `server_spans`, `spans`, `metric_requests` or `log_records`.
    pub exposure_kind: &'static str,
    pub method: Method,
    pub baseline: Option<BaselineInput>,
    /// Buckets of the new release since the deploy.
    pub new: Buckets,
    pub issues: Vec<IssueObservation>,
    /// Sampled span durations (ms) of the new release.
    pub latency_ms: Vec<f64>,
    /// Its calls to each dependency, and the baseline's.
    pub dependencies: Vec<DependencyInput>,
    /// Its requests per feature-flag variant.
    pub flags: Vec<FlagInput>,
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
        .fold(Sample::default(), |acc, (_, s)| acc.plus(*s))
}

pub(super) fn side(s: Sample) -> SideFigures {
    SideFigures {
        exposure: s.exposure,
        errors: s.errors,
        rate: (s.exposure > 0).then(|| s.errors as f64 / s.exposure as f64),
    }
}

pub(super) fn finite(x: f64) -> Option<f64> {
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
    let steady = input
        .baseline
        .as_ref()
        .and_then(|b| steady_stream(&b.fingerprints, &b.before, &b.since, &input.new));
    // With a steady stream the whole stream's test alarms alone at 1/((1 − W)·α), its
    // share of the average regression e-value (see `steady`).
    let mut whole = settings.clone();
    if steady.is_some() {
        whole.thresholds.alpha = t.alpha * (1.0 - STEADY_WEIGHT);
    }
    let is_concurrent = matches!(&input.baseline,
        Some(b) if input.method == Method::Concurrent && total(&b.since).exposure > 0);
    let mut verdict = rate_verdict(input, &whole, is_concurrent, &mut figures, &mut evidence);
    // One bucket's burst is no regression of the whole stream: its e-value is the
    // smaller of the ones with and without the new release's busiest bucket when that
    // bucket is a burst (never above the e-value over all buckets, so still one). Only
    // worth computing once it counts.
    if figures.log_e_value >= (0.1 / t.alpha).ln() {
        if let Some(reduced) = without_busiest_bucket(input) {
            let (mut f, mut e) = (figures.clone(), Vec::new());
            let reduced_verdict = rate_verdict(&reduced, &whole, is_concurrent, &mut f, &mut e);
            figures.log_e_value = figures.log_e_value.min(f.log_e_value);
            if is_alarm(verdict) && !is_alarm(reduced_verdict) {
                verdict = Verdict::Pending;
                evidence.retain(|e| e.kind != "regression");
                evidence.push(Evidence::new(
                    "one_bucket",
                    "the error rate crossed its threshold only with the new release's \
                     busiest bucket: a single burst is not taken for a regression"
                        .to_owned(),
                ));
            }
        }
    }
    if let Some(stream) = &steady {
        let finding = steady_finding(stream, is_concurrent, t.rho);
        verdict = fold_steady(verdict, stream, &finding, t, &mut figures, &mut evidence);
    }
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
    if !issues.flagged.is_empty() {
        verdict = verdict.worst(Verdict::Degraded);
    }
    figures.flagged_issues = issues.flagged.clone();
    evidence.extend(issues.evidence);
    if let Some((log_rare, count)) = log_rare_e(
        &input.issues,
        &issues.flagged,
        new.exposure,
        settings.new_issue_min_rate,
    ) {
        figures.log_healthy_e_value = figures.log_healthy_e_value.min(log_rare);
        let shown = log_rare >= (1.0 / t.beta).ln();
        if !shown && verdict == Verdict::Healthy {
            verdict = Verdict::Pending;
            evidence.retain(|e| e.kind != "healthy");
            evidence.push(
                Evidence::new(
                    "new_issue_pending",
                    format!(
                        "not healthy yet: {count} new or regressed fingerprint(s) seen ≥ {} \
                         times, not yet shown rarer than {:.3}% of exposure nor flagged",
                        HOLD_COUNT,
                        settings.new_issue_min_rate * 100.0
                    ),
                )
                .with("count", count)
                .with("log_e_value", finite(log_rare)),
            );
        }
    }

    if let Some((latency_verdict, item)) = judge_latency(input, settings) {
        verdict = verdict.worst(latency_verdict);
        evidence.push(item);
    }
    let (dependencies, broken) = judge_dependencies(&input.dependencies, settings);
    for item in broken {
        verdict = verdict.worst(if item.kind == "dependency_latency_regression" {
            settings.latency_verdict
        } else {
            Verdict::Degraded
        });
        evidence.push(item);
    }
    figures.dependencies = dependencies;
    let (flags, failing) = judge_flags(&input.flags, t);
    if !failing.is_empty() {
        verdict = verdict.worst(Verdict::Degraded);
        evidence.extend(failing);
    }
    figures.flags = flags;
    Judgement {
        verdict,
        evidence,
        figures,
        crossed: issues.crossed,
    }
}

fn is_alarm(v: Verdict) -> bool {
    matches!(v, Verdict::Degraded | Verdict::Unhealthy)
}

/// The whole stream's verdict by the method in use.
fn rate_verdict(
    input: &AnalysisInput,
    settings: &ServiceDetection,
    is_concurrent: bool,
    figures: &mut Figures,
    evidence: &mut Vec<Evidence>,
) -> Verdict {
    match &input.baseline {
        Some(b) if is_concurrent => concurrent(input, b, settings, figures, evidence),
        baseline => cutover(input, baseline.as_ref(), settings, figures, evidence),
    }
}

/// A bucket whose error rate is more than this many times the rest's is a burst.
const BURST_FACTOR: f64 = 3.0;

/// The input without the new release's bucket with the most errors (and the
/// baseline's bucket at the same time) when that bucket is a burst (its error rate over
/// [`BURST_FACTOR`] × the other buckets', or the only bucket so far); None otherwise. The choice depends on the data, which is why only the minimum with the
/// e-value over all buckets is used: that minimum is never above an e-value.
fn without_busiest_bucket(input: &AnalysisInput) -> Option<AnalysisInput> {
    let (at, busiest) = input.new.iter().max_by_key(|(_, s)| s.errors)?;
    let all = total(&input.new);
    let (rest_errors, rest_exposure) = (
        (all.errors - busiest.errors) as f64,
        (all.exposure - busiest.exposure) as f64,
    );
    // A single bucket is judged as a burst: nothing else to compare it with.
    let burst = if input.new.len() == 1 {
        busiest.errors > 0
    } else {
        busiest.errors as f64 * rest_exposure > BURST_FACTOR * rest_errors * busiest.exposure as f64
    };
    if !burst {
        return None;
    }
    let mut out = input.clone();
    out.new.retain(|(start, _)| start != at);
    if let Some(b) = out.baseline.as_mut() {
        b.since.retain(|(start, _)| start != at);
    }
    Some(out)
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

pub(super) fn describe_log(log_m: f64) -> String {
    if log_m.abs() < 30.0 {
        format!("{:.3}", log_m.exp())
    } else {
        format!("e^{log_m:.1}")
    }
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Latency finding: the worse verdict it implies and its evidence (DETECTION.md G):
/// regression when the share of new requests above λ × the baseline's p95 bound + δ is
/// significantly over 5 %, always valid. An insignificant comparison is plain evidence.
#[cfg(test)]
#[path = "analysis_tests.rs"]
mod tests;
