//! Alerts as they are stored and shown: one per (release, kind[, fingerprint]), its
//! state, severity, evidence and delivery bookkeeping; what the evaluator tells the
//! alert engine ([`ReleaseVerdict`]); and the snapshot a notification carries.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::release::{Deployment, ReleaseKey};

/// The code an error comes from: its top in-app frame, or `code.filepath` /
/// `code.namespace` attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CodeLocation {
    pub path: Option<String>,
    pub module: Option<String>,
}

/// One alert as carried by a notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSnapshot {
    pub id: String,
    pub dedup_key: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub summary: String,
    pub evidence: Vec<EvidenceLine>,
    pub fingerprint: Option<String>,
    pub started_at_unix_ms: i64,
    pub resolved_at_unix_ms: Option<i64>,
    pub resolution: Option<String>,
    /// Which ownership rule chose the team.
    pub routed_by: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    ErrorSpike,
    NewIssue,
    LatencyRegression,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ErrorSpike => "error_spike",
            AlertKind::NewIssue => "new_issue",
            AlertKind::LatencyRegression => "latency_regression",
        }
    }
}

/// Most severe first (so `min` is the most severe).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceLine {
    pub kind: String,
    pub summary: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Acknowledged,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }

    pub fn is_active(self) -> bool {
        !matches!(self, AlertState::Resolved)
    }
}

/// A release's health, as the evaluator judged it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Pending,
    Healthy,
    Degraded,
    Unhealthy,
}

/// A fingerprint first seen in this release.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewIssue {
    pub fingerprint: String,
    /// `exception.type: parameterized message`.
    pub title: String,
    /// Top in-app frame (or `code.filepath` / `code.namespace`).
    pub code: CodeLocation,
    pub count: u64,
    pub sample: Option<String>,
}

/// What the alert engine needs from one evaluation of a release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseVerdict {
    /// The release, with commit, deploy id and `bellwether.team` if known.
    pub deployment: Deployment,
    pub health: Health,
    /// The error rate rose significantly over the baseline.
    pub error_spike: bool,
    pub evidence: Vec<EvidenceLine>,
    pub new_issues: Vec<NewIssue>,
    /// Summary of a significant latency regression, if any.
    pub latency_regression: Option<String>,
    pub at_unix_ms: i64,
}

/// `service/environment/version/kind[/fingerprint]`.
pub fn dedup_key(release: &ReleaseKey, kind: AlertKind, fingerprint: Option<&str>) -> String {
    let mut key = format!(
        "{}/{}/{}/{}",
        release.service,
        release.environment,
        release.version,
        kind.as_str()
    );
    if let Some(fp) = fingerprint {
        key.push('/');
        key.push_str(fp);
    }
    key
}

/// The alert id: `bw-` + 24 hex digits of SHA-256 of the dedup key.
pub fn alert_id(dedup_key: &str) -> String {
    let digest = Sha256::digest(dedup_key.as_bytes());
    format!("bw-{}", hex::encode(&digest[..12]))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub dedup_key: String,
    pub kind: AlertKind,
    pub release: ReleaseKey,
    pub commit: Option<String>,
    pub deploy_id: Option<String>,
    pub release_started_at_unix_ms: i64,
    pub fingerprint: Option<String>,
    pub team: String,
    pub routed_by: String,
    pub severity: Severity,
    pub summary: String,
    pub evidence: Vec<EvidenceLine>,
    pub state: AlertState,
    pub started_at_unix_ms: i64,
    pub updated_at_unix_ms: i64,
    pub acknowledged_at_unix_ms: Option<i64>,
    pub acknowledged_by: Option<String>,
    pub resolved_at_unix_ms: Option<i64>,
    pub resolution: Option<String>,
    /// Set when a newer healthy release resolved this one; it is not reopened.
    pub superseded_by: Option<String>,
    /// The first notification is due (end of the group window); cleared once sent.
    pub notify_due_at_unix_ms: Option<i64>,
    /// Receiver → when it was last sent this alert.
    pub sent: BTreeMap<String, i64>,
    /// Receivers that got the trigger (and so get the resolve).
    pub notified: BTreeSet<String>,
    /// Id of the silence that held back the last due notification.
    pub silenced_by: Option<String>,
}

impl Alert {
    pub fn snapshot(&self) -> AlertSnapshot {
        AlertSnapshot {
            id: self.id.clone(),
            dedup_key: self.dedup_key.clone(),
            kind: self.kind,
            severity: self.severity,
            summary: self.summary.clone(),
            evidence: self.evidence.clone(),
            fingerprint: self.fingerprint.clone(),
            started_at_unix_ms: self.started_at_unix_ms,
            resolved_at_unix_ms: self.resolved_at_unix_ms,
            resolution: self.resolution.clone(),
            routed_by: self.routed_by.clone(),
        }
    }
}

/// Selects alerts; `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct AlertFilter {
    pub state: Option<AlertState>,
    pub team: Option<String>,
    pub service: Option<String>,
}

impl AlertFilter {
    pub fn matches(&self, alert: &Alert) -> bool {
        self.state.is_none_or(|s| s == alert.state)
            && self.team.as_ref().is_none_or(|t| *t == alert.team)
            && self
                .service
                .as_ref()
                .is_none_or(|s| *s == alert.release.service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_key_and_id_are_stable() {
        let release = ReleaseKey::new("checkout", "prod", "1.2.0");
        let key = dedup_key(&release, AlertKind::NewIssue, Some("ab12"));
        assert_eq!(key, "checkout/prod/1.2.0/new_issue/ab12");
        assert_eq!(
            alert_id(&key),
            alert_id("checkout/prod/1.2.0/new_issue/ab12")
        );
        assert_ne!(
            alert_id(&key),
            alert_id(&dedup_key(&release, AlertKind::ErrorSpike, None))
        );
        assert_eq!(alert_id(&key).len(), 3 + 24);
    }
}
