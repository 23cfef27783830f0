//! Special functions: log-gamma, the regularized incomplete gamma functions, gamma and
//! normal quantiles, and the exact (Garwood) Poisson upper bound built from them.
//!
//! Everything is total: NaN in gives NaN out, out-of-domain arguments give NaN, and
//! nothing panics. Callers above this module sanitize before comparing.

use std::f64::consts::PI;

/// Shapes at or above this use the Wilson–Hilferty cube-root normal approximation: the
/// series and continued fraction need O(√a) terms, and at this size the approximation
/// error (O(1/a)) is far below anything a verdict depends on.
const LARGE_SHAPE: f64 = 1e7;
const EPS: f64 = 1e-15;
const TINY: f64 = 1e-300;

const LANCZOS_G: f64 = 7.0;
const LANCZOS: [f64; 9] = [
    0.999_999_999_999_809_9,
    676.520_368_121_885_1,
    -1_259.139_216_722_402_8,
    771.323_428_777_653_1,
    -176.615_029_162_140_6,
    12.507_343_278_686_905,
    -0.138_571_095_265_720_12,
    9.984_369_578_019_572e-6,
    1.505_632_735_149_311_6e-7,
];

/// ln Γ(x) for x > 0 (Lanczos, g = 7, ~1e-15 relative); reflection below 0.5.
pub fn ln_gamma(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x.is_infinite() {
        return if x > 0.0 { f64::INFINITY } else { f64::NAN };
    }
    if x <= 0.0 && x == x.floor() {
        return f64::INFINITY;
    }
    if x < 0.5 {
        return (PI / (PI * x).sin().abs()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = LANCZOS[0];
    for (i, c) in LANCZOS.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + LANCZOS_G + 0.5;
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// ln of the common prefactor x^a e^(−x) / Γ(a).
fn ln_prefactor(a: f64, x: f64) -> f64 {
    a * x.ln() - x - ln_gamma(a)
}

fn max_iterations(a: f64) -> usize {
    // Both expansions need O(√a) terms near x ≈ a; a < LARGE_SHAPE keeps this bounded.
    200 + (20.0 * a.sqrt()) as usize
}

/// P(a, x) by its power series; good for x < a + 1.
fn p_series(a: f64, x: f64) -> f64 {
    let mut ap = a;
    let mut term = 1.0 / a;
    let mut sum = term;
    for _ in 0..max_iterations(a) {
        ap += 1.0;
        term *= x / ap;
        sum += term;
        if term.abs() < sum.abs() * EPS {
            break;
        }
    }
    (sum.ln() + ln_prefactor(a, x)).exp().min(1.0)
}

/// Q(a, x) by its continued fraction (modified Lentz); good for x ≥ a + 1.
fn q_continued_fraction(a: f64, x: f64) -> f64 {
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..max_iterations(a) {
        let i = i as f64;
        let an = -i * (i - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < EPS {
            break;
        }
    }
    (h.ln() + ln_prefactor(a, x)).exp().min(1.0)
}

/// Wilson–Hilferty: (X/a)^(1/3) is nearly normal with mean 1 − 1/(9a), variance 1/(9a).
fn wilson_hilferty_z(a: f64, x: f64) -> f64 {
    let v = 1.0 / (9.0 * a);
    ((x / a).cbrt() - (1.0 - v)) / v.sqrt()
}

fn domain_ok(a: f64, x: f64) -> bool {
    !(a.is_nan() || x.is_nan() || a < 0.0 || x < 0.0)
}

/// Regularized lower incomplete gamma P(a, x) = γ(a, x) / Γ(a).
pub fn gamma_p(a: f64, x: f64) -> f64 {
    if !domain_ok(a, x) {
        return f64::NAN;
    }
    if x == 0.0 {
        return if a == 0.0 { 1.0 } else { 0.0 };
    }
    if a == 0.0 || x.is_infinite() {
        return 1.0;
    }
    if a >= LARGE_SHAPE {
        return normal_cdf(wilson_hilferty_z(a, x));
    }
    if x < a + 1.0 {
        p_series(a, x)
    } else {
        1.0 - q_continued_fraction(a, x)
    }
}

/// Regularized upper incomplete gamma Q(a, x) = 1 − P(a, x), computed without
/// cancellation in the tail that matters.
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if !domain_ok(a, x) {
        return f64::NAN;
    }
    if x == 0.0 {
        return if a == 0.0 { 0.0 } else { 1.0 };
    }
    if a == 0.0 || x.is_infinite() {
        return 0.0;
    }
    if a >= LARGE_SHAPE {
        return normal_cdf(-wilson_hilferty_z(a, x));
    }
    if x < a + 1.0 {
        1.0 - p_series(a, x)
    } else {
        q_continued_fraction(a, x)
    }
}

/// Standard normal CDF, through erfc(y) = Q(½, y²).
pub fn normal_cdf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    let half_tail = 0.5 * gamma_q(0.5, 0.5 * z * z);
    if z <= 0.0 {
        half_tail
    } else {
        1.0 - half_tail
    }
}

/// Standard normal quantile (Acklam's rational approximation plus one Halley step).
pub fn normal_quantile(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        let q = (-2.0 * q.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let z = if p < 0.024_25 {
        tail(p)
    } else if p > 1.0 - 0.024_25 {
        -tail(1.0 - p)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    // One Halley step against the accurate CDF brings it to ~1e-15.
    let e = normal_cdf(z) - p;
    let u = e * (2.0 * PI).sqrt() * (0.5 * z * z).exp();
    let refined = z - u / (1.0 + 0.5 * z * u);
    if refined.is_finite() {
        refined
    } else {
        z
    }
}

/// x with P(shape, x) = p: the p-quantile of a Gamma(shape, 1) variable.
pub fn gamma_quantile(p: f64, shape: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p > 0.5 {
        quantile(shape, 1.0 - p, true)
    } else {
        quantile(shape, p, false)
    }
}

/// x with Q(shape, x) = q, accurate for tiny q (no 1 − q cancellation).
pub fn gamma_quantile_upper(q: f64, shape: f64) -> f64 {
    if q.is_nan() || !(0.0..=1.0).contains(&q) {
        return f64::NAN;
    }
    if q < 0.5 {
        quantile(shape, q, true)
    } else {
        quantile(shape, 1.0 - q, false)
    }
}

/// Solves P(a, x) = target (or Q(a, x) = target when `upper`) by bracketing and
/// Newton steps that fall back to bisection whenever they leave the bracket.
fn quantile(a: f64, target: f64, upper: bool) -> f64 {
    if a.is_nan() || a <= 0.0 || a.is_infinite() {
        return f64::NAN;
    }
    if target == 0.0 {
        return if upper { f64::INFINITY } else { 0.0 };
    }
    let p = if upper { 1.0 - target } else { target };
    let z = if upper {
        -normal_quantile(target)
    } else {
        normal_quantile(target)
    };
    let wh = a * (1.0 - 1.0 / (9.0 * a) + z / (3.0 * a.sqrt())).powi(3);
    if a >= LARGE_SHAPE {
        return wh.max(0.0);
    }
    // f increases with x in both forms; its derivative is the gamma density.
    let f = |x: f64| {
        if upper {
            target - gamma_q(a, x)
        } else {
            gamma_p(a, x) - target
        }
    };
    // Small-x guess from P(a, x) ≈ x^a / Γ(a + 1) when Wilson–Hilferty goes negative.
    let guess = if wh > 0.0 {
        wh
    } else {
        ((p.ln() + ln_gamma(a + 1.0)) / a).exp()
    };
    let mut x = if guess.is_finite() && guess > 0.0 {
        guess
    } else {
        a
    };
    let (mut lo, mut hi) = (x, x);
    for _ in 0..2_200 {
        if lo == 0.0 || f(lo) <= 0.0 {
            break;
        }
        lo *= 0.5;
    }
    for _ in 0..2_200 {
        if hi.is_infinite() || f(hi) >= 0.0 {
            break;
        }
        hi = hi * 2.0 + 1.0;
    }
    let ln_norm = ln_gamma(a);
    for _ in 0..200 {
        let fx = f(x);
        if fx == 0.0 {
            return x;
        }
        if fx < 0.0 {
            lo = x;
        } else {
            hi = x;
        }
        let density = ((a - 1.0) * x.ln() - x - ln_norm).exp();
        let mut next = x - fx / density;
        if !(next > lo && next < hi) {
            next = 0.5 * (lo + hi);
        }
        if (next - x).abs() <= 1e-14 * next.abs() || hi - lo <= 1e-15 * hi {
            return next;
        }
        x = next;
    }
    x
}

/// Exact (Garwood) upper confidence bound on a Poisson mean: the μ with
/// P(X ≤ observed; μ) = tail, i.e. GammaQuantile(1 − tail; observed + 1).
/// `observed` may be fractional (a count divided by a dispersion factor).
/// With observed = 0 this is ln(1/tail).
pub fn poisson_upper_mean(observed: f64, tail: f64) -> f64 {
    if observed.is_nan() || observed < 0.0 {
        return f64::NAN;
    }
    gamma_quantile_upper(tail, observed + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn ln_gamma_known_values() {
        assert!(ln_gamma(1.0).abs() < 1e-14);
        assert!(ln_gamma(2.0).abs() < 1e-14);
        assert!(close(ln_gamma(0.5), 0.572_364_942_924_700_1, 1e-13));
        assert!(close(ln_gamma(10.0), 362_880f64.ln(), 1e-13));
        assert!(close(ln_gamma(100.0), 359.134_205_369_575_4, 1e-13));
        assert!(close(ln_gamma(0.1), 2.252_712_651_734_206, 1e-12));
        assert!(ln_gamma(1e300).is_finite());
        assert_eq!(ln_gamma(0.0), f64::INFINITY);
        assert!(ln_gamma(f64::NAN).is_nan());
    }

    #[test]
    fn incomplete_gamma_known_values() {
        for &x in &[0.0, 1e-3, 0.5, 1.0, 2.0, 5.0, 30.0, 700.0] {
            assert!(close(gamma_q(1.0, x), (-x).exp(), 1e-12), "Q(1,{x})");
            assert!(close(gamma_p(1.0, x) + gamma_q(1.0, x), 1.0, 1e-14));
        }
        // P(½, x) = erf(√x)
        assert!(close(gamma_p(0.5, 1.0), 0.842_700_792_949_714_9, 1e-13));
        // Poisson CDF identity: P(N ≤ k; μ) = Q(k + 1, μ), checked against a direct sum.
        for &(k, mu) in &[
            (0u32, 3.0f64),
            (3, 2.5),
            (10, 10.0),
            (40, 55.0),
            (200, 180.0),
        ] {
            let mut term = (-mu).exp();
            let mut sum = term;
            for i in 1..=k {
                term *= mu / f64::from(i);
                sum += term;
            }
            assert!(
                close(gamma_q(f64::from(k) + 1.0, mu), sum, 1e-11),
                "k={k} mu={mu}"
            );
        }
        assert_eq!(gamma_p(3.0, 0.0), 0.0);
        assert_eq!(gamma_q(3.0, f64::INFINITY), 0.0);
        assert!(gamma_p(-1.0, 1.0).is_nan());
        // The large-shape approximation stays continuous with the exact code.
        let (a, x) = (LARGE_SHAPE * 0.999, LARGE_SHAPE * 1.0005);
        let exact = gamma_p(a, x);
        let approx = normal_cdf(wilson_hilferty_z(a, x));
        assert!((exact - approx).abs() < 1e-6, "{exact} vs {approx}");
    }

    #[test]
    fn normal_functions() {
        assert!(close(normal_quantile(0.975), 1.959_963_984_540_054, 1e-12));
        assert!(close(normal_quantile(0.01), -2.326_347_874_040_841, 1e-12));
        assert!(close(normal_cdf(1.0), 0.841_344_746_068_542_9, 1e-13));
        assert!(normal_quantile(0.5).abs() < 1e-15);
    }

    #[test]
    fn gamma_quantiles_match_chi_square_tables() {
        // χ²_ν quantile = 2 · GammaQuantile(p; ν/2)
        let cases = [
            (0.95, 1.0, 3.841_458_820_694_124),
            (0.975, 10.0, 20.483_177_350_807_39),
            (0.99, 2.0, 9.210_340_371_976_184),
            (0.05, 4.0, 0.710_723_021_397_324),
            (0.5, 30.0, 29.336_031_516_661_58),
        ];
        for (p, nu, chi2) in cases {
            let q = 2.0 * gamma_quantile(p, nu / 2.0);
            assert!(close(q, chi2, 1e-10), "p={p} nu={nu}: {q} vs {chi2}");
        }
        // Round trips, including tiny tails and tiny shapes.
        for &a in &[0.05, 0.5, 1.0, 7.0, 123.0, 5_000.0, 2e6] {
            for &p in &[1e-12, 1e-5, 0.005, 0.3, 0.5, 0.9, 0.995] {
                let x = gamma_quantile(p, a);
                assert!(close(gamma_p(a, x), p, 1e-8), "a={a} p={p} x={x}");
                let xu = gamma_quantile_upper(p, a);
                assert!(close(gamma_q(a, xu), p, 1e-8), "a={a} q={p} x={xu}");
            }
        }
        assert_eq!(gamma_quantile(0.0, 2.0), 0.0);
        assert_eq!(gamma_quantile(1.0, 2.0), f64::INFINITY);
        assert!(gamma_quantile(0.5, 0.0).is_nan());
        assert!(gamma_quantile(1.5, 1.0).is_nan());
    }

    #[test]
    fn poisson_upper_bound_matches_exact_tables() {
        // Garwood exact two-sided 95% upper limits (tail 0.025).
        let table95 = [
            (0.0, 3.689),
            (1.0, 5.572),
            (2.0, 7.225),
            (3.0, 8.767),
            (5.0, 11.668),
            (10.0, 18.390),
        ];
        for (x, upper) in table95 {
            let got = poisson_upper_mean(x, 0.025);
            assert!((got - upper).abs() < 1.5e-3, "x={x}: {got} vs {upper}");
        }
        // 99% two-sided (tail 0.005), the one case A uses with α = 0.01.
        for (x, upper) in [(0.0, 5.298), (1.0, 7.430), (5.0, 14.150), (10.0, 21.398)] {
            let got = poisson_upper_mean(x, 0.005);
            assert!((got - upper).abs() < 1.5e-3, "x={x}: {got} vs {upper}");
        }
        // x_b = 0 closed form: ln(2/α).
        for alpha in [0.01, 0.001, 2e-5] {
            let got = poisson_upper_mean(0.0, alpha / 2.0);
            assert!(close(got, (2.0 / alpha).ln(), 1e-12), "alpha={alpha}");
        }
        assert!(poisson_upper_mean(1e15, 0.005) > 1e15);
        assert!(poisson_upper_mean(f64::NAN, 0.005).is_nan());
    }
}
