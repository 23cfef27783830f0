//! What "how is this release doing?" answers: a verdict, the evidence behind it and the
//! figures it rests on. The collector's evaluator produces these; the HTTP API, the gRPC
//! service and `bellwether gate` show them.

use serde::{Deserialize, Serialize};

use crate::release::{Counts, Deployment, ReleaseKey};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pending,
    Healthy,
    Degraded,
    Unhealthy,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pending => "pending",
            Verdict::Healthy => "healthy",
            Verdict::Degraded => "degraded",
            Verdict::Unhealthy => "unhealthy",
        }
    }

    /// How bad: healthy < pending < degraded < unhealthy. A finding raises a verdict to
    /// at least its own; "pending" yields to any finding.
    pub fn severity(self) -> u8 {
        match self {
            Verdict::Healthy => 0,
            Verdict::Pending => 1,
            Verdict::Degraded => 2,
            Verdict::Unhealthy => 3,
        }
    }

    /// The worse of the two.
    pub fn worst(self, other: Verdict) -> Verdict {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    pub fn parse(text: &str) -> Option<Verdict> {
        match text {
            "pending" => Some(Verdict::Pending),
            "healthy" => Some(Verdict::Healthy),
            "degraded" => Some(Verdict::Degraded),
            "unhealthy" => Some(Verdict::Unhealthy),
            _ => None,
        }
    }
}

/// One piece of evidence: a machine-readable kind, a sentence for people, and
/// structured details (kind-specific: rates, counts, fingerprint, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub kind: String,
    pub summary: String,
    #[serde(flatten, default)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Evidence {
    pub fn new(kind: impl Into<String>, summary: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            summary: summary.into(),
            details: serde_json::Map::new(),
        }
    }

    /// Adds a detail; values that do not serialize (non-finite floats) are left out.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        if let Ok(value) = serde_json::to_value(value) {
            if !value.is_null() {
                self.details.insert(key.to_owned(), value);
            }
        }
        self
    }
}

/// Exposure and errors of one side of the comparison.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SideFigures {
    pub exposure: u64,
    pub errors: u64,
    /// errors / exposure; absent without exposure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

/// The numbers behind a verdict. Every float is finite.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// `cutover`, `concurrent` or `no_baseline`.
    pub method: String,
    /// What counts as exposure: `server_spans`, `spans`, `metric_requests` or `log_records`.
    pub exposure_kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_version: Option<String>,
    pub new: SideFigures,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<SideFigures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_ratio: Option<f64>,
    /// Lower and upper (1 − α) confidence bounds of the rate ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_ratio_lower: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_ratio_upper: Option<f64>,
    /// ln of the regression e-value M and of the threshold it must reach (1/α).
    pub log_e_value: f64,
    pub log_threshold: f64,
    /// ln of the healthy e-value and of its threshold (1/β); 0 when nothing was compared.
    #[serde(default)]
    pub log_healthy_e_value: f64,
    #[serde(default)]
    pub log_healthy_threshold: f64,
    pub dispersion: f64,
    /// Pending: further exposure, and time at the current traffic rate, until the next
    /// decision point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure_needed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_needed_ms: Option<u64>,
    /// Pending: the total exposure at which the release would be shown healthy if its
    /// error rate stays as observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decidable_exposure: Option<u64>,
    /// Fingerprints flagged as new or regressed issues.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flagged_issues: Vec<String>,
    /// Calls to each dependency (client and producer spans) against the baseline's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<crate::dependency::DependencyFigures>,
    /// Requests per feature-flag variant against the flag's other variants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<crate::dependency::FlagFigures>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseHealth {
    pub release: ReleaseKey,
    pub verdict: Verdict,
    pub evidence: Vec<Evidence>,
    pub totals: Counts,
    pub evaluated_at_unix_ms: i64,
    pub started_at_unix_ms: i64,
    /// Goes up whenever the verdict or the evidence changes materially; long-polls and
    /// watches wait for it to move.
    pub revision: u64,
    pub figures: Figures,
}

impl ReleaseHealth {
    /// What a watcher must be told about: the verdict, the method and baseline, the
    /// kinds of evidence, the flagged issues, and the exposure and error counts to
    /// within a factor of two.
    pub fn material(&self) -> Material {
        let mut kinds: Vec<String> = self.evidence.iter().map(|e| e.kind.clone()).collect();
        kinds.sort();
        kinds.dedup();
        let octave = |n: u64| 64 - n.leading_zeros();
        Material {
            verdict: self.verdict,
            method: self.figures.method.clone(),
            baseline: self.figures.baseline_version.clone(),
            kinds,
            flagged: self.figures.flagged_issues.clone(),
            exposure_octave: octave(self.figures.new.exposure),
            errors_octave: octave(self.figures.new.errors),
        }
    }
}

/// The parts of a [`ReleaseHealth`] whose change is worth a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    verdict: Verdict,
    method: String,
    baseline: Option<String>,
    kinds: Vec<String>,
    flagged: Vec<String>,
    exposure_octave: u32,
    errors_octave: u32,
}

/// One change of a release's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at_unix_ms: i64,
    pub verdict: Verdict,
    /// The first evidence line that explains it (regression, issue, healthy, needed...).
    pub summary: String,
    pub revision: u64,
}

/// The line of evidence a timeline entry shows for `health`.
pub fn headline(health: &ReleaseHealth) -> String {
    const PREFERRED: &[&str] = &[
        "regression",
        "new_issue",
        "regressed_issue",
        "latency_regression",
        "healthy",
        "needed",
    ];
    PREFERRED
        .iter()
        .find_map(|kind| health.evidence.iter().find(|e| e.kind == *kind))
        .or_else(|| health.evidence.last())
        .map(|e| e.summary.clone())
        .unwrap_or_default()
}

/// Hears every scheduled evaluation of a release, e.g. the alert engine.
pub trait VerdictSink: Send + Sync + 'static {
    /// Called on a blocking thread, after the verdict was published.
    fn observe(&self, deployment: &Deployment, health: &ReleaseHealth);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_order_and_names() {
        assert_eq!(Verdict::Pending.worst(Verdict::Degraded), Verdict::Degraded);
        assert_eq!(Verdict::Healthy.worst(Verdict::Pending), Verdict::Pending);
        assert_eq!(
            Verdict::Unhealthy.worst(Verdict::Degraded),
            Verdict::Unhealthy
        );
        for v in [
            Verdict::Pending,
            Verdict::Healthy,
            Verdict::Degraded,
            Verdict::Unhealthy,
        ] {
            assert_eq!(Verdict::parse(v.as_str()), Some(v));
        }
    }

    #[test]
    fn evidence_details_flatten_into_the_json() -> Result<(), serde_json::Error> {
        let e = Evidence::new("new_issue", "new issue")
            .with("fingerprint", "abc")
            .with("count", 12)
            .with("ratio", f64::NAN);
        let v = serde_json::to_value(&e)?;
        assert_eq!(v["kind"], "new_issue");
        assert_eq!(v["fingerprint"], "abc");
        assert_eq!(v["count"], 12);
        assert!(v.get("ratio").is_none());
        let back: Evidence = serde_json::from_value(v)?;
        assert_eq!(back, e);
        Ok(())
    }

    #[test]
    fn material_changes_ignore_small_count_moves() {
        let mut h = ReleaseHealth {
            release: ReleaseKey::new("a", "b", "c"),
            verdict: Verdict::Pending,
            evidence: vec![Evidence::new("needed", "100 more")],
            totals: Counts::default(),
            evaluated_at_unix_ms: 0,
            started_at_unix_ms: 0,
            revision: 0,
            figures: Figures::default(),
        };
        h.figures.new.exposure = 40;
        let before = h.material();
        h.figures.new.exposure = 50;
        h.evidence[0].summary = "90 more".into();
        assert_eq!(h.material(), before);
        h.figures.new.exposure = 70;
        assert_ne!(h.material(), before);
        h.figures.new.exposure = 50;
        h.verdict = Verdict::Healthy;
        assert_ne!(h.material(), before);
    }
}
