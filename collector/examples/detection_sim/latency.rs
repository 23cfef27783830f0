//! The latency test (DETECTION.md G) on simulated deploys: span durations lognormal
//! (median 20 ms, σ = 0.5, so p95 ≈ 45 ms) per request, at most 256 kept per 10 s bucket
//! as the collector's reservoir keeps them, 60 min of baseline, and the new release
//! checked after every bucket for an hour with the collector's own cut-off and e-value
//! (`detect::latency`). Scenarios: unchanged; unchanged but 30 % slower for its first
//! 3 minutes (a cold start); p95 ×1.5 and ×2 (every duration scaled, +23 and +45 ms).

use bellwether_collector::evaluate::settings::ServiceDetection;
use bellwether_detect::latency::{cutoff, log_e, p95, LatencyRule};

use super::report::{fmt_secs, percentile};
use super::rng::Rng;
use super::{Diurnal, INSTANCES, WATCH_BUCKETS};

const BASELINE_BUCKETS: usize = 360;
const KEPT_PER_BUCKET: u64 = 256;
const MEDIAN_MS: f64 = 20.0;
const SIGMA: f64 = 0.5;

#[derive(Clone, Copy)]
enum Shape {
    Unchanged,
    ColdStart,
    Slower(f64),
}

impl Shape {
    fn label(self) -> String {
        match self {
            Shape::Unchanged => "null: same distribution".to_owned(),
            Shape::ColdStart => "null: 1.3× slower for 3 min".to_owned(),
            Shape::Slower(k) => format!("p95 {k}×"),
        }
    }

    fn scale(self, bucket: usize) -> f64 {
        match self {
            Shape::Unchanged => 1.0,
            Shape::ColdStart if bucket < 18 => 1.3,
            Shape::ColdStart => 1.0,
            Shape::Slower(k) => k,
        }
    }
}

fn durations(rng: &mut Rng, rps: f64, diurnal: &Diurnal, t: f64, scale: f64) -> Vec<f64> {
    let requests = (0..INSTANCES)
        .map(|_| rng.poisson(rps * 10.0 * diurnal.traffic(t) / INSTANCES as f64))
        .sum::<u64>()
        .min(KEPT_PER_BUCKET);
    (0..requests)
        .map(|_| scale * MEDIAN_MS * (SIGMA * rng.normal()).exp())
        .collect()
}

/// Seconds after the deploy of the first latency regression, if any within the hour.
fn simulate(seed: u64, rps: f64, shape: Shape, rule: &LatencyRule) -> Option<f64> {
    let mut rng = Rng::new(seed);
    let diurnal = Diurnal::new(&mut rng);
    let t0 = 1_700_000_000.0;
    let mut baseline = Vec::new();
    for i in 0..BASELINE_BUCKETS {
        let t = t0 - ((BASELINE_BUCKETS - i) * 10) as f64;
        baseline.extend(durations(&mut rng, rps, &diurnal, t, 1.0));
    }
    let c = cutoff(&baseline, rule)?;
    let mut fresh = Vec::new();
    let mut slow = 0;
    for i in 0..WATCH_BUCKETS {
        let t = t0 + (i * 10) as f64;
        let bucket = durations(&mut rng, rps, &diurnal, t, shape.scale(i));
        slow += bucket.iter().filter(|&&d| d > c.cutoff_ms).count() as u64;
        fresh.extend(bucket);
        let n = fresh.len() as u64;
        // The p95 estimate only matters once the evidence is there; sorting is the
        // expensive part, so it is done then.
        if log_e(slow, n) >= c.log_threshold()
            && c.is_regression(slow, n, p95(&fresh).unwrap_or(0.0))
        {
            return Some((i + 1) as f64 * 10.0);
        }
    }
    None
}

pub fn report(nulls: u64, power_runs: u64, seed: u64, s: &ServiceDetection) {
    let rule = LatencyRule {
        ratio: s.latency_min_ratio,
        floor_ms: s.latency_min_rise.as_secs_f64() * 1_000.0,
        alpha: s.latency_alpha,
    };
    println!(
        "Latency: λ = {}, δ = {} ms, α = {}; lognormal durations (median {MEDIAN_MS} ms, \
         σ = {SIGMA}), ≤ {KEPT_PER_BUCKET} kept per bucket, 60 min baseline, checked every bucket",
        rule.ratio, rule.floor_ms, rule.alpha
    );
    println!();
    println!("| scenario | req/s | deploys | flagged | median time | p95 time |");
    println!("|---|---:|---:|---:|---:|---:|");
    let rates = [10.0, 100.0, 1_000.0];
    for shape in [
        Shape::Unchanged,
        Shape::ColdStart,
        Shape::Slower(1.5),
        Shape::Slower(2.0),
    ] {
        for (k, rps) in rates.iter().enumerate() {
            let runs = match shape {
                Shape::Unchanged | Shape::ColdStart => {
                    nulls / 3 + u64::from((k as u64) < nulls % 3)
                }
                Shape::Slower(_) => power_runs,
            };
            let mut times: Vec<f64> = (0..runs)
                .filter_map(|i| {
                    let salt = (*rps as u64) * 7_919 + shape.scale(0).to_bits() % 1_000_003;
                    simulate(seed ^ (salt + i * 2_654_435_761), *rps, shape, &rule)
                })
                .collect();
            times.sort_by(f64::total_cmp);
            println!(
                "| {} | {rps} | {runs} | {} ({:.2}%) | {} | {} |",
                shape.label(),
                times.len(),
                100.0 * times.len() as f64 / runs.max(1) as f64,
                fmt_secs(percentile(&times, 0.5)),
                fmt_secs(percentile(&times, 0.95)),
            );
        }
    }
}
