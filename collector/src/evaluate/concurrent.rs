//! Case B in the judgement: the new release and its baseline serving at the same time,
//! compared bucket by bucket ([`ConcurrentTest`]), in both directions.

use std::time::Duration;

use bellwether_detect::exposure::exposure_until;
use bellwether_detect::two_sample::{log_e_under_floor, log_healthy_mix};
use bellwether_detect::{dispersion_upper, ConcurrentTest, Direction, Sample};
use bellwether_model::health::{Evidence, Figures, Verdict};

use crate::evaluate::analysis::{
    describe_log, finite, millis, ratio_interval, side, total, AnalysisInput, BaselineInput,
    Buckets,
};
use crate::evaluate::settings::ServiceDetection;

/// Case B over the buckets of both versions, paired by start (both lists sorted).
pub(super) fn paired(news: &Buckets, bases: &Buckets, rho: f64) -> ConcurrentTest {
    let mut test = ConcurrentTest::new(rho);
    let (mut i, mut j) = (0, 0);
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
    test
}

pub(super) fn concurrent(
    input: &AnalysisInput,
    baseline: &BaselineInput,
    settings: &ServiceDetection,
    figures: &mut Figures,
    evidence: &mut Vec<Evidence>,
) -> Verdict {
    let t = &settings.thresholds;
    let test = paired(&input.new, &baseline.since, t.rho);
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
    // The healthy test's weights depend on the baseline's rate before the deploy only.
    let before = total(&baseline.before);
    let before_rate = side(before).rate.unwrap_or(0.0);
    let log_healthy = |more: f64| {
        let ratio = if more == 0.0 {
            Some(test.log_e(Direction::Down, phi))
        } else {
            test.log_e_after(Direction::Down, more, phi)
        };
        let e = new.exposure as f64 + more;
        let x = new_rate.unwrap_or(0.0) * e;
        log_healthy_mix(
            ratio.unwrap_or(f64::NEG_INFINITY),
            log_e_under_floor(x, e, t.min_abs_rise, phi),
            before_rate,
            t.min_abs_rise,
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
