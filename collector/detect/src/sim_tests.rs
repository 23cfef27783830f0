//! Deterministic Monte-Carlo checks of the promises: on a good release (true ratio 1 or
//! exactly ρ) the chance of *ever* alarming while checked every bucket stays ≤ α; on a
//! release at or above ρ the chance of *ever* being called healthy stays ≤ β; a 5×
//! spike is caught with high power, and not much later than an oracle (DETECTION.md F:
//! the first bucket at which a fixed-sample exact Poisson test at level α, knowing the
//! true baseline rate, rejects). Run with `--nocapture` to see the figures.

use super::concurrent::ConcurrentTest;
use super::cutover::floors_met;
use super::dispersion::dispersion;
use super::mixture::{HEALTHY_GRID, REGRESSION_GRID};
use super::special::gamma_p;
use super::two_sample::{split_baseline, Direction, Prior, TwoSampleTest};
use super::verdict::Sample;

const ALPHA: f64 = 0.01;
const BETA: f64 = 0.05;
const RHO: f64 = 1.5;
const BUCKETS: usize = 360; // one hour of 10 s buckets

/// xorshift64*: tiny, deterministic, good enough for these tests.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Poisson(λ) by Knuth's product method, in chunks of λ ≤ 30 (a sum of independent
    /// Poissons is Poisson) so e^(−λ) never underflows.
    fn poisson(&mut self, lambda: f64) -> u64 {
        let mut left = lambda.max(0.0);
        let mut total = 0;
        while left > 0.0 {
            let l = left.min(30.0);
            left -= l;
            let limit = (-l).exp();
            let mut p = self.uniform();
            while p > limit {
                total += 1;
                p *= self.uniform();
            }
        }
        total
    }

    /// Compound Poisson: bursts at rate λ / mean size, each of 1..=max_size errors.
    fn bursty(&mut self, lambda: f64, max_size: u64) -> u64 {
        let mean_size = (max_size + 1) as f64 / 2.0;
        (0..self.poisson(lambda / mean_size))
            .map(|_| 1 + self.next_u64() % max_size)
            .sum()
    }
}

/// The promises are exact bounds on probabilities; a Monte-Carlo estimate over `runs`
/// deploys is allowed three standard errors above the bound, so that a test near its
/// bound (as a mixture with weight near the null is) does not fail by chance.
fn within(rate: f64, bound: f64, runs: usize) -> bool {
    rate <= bound + 3.0 * (bound * (1.0 - bound) / runs as f64).sqrt()
}

/// Oracle: P(Poisson(μ0·E) ≥ X) ≤ α with μ0 = ρ × the true baseline rate.
fn oracle_rejects(errors: u64, null_mean: f64) -> bool {
    errors > 0 && gamma_p(errors as f64, null_mean) <= ALPHA
}

#[derive(Default)]
struct Tally {
    runs: usize,
    alarms: usize,
    /// Runs ever called healthy (the mirror-image test crossing 1/β) before an alarm.
    healthy: usize,
    delays: Vec<usize>,
    oracle: Vec<usize>,
}

impl Tally {
    fn rate(&self) -> f64 {
        self.alarms as f64 / self.runs as f64
    }

    fn healthy_rate(&self) -> f64 {
        self.healthy as f64 / self.runs as f64
    }

    fn mean(v: &[usize]) -> f64 {
        v.iter().sum::<usize>() as f64 / v.len().max(1) as f64
    }

    fn median(v: &[usize]) -> usize {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(usize::MAX)
    }

    fn report(&self, name: &str) {
        if self.delays.is_empty() {
            eprintln!(
                "{name}: alarm rate 0 (0/{}), healthy rate {:.4}",
                self.runs,
                self.healthy_rate()
            );
            return;
        }
        eprintln!(
            "{name}: alarm rate {:.4} ({}/{}), healthy rate {:.4}, delay mean {:.1} median {} \
             buckets, oracle mean {:.1} median {}, ratio of means {:.2}",
            self.rate(),
            self.alarms,
            self.runs,
            self.healthy_rate(),
            Self::mean(&self.delays),
            Self::median(&self.delays),
            Self::mean(&self.oracle),
            Self::median(&self.oracle),
            Self::mean(&self.delays) / Self::mean(&self.oracle).max(1e-9),
        );
    }
}

/// Case A: baseline of `baseline_exposure` at 1% over an hour of buckets, then a new
/// release at `ratio` × 1% with `per_bucket` exposure per bucket, checked every bucket
/// by both tests.
fn cutover_sim(
    ratio: f64,
    per_bucket: u64,
    baseline_exposure: u64,
    runs: usize,
    seed: u64,
) -> Tally {
    let rate = 0.01;
    let mut rng = Rng(seed);
    let mut tally = Tally {
        runs,
        ..Tally::default()
    };
    let per_base = baseline_exposure / BUCKETS as u64;
    for _ in 0..runs {
        let buckets: Vec<Sample> = (0..BUCKETS)
            .map(|_| Sample {
                exposure: per_base,
                errors: rng.poisson(rate * per_base as f64),
            })
            .collect();
        let (prior, tested) = split_baseline(&buckets);
        let x_b = prior.errors + tested.errors;
        let prior = Prior::from_counts(prior.errors, prior.exposure, 1.0);
        let test = TwoSampleTest::new(prior, tested, RHO, 1.0).unwrap();
        let baseline_rate = x_b as f64 / (per_base * BUCKETS as u64) as f64;
        let (mut x, mut e) = (0u64, 0u64);
        let (mut alarm, mut oracle, mut healthy) = (None, None, false);
        for bucket in 1..=BUCKETS {
            x += rng.poisson(ratio * rate * per_bucket as f64);
            e += per_bucket;
            let (xf, ef) = (x as f64, e as f64);
            if oracle.is_none() && oracle_rejects(x, RHO * rate * ef) {
                oracle = Some(bucket);
            }
            healthy |= test.log_e(Direction::Down, &HEALTHY_GRID, xf, ef) >= (1.0 / BETA).ln();
            if test.log_e(Direction::Up, &REGRESSION_GRID, xf, ef) >= (1.0 / ALPHA).ln()
                && floors_met(xf, ef, baseline_rate, 5, 0.001)
            {
                alarm = Some(bucket);
                break;
            }
        }
        tally.healthy += usize::from(healthy);
        if let Some(b) = alarm {
            tally.alarms += 1;
            tally.delays.push(b);
            tally.oracle.extend(oracle);
        }
    }
    tally
}

#[test]
fn cutover_good_release_rarely_alarms() {
    for (ratio, seed) in [(1.0, 11), (RHO, 12)] {
        let t = cutover_sim(ratio, 50, 180_000, 600, seed);
        t.report(&format!("A cut-over, true ratio {ratio}"));
        assert!(
            within(t.rate(), ALPHA, t.runs),
            "false-alarm rate {} at ratio {ratio}",
            t.rate()
        );
    }
}

#[test]
fn cutover_release_at_or_above_the_tolerance_is_rarely_healthy() {
    for (ratio, baseline, seed) in [(RHO, 180_000, 14), (RHO, 15_000, 15), (2.0, 15_000, 16)] {
        let t = cutover_sim(ratio, 50, baseline, 600, seed);
        t.report(&format!(
            "A cut-over, true ratio {ratio}, baseline {baseline}"
        ));
        assert!(
            within(t.healthy_rate(), BETA, t.runs),
            "healthy rate {} at ratio {ratio}",
            t.healthy_rate()
        );
    }
    let good = cutover_sim(1.0, 50, 180_000, 200, 17);
    assert!(
        good.healthy_rate() >= 0.95,
        "an unchanged release is shown healthy"
    );
}

#[test]
fn cutover_spike_is_caught_fast() {
    let t = cutover_sim(5.0, 50, 180_000, 300, 13);
    t.report("A cut-over, 5× spike");
    assert!(t.rate() >= 0.99, "power {}", t.rate());
    assert!(Tally::median(&t.delays) <= 20, "median delay");
    let ratio = Tally::mean(&t.delays) / Tally::mean(&t.oracle);
    assert!(ratio <= 2.5, "delay / oracle = {ratio}");
}

/// Case B: a 10% canary under a traffic swing (±60%) and a shared error-rate swing
/// (±80%), the new version at `ratio` × the baseline's rate in every bucket.
fn canary_sim(ratio: f64, runs: usize, seed: u64) -> Tally {
    let mut rng = Rng(seed);
    let mut tally = Tally {
        runs,
        ..Tally::default()
    };
    let tau = std::f64::consts::TAU;
    for _ in 0..runs {
        let mut test = ConcurrentTest::new(RHO);
        let (mut oracle, mut alarm, mut null_mean) = (None, None, 0.0);
        let mut healthy = false;
        for bucket in 1..=BUCKETS {
            let phase = bucket as f64 / BUCKETS as f64;
            let traffic = 1_000.0 * (1.0 + 0.6 * (tau * phase).sin());
            let rate = 0.01 * (1.0 + 0.8 * (3.0 * tau * phase).sin());
            let (e, b) = ((0.1 * traffic) as u64, (0.9 * traffic) as u64);
            let x = rng.poisson(ratio * rate * e as f64);
            let y = rng.poisson(rate * b as f64);
            test.update(e, b, x, y);
            null_mean += RHO * rate * e as f64;
            if oracle.is_none() && oracle_rejects(test.new_errors, null_mean) {
                oracle = Some(bucket);
            }
            healthy |= test.log_e(Direction::Down, 1.0) >= (1.0 / BETA).ln();
            if test.is_regression(ALPHA, 5, 0.001, 1.0) {
                alarm = Some(bucket);
                break;
            }
        }
        tally.healthy += usize::from(healthy);
        if let Some(b) = alarm {
            tally.alarms += 1;
            tally.delays.push(b);
            tally.oracle.extend(oracle);
        }
    }
    tally
}

#[test]
fn canary_good_release_rarely_alarms() {
    for (ratio, seed) in [(1.0, 21), (RHO, 22)] {
        let t = canary_sim(ratio, 500, seed);
        t.report(&format!("B canary, true ratio {ratio}"));
        assert!(
            within(t.rate(), ALPHA, t.runs),
            "false-alarm rate {} at ratio {ratio}",
            t.rate()
        );
        if ratio == RHO {
            assert!(
                within(t.healthy_rate(), BETA, t.runs),
                "healthy rate {}",
                t.healthy_rate()
            );
        } else {
            assert!(
                t.healthy_rate() >= 0.95,
                "healthy rate {}",
                t.healthy_rate()
            );
        }
    }
}

#[test]
fn canary_spike_is_caught_fast() {
    let t = canary_sim(5.0, 300, 23);
    t.report("B canary, 5× spike");
    assert!(t.rate() >= 0.99, "power {}", t.rate());
    assert!(Tally::median(&t.delays) <= 20, "median delay");
    let ratio = Tally::mean(&t.delays) / Tally::mean(&t.oracle);
    assert!(ratio <= 2.5, "delay / oracle = {ratio}");
}

/// Case D: errors arrive in bursts of 1..=`burst` errors in the baseline and the new
/// release alike; the new release is at exactly ρ × the baseline rate. Returns the mean
/// φ̂ and the alarm rates without and with the correction.
fn bursty_sim(burst: u64, per_bucket: u64, runs: usize, seed: u64) -> (f64, f64, f64) {
    let (baseline_per_bucket, rate) = (500u64, 0.01);
    let mut rng = Rng(seed);
    let (mut raw, mut corrected) = (0, 0);
    let mut phis = 0.0;
    for _ in 0..runs {
        let buckets: Vec<Sample> = (0..BUCKETS)
            .map(|_| Sample {
                exposure: baseline_per_bucket,
                errors: rng.bursty(rate * baseline_per_bucket as f64, burst),
            })
            .collect();
        let counts: Vec<u64> = buckets.iter().map(|b| b.errors).collect();
        let phi = dispersion(&counts);
        phis += phi;
        let x_b: u64 = counts.iter().sum();
        let e_b = baseline_per_bucket * BUCKETS as u64;
        let baseline_rate = x_b as f64 / e_b as f64;
        let (prior, tested) = split_baseline(&buckets);
        let test_with = |phi: f64| {
            let p = Prior::from_counts(prior.errors, prior.exposure, phi);
            TwoSampleTest::new(p, tested, RHO, phi).unwrap()
        };
        let (plain, damped) = (test_with(1.0), test_with(phi));
        let (mut x, mut e) = (0u64, 0u64);
        let (mut seen_raw, mut seen_corr) = (false, false);
        for _ in 0..BUCKETS {
            x += rng.bursty(RHO * rate * per_bucket as f64, burst);
            e += per_bucket;
            let (xf, ef) = (x as f64, e as f64);
            if !floors_met(xf, ef, baseline_rate, 5, 0.001) {
                continue;
            }
            let crossed = |t: &TwoSampleTest| {
                t.log_e(Direction::Up, &REGRESSION_GRID, xf, ef) >= (1.0 / ALPHA).ln()
            };
            seen_raw |= crossed(&plain);
            seen_corr |= crossed(&damped);
        }
        raw += usize::from(seen_raw);
        corrected += usize::from(seen_corr);
    }
    let rate_of = |n: usize| n as f64 / runs as f64;
    (phis / runs as f64, rate_of(raw), rate_of(corrected))
}

#[test]
fn bursty_errors_need_the_dispersion_correction() {
    for (burst, per_bucket, seed) in [(8, 50, 31), (30, 500, 32)] {
        let (phi, raw, corrected) = bursty_sim(burst, per_bucket, 400, seed);
        eprintln!(
            "D bursts 1..={burst}, {per_bucket}/bucket (mean φ̂ {phi:.2}), true ratio ρ: alarm \
             rate uncorrected {raw:.4}, corrected {corrected:.4}"
        );
        assert!(
            raw > 2.0 * ALPHA,
            "the scenario must break the Poisson bound"
        );
        assert!(within(corrected, ALPHA, 400));
    }
}
