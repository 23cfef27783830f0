//! The verdict for a full cut-over: the public entry point the collector calls.

use std::time::Duration;

use super::cutover::floors_met;
use super::evidence::{
    ceil_u64, describe_e_value, describe_rate, duration_from_secs, human_duration, item, percent,
    rate,
};
use super::exposure::exposure_until;
use super::mixture::{finite_or_clamped, sanitize_dispersion, HEALTHY_GRID, REGRESSION_GRID};
use super::two_sample::{
    log_e_under_floor, log_healthy_mix, split_baseline, Direction, Prior, TwoSampleTest,
};

pub use crate::sample::Sample;

/// Detection settings. Out-of-range values are replaced by the defaults when used.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Tolerance ρ: a rise up to ρ× the baseline rate is not a regression.
    pub rho: f64,
    /// False-alarm probability α for a good release, however often it is checked.
    pub alpha: f64,
    /// A regression needs at least this many errors.
    pub min_errors: u64,
    /// ... and a rise of the error rate by at least this much (0.001 = +0.1 point).
    pub min_abs_rise: f64,
    /// Never healthy before this long after the deploy.
    pub min_duration: Duration,
    /// A detected regression is unhealthy (not merely degraded) from this rate ratio...
    pub severe_ratio: f64,
    /// ... or from this absolute rise of the error rate.
    pub severe_abs_rise: f64,
    /// Probability at most of calling healthy a release whose error rate rose above
    /// ρ × the baseline's (and by the absolute floor), however often it is checked.
    pub beta: f64,
    /// Without a baseline, a first release is healthy after `min_duration` and this
    /// much exposure.
    pub min_exposure_without_baseline: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            rho: 1.5,
            alpha: 0.01,
            min_errors: 5,
            min_abs_rise: 0.001,
            min_duration: Duration::from_secs(5 * 60),
            severe_ratio: 3.0,
            severe_abs_rise: 0.01,
            beta: 0.05,
            min_exposure_without_baseline: 100,
        }
    }
}

impl Thresholds {
    /// A copy where every value that would break the math (NaN, ∞, α ∉ (0, 1), ρ ≤ 0,
    /// negative rises, β ∉ (0, 1)) is replaced by its default.
    pub fn sanitized(&self) -> Self {
        let d = Self::default();
        let pick = |v: f64, ok: bool, default: f64| if ok { v } else { default };
        Self {
            rho: pick(self.rho, self.rho.is_finite() && self.rho > 0.0, d.rho),
            alpha: pick(self.alpha, self.alpha > 0.0 && self.alpha < 1.0, d.alpha),
            min_errors: self.min_errors,
            min_abs_rise: pick(
                self.min_abs_rise,
                self.min_abs_rise.is_finite() && self.min_abs_rise >= 0.0,
                d.min_abs_rise,
            ),
            min_duration: self.min_duration,
            severe_ratio: pick(
                self.severe_ratio,
                self.severe_ratio.is_finite() && self.severe_ratio > 0.0,
                d.severe_ratio,
            ),
            severe_abs_rise: pick(
                self.severe_abs_rise,
                self.severe_abs_rise.is_finite() && self.severe_abs_rise >= 0.0,
                d.severe_abs_rise,
            ),
            beta: pick(self.beta, self.beta > 0.0 && self.beta < 1.0, d.beta),
            min_exposure_without_baseline: self.min_exposure_without_baseline,
        }
    }
}

/// The outcome for a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerdictKind {
    /// Not enough evidence either way yet.
    Pending,
    /// The evidence bounds the rise below the tolerance.
    Healthy,
    /// A significant but not severe rise.
    Degraded,
    /// A significant and severe rise.
    Unhealthy,
}

impl VerdictKind {
    /// Lowercase name, as used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
        }
    }
}

/// One line of evidence: a machine-readable kind and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceItem {
    pub kind: String,
    pub summary: String,
}

/// A verdict with its evidence. All floats are finite.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub verdict: VerdictKind,
    pub evidence: Vec<EvidenceItem>,
    /// ln M (0 when nothing was compared).
    pub log_m: f64,
    /// ln of the threshold M is compared with (ln(1/α)).
    pub log_threshold: f64,
    /// ln of the healthy e-value (0 when nothing was compared).
    pub log_healthy: f64,
    /// ln(1/β), the threshold of the healthy e-value (0 when nothing was compared).
    pub log_healthy_threshold: f64,
    /// Pending only: further exposure until the nearer decision, if the rate stays.
    pub more_exposure_needed: Option<u64>,
    /// Pending only: further time, at the current traffic rate and given `min_duration`.
    pub more_time_needed: Option<Duration>,
    /// Pending only: total exposure at which the release would be shown healthy if
    /// its error rate stays as observed (with a baseline).
    pub decidable_exposure: Option<u64>,
    pub baseline_rate: Option<f64>,
    pub new_rate: Option<f64>,
    /// new rate / baseline rate; None when either is undefined or the baseline had no
    /// errors.
    pub rate_ratio: Option<f64>,
}

/// Verdict for a full cut-over with φ = 1 ([`assess_cutover_with_dispersion`]).
pub fn assess_cutover(
    baseline: &[Sample],
    new: Sample,
    elapsed: Duration,
    t: &Thresholds,
) -> Assessment {
    assess_cutover_with_dispersion(baseline, new, elapsed, t, 1.0)
}

/// Verdict for a full cut-over with counts `new` since the deploy, `elapsed` since the
/// deploy, and `baseline` the buckets of its window before the deploy, oldest first;
/// `dispersion` is φ from [`super::dispersion`] (values below 1 or not finite count as
/// 1).
///
/// Without a baseline (or one with no exposure) nothing can be compared: the release
/// is pending until `min_duration` and `min_exposure_without_baseline`, then healthy,
/// with evidence saying so. Without new exposure it is pending: errors with no
/// exposure give no rate to judge.
pub fn assess_cutover_with_dispersion(
    baseline: &[Sample],
    new: Sample,
    elapsed: Duration,
    t: &Thresholds,
    dispersion: f64,
) -> Assessment {
    let t = t.sanitized();
    let phi = sanitize_dispersion(dispersion);
    let (prior, tested) = split_baseline(baseline);
    let whole = Sample {
        exposure: prior.exposure.saturating_add(tested.exposure),
        errors: prior.errors.saturating_add(tested.errors),
    };
    let prior = Prior::from_counts(prior.errors, prior.exposure, phi);
    match TwoSampleTest::new(prior, tested, t.rho, phi) {
        Some(test) => compare(whole, &test, new, elapsed, &t),
        None => without_baseline(new, elapsed, &t),
    }
}

fn without_baseline(new: Sample, elapsed: Duration, t: &Thresholds) -> Assessment {
    let mut evidence = vec![
        item(
            "baseline",
            "no baseline: first release of this service, or the previous one served no \
             traffic; nothing to compare against"
                .to_owned(),
        ),
        item("new", format!("new error rate {}", describe_rate(&new))),
    ];
    let missing = t.min_exposure_without_baseline.saturating_sub(new.exposure);
    let ready = missing == 0 && elapsed >= t.min_duration;
    let mut a = base(new, None, (1.0 / t.alpha).ln());
    if ready {
        evidence.push(item(
            "healthy",
            format!(
                "healthy by default after {} and {} exposure: no baseline to detect a \
                 regression against",
                human_duration(elapsed),
                new.exposure
            ),
        ));
        a.verdict = VerdictKind::Healthy;
    } else {
        let time = remaining_time(missing as f64, new, elapsed, t);
        evidence.push(item("needed", needed_summary(missing, time)));
        a.more_exposure_needed = Some(missing);
        a.more_time_needed = time;
    }
    a.evidence = evidence;
    a
}

/// ln of the healthy e-value after `errors` over `exposure`: a weighted average of the
/// mirror-image ratio test and the under-the-floor test (either one rules out a
/// regression as the floors define it), weighted by the baseline's rate
/// ([`log_healthy_mix`]).
pub fn log_healthy_e(test: &TwoSampleTest, errors: f64, exposure: f64, t: &Thresholds) -> f64 {
    log_healthy_mix(
        test.log_e(Direction::Down, &HEALTHY_GRID, errors, exposure),
        log_e_under_floor(errors, exposure, t.min_abs_rise, test.dispersion),
        test.baseline_rate(),
        t.min_abs_rise,
    )
}

fn compare(
    b: Sample,
    test: &TwoSampleTest,
    new: Sample,
    elapsed: Duration,
    t: &Thresholds,
) -> Assessment {
    let baseline_rate = b.errors as f64 / b.exposure as f64;
    let (x, e) = (new.errors as f64, new.exposure as f64);
    let log_threshold = (1.0 / t.alpha).ln();
    let log_healthy_threshold = (1.0 / t.beta).ln();
    let log_up = |x: f64, e: f64| test.log_e(Direction::Up, &REGRESSION_GRID, x, e);
    let (log_m, log_h) = if new.exposure > 0 {
        (
            finite_or_clamped(log_up(x, e)),
            finite_or_clamped(log_healthy_e(test, x, e, t)),
        )
    } else {
        (0.0, 0.0)
    };
    let mut a = base(new, Some(b), log_threshold);
    a.log_m = log_m;
    a.log_healthy = log_h;
    a.log_healthy_threshold = log_healthy_threshold;
    let crossed = new.exposure > 0 && log_m >= log_threshold;
    let floors_ok = floors_met(x, e, baseline_rate, t.min_errors, t.min_abs_rise);
    let damped = if test.dispersion > 1.0 {
        format!(", evidence damped by dispersion φ = {:.2}", test.dispersion)
    } else {
        String::new()
    };
    let mut evidence = vec![
        item(
            "baseline",
            format!("baseline error rate {}", describe_rate(&b)),
        ),
        item("new", format!("new error rate {}", describe_rate(&new))),
        item(
            "ratio",
            ratio_summary(a.rate_ratio, a.new_rate, baseline_rate),
        ),
        item(
            "e_value",
            format!(
                "regression e-value M = {} vs threshold {} (1/α, α = {}; null: rate ratio ≤ \
                 ρ = {}, both releases' counts in one test{damped})",
                describe_e_value(log_m),
                describe_e_value(log_threshold),
                t.alpha,
                t.rho,
            ),
        ),
        item(
            "healthy_e_value",
            format!(
                "healthy e-value {} vs threshold {} (1/β, β = {}; null: rate ratio ≥ ρ = {} \
                 and a rise of ≥ {} points)",
                describe_e_value(log_h),
                describe_e_value(log_healthy_threshold),
                t.beta,
                t.rho,
                percent(t.min_abs_rise).trim_end_matches('%'),
            ),
        ),
    ];
    if crossed && floors_ok {
        let new_rate = x / e;
        let severe = a.rate_ratio.is_none_or(|r| r >= t.severe_ratio)
            || new_rate - baseline_rate >= t.severe_abs_rise;
        a.verdict = if severe {
            VerdictKind::Unhealthy
        } else {
            VerdictKind::Degraded
        };
        evidence.push(item(
            "regression",
            format!(
                "{} error rate regression: {} vs {}",
                if severe { "severe" } else { "significant" },
                percent(new_rate),
                percent(baseline_rate)
            ),
        ));
        a.evidence = evidence;
        return a;
    }
    if crossed {
        evidence.push(item(
            "floors",
            format!(
                "e-value crossed but the floors are not met (need ≥ {} errors and a rise \
                 of ≥ {} points)",
                t.min_errors,
                percent(t.min_abs_rise).trim_end_matches('%')
            ),
        ));
    }
    let proven = new.exposure > 0 && log_h >= log_healthy_threshold;
    if proven && elapsed >= t.min_duration {
        a.verdict = VerdictKind::Healthy;
        evidence.push(item(
            "healthy",
            format!(
                "healthy after {} exposure and {}: the evidence bounds the error rate below \
                 ρ = {} × the baseline's (or under a rise of {} points), with at most a {}% \
                 chance of passing a release whose rate rose more",
                new.exposure,
                human_duration(elapsed),
                t.rho,
                percent(t.min_abs_rise).trim_end_matches('%'),
                t.beta * 100.0
            ),
        ));
        a.evidence = evidence;
        return a;
    }
    // Pending: how far each decision is if the error rate stays as observed.
    let rate_now = a.new_rate.unwrap_or(0.0);
    let scale = e.max(b.exposure as f64 * 0.1);
    let to_regression = (rate_now - baseline_rate >= t.min_abs_rise)
        .then(|| {
            exposure_until(
                |more| {
                    let e2 = e + more;
                    log_up(rate_now * e2, e2) >= log_threshold
                        && rate_now * e2 >= t.min_errors as f64
                },
                scale,
            )
        })
        .flatten();
    let to_healthy = if proven {
        Some(0.0)
    } else {
        exposure_until(
            |more| log_healthy_e(test, rate_now * (e + more), e + more, t) >= log_healthy_threshold,
            scale,
        )
    };
    a.decidable_exposure = to_healthy.map(|m| ceil_u64(e + m));
    if let Some(more) = to_regression {
        let time = remaining_time(more, new, elapsed, t);
        evidence.push(item(
            "trend",
            format!(
                "if the error rate stays at {}, a regression is confirmed after {} more \
                 exposure{}",
                percent(rate_now),
                ceil_u64(more),
                time.map(|d| format!(" (about {})", human_duration(d)))
                    .unwrap_or_default()
            ),
        ));
    }
    let missing = match (to_regression, to_healthy) {
        (Some(r), Some(h)) => Some(r.min(h)),
        (r, h) => r.or(h),
    };
    let time = missing.and_then(|m| remaining_time(m, new, elapsed, t));
    a.more_exposure_needed = missing.map(ceil_u64);
    a.more_time_needed = time;
    let summary = match (missing, to_healthy) {
        (Some(m), Some(h)) => format!(
            "{}; if the error rate stays at {}, healthy is decided after {} more exposure",
            needed_summary(ceil_u64(m), time),
            percent(rate_now),
            ceil_u64(h)
        ),
        (Some(m), None) => format!(
            "{}; at the current error rate ({}) the release cannot be shown healthy: it \
             sits at or above the tolerance",
            needed_summary(ceil_u64(m), time),
            percent(rate_now)
        ),
        (None, _) => format!(
            "neither healthy nor a regression can be decided at the current error rate \
             ({}): it sits near the tolerance, or the baseline's window holds too few \
             errors to confirm a rise this small; the verdict stays pending",
            percent(rate_now)
        ),
    };
    evidence.push(item("needed", summary));
    a.evidence = evidence;
    a
}

/// Pending assessment with the rates filled in.
fn base(new: Sample, baseline: Option<Sample>, log_threshold: f64) -> Assessment {
    let baseline_rate = baseline.as_ref().and_then(rate);
    let new_rate = rate(&new);
    let rate_ratio = match (new_rate, baseline_rate) {
        (Some(n), Some(b)) if b > 0.0 => Some(n / b).filter(|r| r.is_finite()),
        _ => None,
    };
    Assessment {
        verdict: VerdictKind::Pending,
        evidence: Vec::new(),
        log_m: 0.0,
        log_threshold: finite_or_clamped(log_threshold),
        log_healthy: 0.0,
        log_healthy_threshold: 0.0,
        more_exposure_needed: None,
        more_time_needed: None,
        decidable_exposure: None,
        baseline_rate,
        new_rate,
        rate_ratio,
    }
}

fn ratio_summary(ratio: Option<f64>, new_rate: Option<f64>, baseline_rate: f64) -> String {
    match (ratio, new_rate) {
        (Some(r), _) => format!("rate ratio {r:.2}× (new / baseline)"),
        (None, Some(n)) if baseline_rate == 0.0 && n > 0.0 => {
            "rate ratio unbounded: the baseline had no errors".to_owned()
        }
        (None, Some(_)) => "rate ratio undefined: no errors on either side".to_owned(),
        (None, None) => "rate ratio undefined: the new release has no exposure yet".to_owned(),
    }
}

/// Time until `more` exposure has arrived at the traffic rate so far, and at least
/// until `min_duration`. None when the traffic rate is unknown and the minimum
/// duration has passed.
fn remaining_time(more: f64, new: Sample, elapsed: Duration, t: &Thresholds) -> Option<Duration> {
    let floor = t.min_duration.saturating_sub(elapsed);
    let secs = elapsed.as_secs_f64();
    let traffic = (new.exposure > 0 && secs > 0.0).then(|| new.exposure as f64 / secs);
    let for_exposure = match traffic {
        Some(rate) => duration_from_secs(more / rate),
        None if more <= 0.0 => Some(Duration::ZERO),
        None => None,
    };
    match for_exposure {
        Some(d) => Some(d.max(floor)),
        None if floor > Duration::ZERO && more <= 0.0 => Some(floor),
        None => None,
    }
}

fn needed_summary(more: u64, time: Option<Duration>) -> String {
    match time {
        Some(d) => format!(
            "{more} more exposure needed, about {} at the current traffic rate and minimum \
             duration",
            human_duration(d)
        ),
        None => format!("{more} more exposure needed (traffic rate not known yet)"),
    }
}
