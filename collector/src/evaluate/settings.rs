//! Detection settings: the `[detection]` table of the collector's config file, with
//! per-service overrides in `[[detection.services]]` (first `match` wins), validated into
//! [`DetectionSettings`]. Unknown keys and out-of-range values are errors naming the key.

use std::time::Duration;

use serde::Deserialize;

use bellwether_detect::Thresholds;
use bellwether_model::config::{parse_duration, ConfigError};
use bellwether_model::health::Verdict;

/// Default time between two evaluation rounds.
pub const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(5);
/// Default window of the baseline before a cut-over.
pub const DEFAULT_BASELINE_WINDOW: Duration = Duration::from_secs(60 * 60);
/// Default age after which a deployment is no longer evaluated.
pub const DEFAULT_ACTIVE_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// Settings of one service, after overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceDetection {
    pub thresholds: Thresholds,
    /// Baseline window before the deploy (case A).
    pub baseline_window: Duration,
    /// False-alarm probability of the latency test, however often it is checked.
    pub latency_alpha: f64,
    /// λ: a latency regression is a new p95 above this multiple of the baseline's...
    pub latency_min_ratio: f64,
    /// ... plus this much (δ, the absolute floor).
    pub latency_min_rise: Duration,
    /// Verdict a latency regression gives (degraded by default).
    pub latency_verdict: Verdict,
    /// Absolute floor of a new issue's rate (fraction of exposure).
    pub new_issue_min_rate: f64,
}

impl Default for ServiceDetection {
    fn default() -> Self {
        Self {
            thresholds: Thresholds::default(),
            baseline_window: DEFAULT_BASELINE_WINDOW,
            latency_alpha: 0.01,
            latency_min_ratio: 1.2,
            latency_min_rise: Duration::from_millis(5),
            latency_verdict: Verdict::Degraded,
            new_issue_min_rate: 0.0001,
        }
    }
}

/// A per-service override: services whose name matches `pattern` use `settings`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceOverride {
    pub pattern: String,
    pub settings: ServiceDetection,
}

/// Validated detection settings.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectionSettings {
    pub evaluation_interval: Duration,
    pub active_window: Duration,
    pub defaults: ServiceDetection,
    pub services: Vec<ServiceOverride>,
}

impl Default for DetectionSettings {
    fn default() -> Self {
        Self {
            evaluation_interval: DEFAULT_EVALUATION_INTERVAL,
            active_window: DEFAULT_ACTIVE_WINDOW,
            defaults: ServiceDetection::default(),
            services: Vec::new(),
        }
    }
}

impl DetectionSettings {
    /// The settings of `service`: the first override whose pattern matches, else defaults.
    pub fn for_service(&self, service: &str) -> &ServiceDetection {
        self.services
            .iter()
            .find(|o| glob_match(&o.pattern, service))
            .map_or(&self.defaults, |o| &o.settings)
    }
}

/// `*` matches any run of characters, `?` one character; everything else is literal.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// `[detection]` and each `[[detection.services]]` entry as written: one shape, so unknown
/// keys are rejected by serde with their name. `match` belongs to service entries only;
/// `evaluation_interval`, `active_window` and `services` to `[detection]` only.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionFile {
    #[serde(rename = "match")]
    pub pattern: Option<String>,
    pub evaluation_interval: Option<String>,
    pub active_window: Option<String>,
    pub services: Option<Vec<DetectionFile>>,
    pub rho: Option<f64>,
    pub alpha: Option<f64>,
    pub min_errors: Option<u64>,
    pub min_abs_rise: Option<f64>,
    pub min_duration: Option<String>,
    pub severe_ratio: Option<f64>,
    pub severe_abs_rise: Option<f64>,
    pub beta: Option<f64>,
    /// Removed (healthy no longer rests on a power calculation); kept to say so.
    pub power: Option<f64>,
    pub min_exposure_without_baseline: Option<u64>,
    pub baseline_window: Option<String>,
    pub latency_alpha: Option<f64>,
    pub latency_min_ratio: Option<f64>,
    pub latency_min_rise: Option<String>,
    pub latency_verdict: Option<String>,
    pub new_issue_min_rate: Option<f64>,
}

fn invalid(key: &str, value: impl ToString, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: value.to_string(),
        reason: reason.to_owned(),
    }
}

fn duration(key: &str, value: &Option<String>, current: Duration) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(current),
        Some(text) => parse_duration(text).map_err(|reason| invalid(key, text, &reason)),
    }
}

fn ranged(
    key: &str,
    value: Option<f64>,
    current: f64,
    ok: impl Fn(f64) -> bool,
    reason: &str,
) -> Result<f64, ConfigError> {
    match value {
        None => Ok(current),
        Some(v) if v.is_finite() && ok(v) => Ok(v),
        Some(v) => Err(invalid(key, v, reason)),
    }
}

/// Applies the keys present in `file` over `base`; `prefix` names the table in errors.
fn apply(
    prefix: &str,
    file: &DetectionFile,
    base: &ServiceDetection,
) -> Result<ServiceDetection, ConfigError> {
    let key = |name: &str| format!("{prefix}.{name}");
    let t = &base.thresholds;
    if let Some(power) = file.power {
        return Err(invalid(
            &key("power"),
            power,
            "is no longer used: healthy now means the evidence bounds the rise below rho, \
             wrong at most with probability beta; set beta (default 0.05) instead",
        ));
    }
    let thresholds = Thresholds {
        rho: ranged(
            &key("rho"),
            file.rho,
            t.rho,
            |v| v >= 1.0,
            "must be at least 1",
        )?,
        alpha: ranged(
            &key("alpha"),
            file.alpha,
            t.alpha,
            |v| v > 0.0 && v < 0.5,
            "must be in (0, 0.5)",
        )?,
        min_errors: file.min_errors.unwrap_or(t.min_errors),
        min_abs_rise: ranged(
            &key("min_abs_rise"),
            file.min_abs_rise,
            t.min_abs_rise,
            |v| (0.0..1.0).contains(&v),
            "must be in [0, 1)",
        )?,
        min_duration: duration(&key("min_duration"), &file.min_duration, t.min_duration)?,
        severe_ratio: ranged(
            &key("severe_ratio"),
            file.severe_ratio,
            t.severe_ratio,
            |v| v >= 1.0,
            "must be at least 1",
        )?,
        severe_abs_rise: ranged(
            &key("severe_abs_rise"),
            file.severe_abs_rise,
            t.severe_abs_rise,
            |v| (0.0..1.0).contains(&v),
            "must be in [0, 1)",
        )?,
        beta: ranged(
            &key("beta"),
            file.beta,
            t.beta,
            |v| v > 0.0 && v < 0.5,
            "must be in (0, 0.5)",
        )?,
        min_exposure_without_baseline: file
            .min_exposure_without_baseline
            .unwrap_or(t.min_exposure_without_baseline),
    };
    let baseline_window = duration(
        &key("baseline_window"),
        &file.baseline_window,
        base.baseline_window,
    )?;
    if baseline_window < Duration::from_secs(10) {
        return Err(invalid(
            &key("baseline_window"),
            format!("{baseline_window:?}"),
            "must be at least 10s (one bucket)",
        ));
    }
    let latency_verdict = match file.latency_verdict.as_deref() {
        None => base.latency_verdict,
        Some("degraded") => Verdict::Degraded,
        Some("unhealthy") => Verdict::Unhealthy,
        Some(other) => {
            return Err(invalid(
                &key("latency_verdict"),
                other,
                "must be \"degraded\" or \"unhealthy\"",
            ))
        }
    };
    Ok(ServiceDetection {
        thresholds,
        baseline_window,
        latency_alpha: ranged(
            &key("latency_alpha"),
            file.latency_alpha,
            base.latency_alpha,
            |v| v > 0.0 && v < 0.5,
            "must be in (0, 0.5)",
        )?,
        latency_min_ratio: ranged(
            &key("latency_min_ratio"),
            file.latency_min_ratio,
            base.latency_min_ratio,
            |v| v >= 1.0,
            "must be at least 1",
        )?,
        latency_min_rise: duration(
            &key("latency_min_rise"),
            &file.latency_min_rise,
            base.latency_min_rise,
        )?,
        latency_verdict,
        new_issue_min_rate: ranged(
            &key("new_issue_min_rate"),
            file.new_issue_min_rate,
            base.new_issue_min_rate,
            |v| (0.0..1.0).contains(&v),
            "must be in [0, 1)",
        )?,
    })
}

/// Validates `[detection]` (absent: all defaults).
pub fn resolve(file: Option<&DetectionFile>) -> Result<DetectionSettings, ConfigError> {
    let mut settings = DetectionSettings::default();
    let Some(file) = file else {
        return Ok(settings);
    };
    if let Some(pattern) = &file.pattern {
        return Err(invalid(
            "detection.match",
            pattern,
            "belongs in a [[detection.services]] entry",
        ));
    }
    settings.evaluation_interval = duration(
        "detection.evaluation_interval",
        &file.evaluation_interval,
        settings.evaluation_interval,
    )?;
    if settings.evaluation_interval < Duration::from_millis(100) {
        return Err(invalid(
            "detection.evaluation_interval",
            file.evaluation_interval.clone().unwrap_or_default(),
            "must be at least 100ms",
        ));
    }
    settings.active_window = duration(
        "detection.active_window",
        &file.active_window,
        settings.active_window,
    )?;
    settings.defaults = apply("detection", file, &settings.defaults)?;
    for (i, service) in file.services.iter().flatten().enumerate() {
        let prefix = format!("detection.services[{i}]");
        for (key, present) in [
            ("evaluation_interval", service.evaluation_interval.is_some()),
            ("active_window", service.active_window.is_some()),
            ("services", service.services.is_some()),
        ] {
            if present {
                return Err(invalid(
                    &format!("{prefix}.{key}"),
                    "",
                    "can only be set in [detection] itself",
                ));
            }
        }
        let pattern = service.pattern.clone().unwrap_or_default();
        if pattern.trim().is_empty() {
            return Err(invalid(
                &format!("{prefix}.match"),
                &pattern,
                "is required and must not be empty",
            ));
        }
        settings.services.push(ServiceOverride {
            settings: apply(&prefix, service, &settings.defaults)?,
            pattern,
        });
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DetectionSettings, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wrapper {
            detection: Option<DetectionFile>,
        }
        let wrapper: Wrapper = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        resolve(wrapper.detection.as_ref()).map_err(|e| e.to_string())
    }

    #[test]
    fn globs() {
        assert!(glob_match("checkout*", "checkout-api"));
        assert!(glob_match("checkout*", "checkout"));
        assert!(!glob_match("checkout*", "cart"));
        assert!(glob_match("*-api", "cart-api"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "abbc"));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    #[test]
    fn defaults_and_overrides() -> Result<(), String> {
        let s = parse("")?;
        assert_eq!(s, DetectionSettings::default());
        let s = parse(
            r#"
            [detection]
            rho = 2.0
            min_duration = "30s"
            evaluation_interval = "1s"
            [[detection.services]]
            match = "checkout*"
            alpha = 0.001
            latency_verdict = "unhealthy"
            "#,
        )?;
        assert_eq!(s.evaluation_interval, Duration::from_secs(1));
        assert_eq!(s.defaults.thresholds.rho, 2.0);
        let checkout = s.for_service("checkout-api");
        assert_eq!(checkout.thresholds.alpha, 0.001);
        assert_eq!(checkout.thresholds.rho, 2.0, "inherits [detection]");
        assert_eq!(checkout.thresholds.min_duration, Duration::from_secs(30));
        assert_eq!(checkout.latency_verdict, Verdict::Unhealthy);
        assert_eq!(s.for_service("cart").thresholds.alpha, 0.01);
        Ok(())
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = parse("[detection]\nrhoo = 2.0\n").err().unwrap_or_default();
        assert!(err.contains("rhoo"), "{err}");
        let err = parse(
            "[detection]\n[[detection.services]]\nmatch = \"a\"\nevaluation_interval = \"1s\"\n",
        )
        .err()
        .unwrap_or_default();
        assert!(err.contains("evaluation_interval"), "{err}");
        let err = parse("[detection]\nalpha = 1.5\n")
            .err()
            .unwrap_or_default();
        assert!(err.starts_with("invalid detection.alpha"), "{err}");
        let err = parse("[detection]\n[[detection.services]]\nmatch = \"x\"\nrho = 0.5\n")
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("invalid detection.services[0].rho"),
            "{err}"
        );
        let err = parse("[detection]\nmin_duration = \"five minutes\"\n")
            .err()
            .unwrap_or_default();
        assert!(err.contains("detection.min_duration"), "{err}");
        let err = parse("[detection]\nlatency_verdict = \"bad\"\n")
            .err()
            .unwrap_or_default();
        assert!(err.contains("latency_verdict"), "{err}");
        let err = parse("[detection]\n[[detection.services]]\nmatch = \"\"\n")
            .err()
            .unwrap_or_default();
        assert!(err.contains("services[0].match"), "{err}");
    }
}
