//! Detection simulation: replays simulated deploys through the evaluator's own analysis
//! (`bellwether_collector::evaluate::analysis::judge`, with the same baseline-method
//! choice and issue streaks) and prints, per cell, the false-alarm rate, how often the
//! gate would have passed, the time to a regression verdict and to healthy, each next
//! to a fixed-sample reference; then the latency test's figures (`latency.rs`).
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
//! per bucket, Poisson(10) errors at once) in every release. A deploy has 60 min (or 5
//! min) of baseline before it and is watched for 60 min after it, evaluated after every
//! bucket. Canary: the new release takes 10 % of the traffic and the baseline keeps
//! 90 %; cut-over: the new release takes everything.
//!
//! References, both fixed-sample tests that know the true baseline rate (its drift and
//! its bursts' mean over the same buckets) and look at every bucket for free:
//! - the oracle: the first evaluation at which a one-sided exact Poisson test at α
//!   rejects "new rate ≤ ρ × true baseline rate" (with the same floors); for a new error
//!   signature, the first evaluation where its count reaches the floors;
//! - the equivalence test: the first evaluation at which a one-sided exact Poisson test
//!   at β rejects "new rate ≥ ρ × true baseline rate".

mod latency;
mod report;
mod rng;

use report::{arg, fmt_secs, pct, percentile, sorted, text_arg};

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bellwether_collector::evaluate::analysis::{judge, AnalysisInput, BaselineInput, Method};
use bellwether_collector::evaluate::baseline::choose_method;
use bellwether_collector::evaluate::settings::ServiceDetection;
use bellwether_collector::evaluate::signatures::{IssueClass, IssueObservation, Streaks};
use bellwether_collector::evaluate::steady::FingerprintSeries;
use bellwether_detect::special::{gamma_p, gamma_q};
use bellwether_detect::Sample;
use bellwether_model::health::Verdict;

use rng::Rng;

pub const BUCKET_MS: i64 = 10_000;
pub const WATCH_BUCKETS: usize = 360;
pub const INSTANCES: usize = 4;
const BASE_ERROR: f64 = 0.01;
const CANARY_SHARE: f64 = 0.1;
const BURST_PROBABILITY: f64 = 0.01;
const BURST_MEAN: f64 = 10.0;
const NEW_ERROR_RATE: f64 = 0.001;

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

/// One cell's traffic: mode, nominal rate and the baseline's minutes before the deploy.
#[derive(Clone, Copy, Debug)]
struct Cell {
    mode: Mode,
    rps: f64,
    baseline_minutes: usize,
}

impl Cell {
    fn label(&self) -> String {
        format!(
            "{:?} | {} min | {}",
            self.mode, self.baseline_minutes, self.rps
        )
    }
}

#[derive(Default)]
struct Outcome {
    /// Seconds after the deploy of the first degraded/unhealthy verdict.
    alarm: Option<f64>,
    /// Seconds after the deploy at which the oracle rejects.
    oracle: Option<f64>,
    /// Seconds after the deploy at which the healthy e-value first reached 1/β before
    /// any alarm: where a gate with no minimum duration passes.
    healthy: Option<f64>,
    /// Seconds after the deploy at which the fixed-sample equivalence test decides.
    equivalence: Option<f64>,
}

pub struct Diurnal {
    traffic_phase: f64,
    error_phase: f64,
}

impl Diurnal {
    pub fn new(rng: &mut Rng) -> Self {
        Self {
            traffic_phase: rng.uniform() * std::f64::consts::TAU,
            error_phase: rng.uniform() * std::f64::consts::TAU,
        }
    }
    pub fn traffic(&self, t_secs: f64) -> f64 {
        1.0 + 0.5 * (std::f64::consts::TAU * t_secs / 86_400.0 + self.traffic_phase).sin()
    }
    fn error(&self, t_secs: f64) -> f64 {
        1.0 + 0.25 * (std::f64::consts::TAU * t_secs / 86_400.0 + self.error_phase).sin()
    }
}

/// One bucket of one release's traffic.
struct Bucket {
    sample: Sample,
    new_errors: u64,
    /// Errors of the noisy fingerprint's bursts (the rest of `sample.errors` minus
    /// `new_errors` is the main fingerprint).
    burst_errors: u64,
    /// The errors a release at the baseline's rate would expect for these requests.
    baseline_like_mean: f64,
}

#[allow(clippy::too_many_arguments)] // one call site per release side, every value distinct
fn bucket(
    rng: &mut Rng,
    rps: f64,
    share: f64,
    error_p: f64,
    new_error_p: f64,
    t_secs: f64,
    diurnal: &Diurnal,
    new_error_instances: &mut BTreeSet<usize>,
) -> Bucket {
    let per_instance = rps * 10.0 * share * diurnal.traffic(t_secs) / INSTANCES as f64;
    let drift = diurnal.error(t_secs);
    let mut out = Bucket {
        sample: Sample::default(),
        new_errors: 0,
        burst_errors: 0,
        baseline_like_mean: 0.0,
    };
    for instance in 0..INSTANCES {
        let requests = rng.poisson(per_instance);
        let mut errors = rng.poisson(requests as f64 * error_p * drift);
        if rng.uniform() < BURST_PROBABILITY * share {
            let burst = rng.poisson(BURST_MEAN);
            errors += burst;
            out.burst_errors += burst;
        }
        let fresh = rng.poisson(requests as f64 * new_error_p);
        if fresh > 0 {
            new_error_instances.insert(instance);
        }
        out.new_errors += fresh;
        out.sample.exposure += requests;
        out.sample.errors += errors + fresh;
        out.baseline_like_mean +=
            requests as f64 * BASE_ERROR * drift + BURST_PROBABILITY * share * BURST_MEAN;
    }
    out
}

fn floors_met(errors: u64, exposure: u64, baseline_rate: f64, s: &ServiceDetection) -> bool {
    exposure > 0
        && errors >= s.thresholds.min_errors
        && errors as f64 / exposure as f64 - baseline_rate >= s.thresholds.min_abs_rise
}

fn simulate(seed: u64, cell: Cell, effect: Effect, s: &ServiceDetection) -> Outcome {
    let mut rng = Rng::new(seed);
    let diurnal = Diurnal::new(&mut rng);
    let deploy_ms: i64 = 1_700_000_000_000 / BUCKET_MS * BUCKET_MS;
    let mut sink = BTreeSet::new();
    let baseline_buckets = cell.baseline_minutes * 6;
    let mut main_fp = FingerprintSeries {
        fingerprint: "main".into(),
        ..FingerprintSeries::default()
    };
    let mut noisy_fp = FingerprintSeries {
        fingerprint: "noisy".into(),
        ..FingerprintSeries::default()
    };
    let before: Vec<(i64, Sample)> = (0..baseline_buckets)
        .map(|i| {
            let start = deploy_ms - (baseline_buckets - i) as i64 * BUCKET_MS;
            let t = (start / 1000) as f64;
            let b = bucket(
                &mut rng, cell.rps, 1.0, BASE_ERROR, 0.0, t, &diurnal, &mut sink,
            );
            main_fp
                .before
                .push((start, b.sample.errors - b.burst_errors));
            noisy_fp.before.push((start, b.burst_errors));
            (start, b.sample)
        })
        .collect();
    let (new_p, new_error_p) = match effect {
        Effect::Null => (BASE_ERROR, 0.0),
        Effect::Spike(r) => (BASE_ERROR * r, 0.0),
        Effect::NewError => (BASE_ERROR, NEW_ERROR_RATE),
    };
    let new_share = match cell.mode {
        Mode::Canary => CANARY_SHARE,
        Mode::Cutover => 1.0,
    };
    let mut input = AnalysisInput {
        elapsed: Duration::ZERO,
        exposure_kind: "server_spans",
        method: Method::Cutover,
        baseline: Some(BaselineInput {
            version: "1".into(),
            before,
            fingerprints: vec![main_fp, noisy_fp],
            ..BaselineInput::default()
        }),
        new: Vec::with_capacity(WATCH_BUCKETS),
        issues: Vec::new(),
        latency_ms: Vec::new(),
        dependencies: Vec::new(),
        flags: Vec::new(),
    };
    let mut streaks = Streaks::default();
    let mut new_error_count = 0u64;
    let mut new_error_instances = BTreeSet::new();
    let (mut exposure, mut errors, mut null_mean) = (0u64, 0u64, 0.0);
    let rho = s.thresholds.rho;
    let mut outcome = Outcome::default();
    for i in 0..WATCH_BUCKETS {
        let start = deploy_ms + i as i64 * BUCKET_MS;
        let t = (start / 1000) as f64;
        let b = bucket(
            &mut rng,
            cell.rps,
            new_share,
            new_p,
            new_error_p,
            t,
            &diurnal,
            &mut new_error_instances,
        );
        input.new.push((start, b.sample));
        if let Some(baseline) = input.baseline.as_mut() {
            let main = b.sample.errors - b.burst_errors - b.new_errors;
            baseline.fingerprints[0].new.push((start, main));
            baseline.fingerprints[1].new.push((start, b.burst_errors));
        }
        if cell.mode == Mode::Canary {
            let base = bucket(
                &mut rng,
                cell.rps,
                1.0 - CANARY_SHARE,
                BASE_ERROR,
                0.0,
                t,
                &diurnal,
                &mut sink,
            );
            if let Some(baseline) = input.baseline.as_mut() {
                baseline.since.push((start, base.sample));
                let main = base.sample.errors - base.burst_errors;
                baseline.fingerprints[0].since.push((start, main));
                baseline.fingerprints[1]
                    .since
                    .push((start, base.burst_errors));
            }
        }
        new_error_count += b.new_errors;
        exposure += b.sample.exposure;
        errors += b.sample.errors;
        null_mean += rho * b.baseline_like_mean;
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
        let alarmed = matches!(judgement.verdict, Verdict::Degraded | Verdict::Unhealthy);
        if outcome.alarm.is_none() && alarmed {
            outcome.alarm = Some(secs);
        }
        let f = &judgement.figures;
        if outcome.alarm.is_none()
            && outcome.healthy.is_none()
            && f.log_healthy_threshold > 0.0
            && f.log_healthy_e_value >= f.log_healthy_threshold
        {
            outcome.healthy = Some(secs);
        }
        if outcome.oracle.is_none() {
            let rejects = match effect {
                Effect::NewError => {
                    new_error_count >= s.thresholds.min_errors
                        && new_error_count as f64 / exposure as f64 >= s.new_issue_min_rate
                }
                _ => {
                    errors > 0
                        && gamma_p(errors as f64, null_mean) <= s.thresholds.alpha
                        && floors_met(errors, exposure, BASE_ERROR, s)
                }
            };
            if rejects {
                outcome.oracle = Some(secs);
            }
        }
        if outcome.equivalence.is_none()
            && exposure > 0
            && gamma_q(errors as f64 + 1.0, null_mean) <= s.thresholds.beta
        {
            outcome.equivalence = Some(secs);
        }
        let done_alarm = outcome.alarm.is_some() && outcome.oracle.is_some();
        let done_healthy = outcome.healthy.is_some() && outcome.equivalence.is_some();
        if done_alarm || (done_healthy && effect == Effect::Null) {
            break;
        }
    }
    outcome
}

/// Runs `runs` deploys of one cell and effect; seeds depend on the cell and effect only.
fn run_cell(
    cell: Cell,
    effect: Effect,
    runs: u64,
    seed: u64,
    s: &ServiceDetection,
) -> Vec<Outcome> {
    let salt = (cell.rps as u64) * 1_000_003
        + cell.baseline_minutes as u64 * 7_919
        + cell.mode as u64 * 104_729
        + match effect {
            Effect::Null => 0,
            Effect::Spike(r) => (r * 1_000.0) as u64,
            Effect::NewError => 999_983,
        } * 13;
    (0..runs)
        .map(|i| {
            simulate(
                seed.wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(salt)
                    .wrapping_add(i * 2_654_435_761),
                cell,
                effect,
                s,
            )
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let nulls = arg(&args, "--null", 2_000);
    let power_runs = arg(&args, "--power", 100);
    let seed = arg(&args, "--seed", 1);
    let settings = ServiceDetection::default();
    let t = &settings.thresholds;
    let started = Instant::now();
    let mut cells = Vec::new();
    for (mode, minutes) in [(Mode::Cutover, 60), (Mode::Cutover, 5), (Mode::Canary, 60)] {
        for rps in [10.0, 100.0, 1_000.0] {
            cells.push(Cell {
                mode,
                rps,
                baseline_minutes: minutes,
            });
        }
    }
    // Filters for quicker runs while tuning: `--cells "Cutover | 5 min"`, `--effects
    // "null,2×"` (substrings of the labels), `--no-latency`.
    let wanted = |name: &str, label: &str| {
        text_arg(&args, name).is_none_or(|f| f.split(',').any(|part| label.contains(part)))
    };
    cells.retain(|c| wanted("--cells", &c.label()));

    println!(
        "Detection simulation: seed {seed}, {nulls} null deploys, {power_runs} deploys per \
         effect cell; ρ = {}, α = {}, β = {}, min_duration = {}s, baseline 1% errors, 4 \
         instances, 60 min watched",
        t.rho,
        t.alpha,
        t.beta,
        t.min_duration.as_secs()
    );
    println!();
    println!(
        "| scenario | mode | baseline | req/s | deploys | alarms | alarm rate | gate passed | \
         median time to healthy | median fixed-sample equivalence |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut total_alarms = 0;
    for (k, cell) in cells.iter().enumerate() {
        if !wanted("--effects", "null") {
            break;
        }
        let runs = nulls / cells.len() as u64 + u64::from((k as u64) < nulls % cells.len() as u64);
        let outcomes = run_cell(*cell, Effect::Null, runs, seed, &settings);
        let alarms = outcomes.iter().filter(|o| o.alarm.is_some()).count();
        let passed = outcomes.iter().filter(|o| o.healthy.is_some()).count();
        total_alarms += alarms;
        let healthy = sorted(outcomes.iter().filter_map(|o| o.healthy));
        let equivalence = sorted(outcomes.iter().filter_map(|o| o.equivalence));
        println!(
            "| null (drift + bursts) | {} | {runs} | {alarms} | {} | {} | {} | {} |",
            cell.label(),
            pct(alarms, runs),
            pct(passed, runs),
            fmt_secs(percentile(&healthy, 0.5)),
            fmt_secs(percentile(&equivalence, 0.5)),
        );
    }
    println!(
        "| **all null deploys** | | | | {nulls} | {total_alarms} | **{}** (α = {}%) | | | |",
        pct(total_alarms, nulls),
        t.alpha * 100.0
    );
    println!();
    println!(
        "| effect | mode | baseline | req/s | detected | gate passed | median time | p95 time | \
         median oracle | median time ÷ oracle | median time to healthy |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let effects = [
        Effect::Spike(1.5),
        Effect::Spike(2.0),
        Effect::Spike(3.0),
        Effect::Spike(10.0),
        Effect::NewError,
    ];
    for effect in effects {
        if !wanted("--effects", &effect.label()) {
            continue;
        }
        for cell in &cells {
            let outcomes = run_cell(*cell, effect, power_runs, seed, &settings);
            let times = sorted(outcomes.iter().filter_map(|o| o.alarm));
            let oracles = sorted(outcomes.iter().filter_map(|o| o.oracle));
            let ratios = sorted(outcomes.iter().filter_map(|o| Some(o.alarm? / o.oracle?)));
            let healthy = sorted(outcomes.iter().filter_map(|o| o.healthy));
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                effect.label(),
                cell.label(),
                pct(times.len(), power_runs),
                pct(healthy.len(), power_runs),
                fmt_secs(percentile(&times, 0.5)),
                fmt_secs(percentile(&times, 0.95)),
                fmt_secs(percentile(&oracles, 0.5)),
                percentile(&ratios, 0.5).map_or("–".to_owned(), |r| format!("{r:.2}")),
                fmt_secs(percentile(&healthy, 0.5)),
            );
        }
    }
    println!();
    if !args.iter().any(|a| a == "--no-latency") {
        latency::report(nulls, power_runs, seed, &settings);
    }
    println!();
    println!("finished in {:.0} s", started.elapsed().as_secs_f64());
}
