//! Detection simulation: replays simulated deploys through the evaluator's own analysis
//! (`bellwether_collector::evaluate::analysis::judge`, with the same baseline-method
//! choice and issue streaks) and prints false-alarm rate, power, time-to-verdict and
//! time-to-verdict relative to an oracle.
//!
//! ```sh
//! cargo run --release -p bellwether-collector --example detection_sim
//! cargo run --release -p bellwether-collector --example detection_sim -- --null 2000 --power 100 --seed 7
//! ```
//!
//! Traffic model, per 10 s bucket and per instance (4 instances): Poisson request
//! arrivals at the nominal rate × a diurnal factor (±50 % over a day, random phase);
//! errors Poisson at requests × the release's error probability (1 % baseline) × a
//! diurnal drift of the error rate (±25 % over a day, another random phase); and bursts
//! of a noisy existing error (on each instance, with probability 1 % × its traffic share
//! per bucket, Poisson(10) errors at once) in every release. A deploy has 60 min of
//! baseline before it and is watched for 60 min after it, evaluated after every bucket.
//! Canary: the new release takes 10 % of the traffic and the baseline keeps 90 %;
//! cut-over: the new release takes everything.
//!
//! The oracle for a deploy is the first evaluation at which one fixed-sample one-sided
//! exact Poisson test at the same α, knowing the true baseline rate, rejects
//! "new rate ≤ ρ × baseline" (with the same floors); for a new error signature, the
//! first evaluation where its count reaches the floors. Time-to-verdict ÷ oracle is the
//! price of looking continuously without inflating the false-alarm rate.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bellwether_collector::detect::special::{gamma_p, ln_gamma};
use bellwether_collector::detect::Sample;
use bellwether_collector::evaluate::analysis::{judge, AnalysisInput, BaselineInput};
use bellwether_collector::evaluate::baseline::choose_method;
use bellwether_collector::evaluate::settings::ServiceDetection;
use bellwether_collector::evaluate::signatures::{IssueClass, IssueObservation, Streaks};
use bellwether_collector::health::Verdict;

const BUCKET_MS: i64 = 10_000;
const BASELINE_BUCKETS: usize = 360;
const WATCH_BUCKETS: usize = 360;
const INSTANCES: usize = 4;
const BASE_ERROR: f64 = 0.01;
const CANARY_SHARE: f64 = 0.1;
const BURST_PROBABILITY: f64 = 0.01;
const BURST_MEAN: f64 = 10.0;
const NEW_ERROR_RATE: f64 = 0.001;

/// xoshiro256** seeded through SplitMix64: small, fast, the same on every platform.
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Poisson(λ): multiplication for small λ, PTRS (Hörmann 1993) above.
    fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda.is_nan() || lambda <= 0.0 {
            return 0;
        }
        if lambda < 10.0 {
            let limit = (-lambda).exp();
            let mut k = 0;
            let mut p = self.uniform();
            while p > limit {
                k += 1;
                p *= self.uniform();
            }
            return k;
        }
        let slam = lambda.sqrt();
        let loglam = lambda.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
        let vr = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.uniform();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
            if us >= 0.07 && v <= vr {
                return k as u64;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            if v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln()
                <= -lambda + k * loglam - ln_gamma(k + 1.0)
            {
                return k as u64;
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Effect {
    Null,
    Spike(f64),
    NewError,
}

impl Effect {
    fn label(self) -> String {
        match self {
            Effect::Null => "null".to_owned(),
            Effect::Spike(r) => format!("{r}× errors"),
            Effect::NewError => "new error 0.1%".to_owned(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Canary,
    Cutover,
}

struct Outcome {
    /// Seconds after the deploy of the first degraded/unhealthy verdict.
    alarm: Option<f64>,
    /// Seconds after the deploy at which the oracle rejects.
    oracle: Option<f64>,
}

struct Diurnal {
    traffic_phase: f64,
    error_phase: f64,
}

impl Diurnal {
    fn traffic(&self, t_secs: f64) -> f64 {
        1.0 + 0.5 * (std::f64::consts::TAU * t_secs / 86_400.0 + self.traffic_phase).sin()
    }
    fn error(&self, t_secs: f64) -> f64 {
        1.0 + 0.25 * (std::f64::consts::TAU * t_secs / 86_400.0 + self.error_phase).sin()
    }
}

#[allow(clippy::too_many_arguments)] // one call site, every value distinct
/// One bucket of one release over all instances: (requests, errors, new-error count,
/// instances that saw the new error).
fn bucket(
    rng: &mut Rng,
    rps: f64,
    share: f64,
    error_p: f64,
    new_error_p: f64,
    t_secs: f64,
    diurnal: &Diurnal,
    new_error_instances: &mut BTreeSet<usize>,
) -> (Sample, u64) {
    let per_instance = rps * 10.0 * share * diurnal.traffic(t_secs) / INSTANCES as f64;
    let p = error_p * diurnal.error(t_secs);
    let mut sample = Sample::default();
    let mut new_errors = 0;
    for instance in 0..INSTANCES {
        let requests = rng.poisson(per_instance);
        let mut errors = rng.poisson(requests as f64 * p);
        if rng.uniform() < BURST_PROBABILITY * share {
            errors += rng.poisson(BURST_MEAN);
        }
        let fresh = rng.poisson(requests as f64 * new_error_p);
        if fresh > 0 {
            new_error_instances.insert(instance);
        }
        new_errors += fresh;
        sample.exposure += requests;
        sample.errors += errors + fresh;
    }
    (sample, new_errors)
}

fn floors_met(errors: u64, exposure: u64, baseline_rate: f64, s: &ServiceDetection) -> bool {
    exposure > 0
        && errors >= s.thresholds.min_errors
        && errors as f64 / exposure as f64 - baseline_rate >= s.thresholds.min_abs_rise
}

fn simulate(
    seed: u64,
    rps: f64,
    mode: Mode,
    effect: Effect,
    s: &ServiceDetection,
    stop_early: bool,
) -> Outcome {
    let mut rng = Rng::new(seed);
    let diurnal = Diurnal {
        traffic_phase: rng.uniform() * std::f64::consts::TAU,
        error_phase: rng.uniform() * std::f64::consts::TAU,
    };
    let deploy_ms: i64 = 1_700_000_000_000 / BUCKET_MS * BUCKET_MS;
    let mut sink = BTreeSet::new();
    let mut before = Vec::with_capacity(BASELINE_BUCKETS);
    for i in 0..BASELINE_BUCKETS {
        let start = deploy_ms - (BASELINE_BUCKETS - i) as i64 * BUCKET_MS;
        let t = (start / 1000) as f64;
        let (sample, _) = bucket(&mut rng, rps, 1.0, BASE_ERROR, 0.0, t, &diurnal, &mut sink);
        before.push((start, sample));
    }
    let (new_p, new_error_p) = match effect {
        Effect::Null => (BASE_ERROR, 0.0),
        Effect::Spike(r) => (BASE_ERROR * r, 0.0),
        Effect::NewError => (BASE_ERROR, NEW_ERROR_RATE),
    };
    let new_share = match mode {
        Mode::Canary => CANARY_SHARE,
        Mode::Cutover => 1.0,
    };
    let mut input = AnalysisInput {
        elapsed: Duration::ZERO,
        exposure_kind: "server_spans",
        method: bellwether_collector::evaluate::analysis::Method::Cutover,
        baseline: Some(BaselineInput {
            version: "1".into(),
            before,
            ..BaselineInput::default()
        }),
        new: Vec::with_capacity(WATCH_BUCKETS),
        issues: Vec::new(),
        latency_ms: Vec::new(),
    };
    let mut streaks = Streaks::default();
    let mut new_error_count = 0u64;
    let mut new_error_instances = BTreeSet::new();
    let (mut exposure, mut errors) = (0u64, 0u64);
    let true_null = s.thresholds.rho * BASE_ERROR;
    let mut outcome = Outcome {
        alarm: None,
        oracle: None,
    };
    for i in 0..WATCH_BUCKETS {
        let start = deploy_ms + i as i64 * BUCKET_MS;
        let t = (start / 1000) as f64;
        let (sample, fresh) = bucket(
            &mut rng,
            rps,
            new_share,
            new_p,
            new_error_p,
            t,
            &diurnal,
            &mut new_error_instances,
        );
        input.new.push((start, sample));
        if mode == Mode::Canary {
            let (base, _) = bucket(
                &mut rng,
                rps,
                1.0 - CANARY_SHARE,
                BASE_ERROR,
                0.0,
                t,
                &diurnal,
                &mut sink,
            );
            if let Some(b) = input.baseline.as_mut() {
                b.since.push((start, base));
            }
        }
        new_error_count += fresh;
        exposure += sample.exposure;
        errors += sample.errors;
        let now_ms = start + BUCKET_MS;
        let secs = (i + 1) as f64 * 10.0;
        input.elapsed = Duration::from_millis((now_ms - deploy_ms) as u64);
        input.method = choose_method(
            input.baseline.as_ref().map_or(&[][..], |b| &b.since[..]),
            deploy_ms,
            now_ms,
        );
        input.issues.clear();
        if new_error_count > 0 {
            input.issues.push(IssueObservation {
                fingerprint: "0123456789abcdef".into(),
                title: "PaymentDeclined: card {num} declined".into(),
                class: IssueClass::New,
                count: new_error_count,
                instances: new_error_instances.len() as u32,
                sample: None,
            });
        }
        let judgement = judge(&input, s, streaks.get());
        streaks.advance(&judgement.crossed);
        if outcome.alarm.is_none()
            && matches!(judgement.verdict, Verdict::Degraded | Verdict::Unhealthy)
        {
            outcome.alarm = Some(secs);
        }
        if outcome.oracle.is_none() {
            let rejects = match effect {
                Effect::NewError => {
                    new_error_count >= s.thresholds.min_errors
                        && new_error_count as f64 / exposure as f64 >= s.new_issue_min_rate
                }
                _ => {
                    errors > 0
                        && gamma_p(errors as f64, true_null * exposure as f64) <= s.thresholds.alpha
                        && floors_met(errors, exposure, BASE_ERROR, s)
                }
            };
            if rejects {
                outcome.oracle = Some(secs);
            }
        }
        if stop_early && outcome.alarm.is_some() && outcome.oracle.is_some() {
            break;
        }
    }
    outcome
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(idx).copied()
}

fn fmt_secs(v: Option<f64>) -> String {
    match v {
        None => "–".to_owned(),
        Some(s) if s >= 60.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{s:.0} s"),
    }
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let nulls = arg(&args, "--null", 2_000);
    let power_runs = arg(&args, "--power", 100);
    let seed = arg(&args, "--seed", 1);
    let settings = ServiceDetection::default();
    let started = Instant::now();
    let rates = [10.0, 100.0, 1_000.0];

    println!(
        "Detection simulation: seed {seed}, {nulls} null deploys, {power_runs} deploys per power cell; \
         ρ = {}, α = {}, min_duration = {}s, baseline 1% errors, 4 instances, 60 min watched",
        settings.thresholds.rho,
        settings.thresholds.alpha,
        settings.thresholds.min_duration.as_secs()
    );
    println!();
    println!("| scenario | mode | req/s | deploys | alarms | rate |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut total_alarms = 0;
    for mode in [Mode::Cutover, Mode::Canary] {
        for (k, rps) in rates.iter().enumerate() {
            let runs = nulls / 6 + u64::from((k as u64) < nulls % 6);
            let mut alarms = 0;
            for i in 0..runs {
                let s = seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add(i * 7 + k as u64 * 1_000_000 + mode as u64 * 10_000_000);
                if simulate(s, *rps, mode, Effect::Null, &settings, false)
                    .alarm
                    .is_some()
                {
                    alarms += 1;
                }
            }
            total_alarms += alarms;
            println!(
                "| null (drift + bursts) | {mode:?} | {rps} | {runs} | {alarms} | {:.2}% |",
                100.0 * alarms as f64 / runs.max(1) as f64
            );
        }
    }
    println!(
        "| **all null deploys** | | | {nulls} | {total_alarms} | **{:.2}%** (α = {}%) |",
        100.0 * total_alarms as f64 / nulls.max(1) as f64,
        settings.thresholds.alpha * 100.0
    );
    println!();
    println!(
        "| effect | mode | req/s | detected | median time | p95 time | median oracle | median time ÷ oracle |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let effects = [
        Effect::Spike(1.5),
        Effect::Spike(2.0),
        Effect::Spike(3.0),
        Effect::Spike(10.0),
        Effect::NewError,
    ];
    for effect in effects {
        for mode in [Mode::Cutover, Mode::Canary] {
            for (k, rps) in rates.iter().enumerate() {
                let mut times = Vec::new();
                let mut oracles = Vec::new();
                let mut ratios = Vec::new();
                for i in 0..power_runs {
                    let s = seed
                        .wrapping_mul(7_919)
                        .wrapping_add(i * 13 + k as u64 * 100_000 + 1_000_000_000);
                    let o = simulate(s, *rps, mode, effect, &settings, true);
                    if let Some(t) = o.alarm {
                        times.push(t);
                    }
                    if let Some(t) = o.oracle {
                        oracles.push(t);
                    }
                    if let (Some(t), Some(or)) = (o.alarm, o.oracle) {
                        ratios.push(t / or);
                    }
                }
                for v in [&mut times, &mut oracles, &mut ratios] {
                    v.sort_by(f64::total_cmp);
                }
                println!(
                    "| {} | {mode:?} | {rps} | {:.0}% | {} | {} | {} | {} |",
                    effect.label(),
                    100.0 * times.len() as f64 / power_runs.max(1) as f64,
                    fmt_secs(percentile(&times, 0.5)),
                    fmt_secs(percentile(&times, 0.95)),
                    fmt_secs(percentile(&oracles, 0.5)),
                    percentile(&ratios, 0.5).map_or("–".to_owned(), |r| format!("{r:.2}")),
                );
            }
        }
    }
    println!();
    println!("finished in {:.0} s", started.elapsed().as_secs_f64());
}
