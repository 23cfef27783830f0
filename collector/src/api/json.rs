//! JSON shapes of the HTTP API; the `bellwether` CLI reads the same types.

use serde::{Deserialize, Serialize};

use super::changes::{change_set, ChangeJson, ChangesFields};
use crate::error::Error;
use crate::releases::{ReleaseStats, ReleaseSummary};
use bellwether_model::health::TimelineEntry;
use bellwether_model::health::{Figures, ReleaseHealth};
use bellwether_model::release::{
    Counts, Deployment, DeploymentRecord, ReleaseKey, Source, BUCKET_MS,
};
use bellwether_model::time::rfc3339_utc;

/// Body of `POST /api/v1/deployments`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentRequest {
    pub service: String,
    pub environment: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_unix_ms: Option<i64>,
    /// The commits the release adds over the previous release of its service in its
    /// environment, newest first; given, it replaces what was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<ChangeJson>>,
    /// Commits of the range left out of `changes`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub changes_truncated: u64,
    /// Files left out of the commits' `files`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub files_truncated: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl TryFrom<DeploymentRequest> for DeploymentRecord {
    type Error = Error;

    /// Fails when a commit time is not RFC 3339; [`crate::releases::validate_record`]
    /// checks the rest.
    fn try_from(r: DeploymentRequest) -> Result<Self, Error> {
        Ok(DeploymentRecord {
            changes: change_set(r.changes, r.changes_truncated, r.files_truncated)?,
            release: ReleaseKey::new(r.service, r.environment, r.version),
            started_at_unix_ms: r.started_at_unix_ms,
            commit: r.commit,
            deploy_id: r.deploy_id,
            pipeline_url: r.pipeline_url,
            notes: r.notes,
            team: r.team,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentJson {
    pub service: String,
    pub environment: String,
    pub version: String,
    pub started_at_unix_ms: i64,
    pub started_at: String,
    pub commit: Option<String>,
    pub deploy_id: Option<String>,
    pub pipeline_url: Option<String>,
    pub notes: Option<String>,
    pub team: Option<String>,
    pub source: Source,
    #[serde(flatten)]
    pub changes: ChangesFields,
}

impl From<Deployment> for DeploymentJson {
    fn from(d: Deployment) -> Self {
        DeploymentJson {
            changes: ChangesFields::new(d.changes, d.started_at_unix_ms),
            started_at: rfc3339_utc(d.started_at_unix_ms),
            service: d.release.service,
            environment: d.release.environment,
            version: d.release.version,
            started_at_unix_ms: d.started_at_unix_ms,
            commit: d.commit,
            deploy_id: d.deploy_id,
            pipeline_url: d.pipeline_url,
            notes: d.notes,
            team: d.team,
            source: d.source,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseJson {
    #[serde(flatten)]
    pub deployment: DeploymentJson,
    pub totals: Counts,
}

impl From<ReleaseSummary> for ReleaseJson {
    fn from(r: ReleaseSummary) -> Self {
        ReleaseJson {
            deployment: r.deployment.into(),
            totals: r.totals,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasesResponse {
    pub releases: Vec<ReleaseJson>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketJson {
    pub start_unix_ms: i64,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsResponse {
    pub release: ReleaseJson,
    pub bucket_seconds: i64,
    pub buckets: Vec<BucketJson>,
}

impl From<ReleaseStats> for StatsResponse {
    fn from(s: ReleaseStats) -> Self {
        StatsResponse {
            release: s.release.into(),
            bucket_seconds: BUCKET_MS / 1000,
            buckets: s
                .buckets
                .into_iter()
                .map(|(start_unix_ms, counts)| BucketJson {
                    start_unix_ms,
                    counts,
                })
                .collect(),
        }
    }
}

/// One evidence item: `kind`, `summary` and kind-specific fields.
pub use bellwether_model::health::Evidence as EvidenceJson;

/// `GET /api/v1/releases/{service}/{version}/health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthResponse {
    pub release: ReleaseKey,
    pub verdict: String,
    pub evidence: Vec<EvidenceJson>,
    pub totals: Counts,
    pub evaluated_at_unix_ms: i64,
    /// When the deployment started; `evaluated_at_unix_ms` minus this is its age.
    #[serde(default)]
    pub started_at_unix_ms: i64,
    /// Changes whenever the verdict or its evidence changes materially; pass it back as
    /// `since` to long-poll for the next change.
    #[serde(default)]
    pub revision: u64,
    /// The figures behind the verdict: method, baseline, rates, e-value, needed exposure.
    #[serde(default)]
    pub analysis: Figures,
}

impl From<&ReleaseHealth> for HealthResponse {
    fn from(h: &ReleaseHealth) -> Self {
        HealthResponse {
            release: h.release.clone(),
            verdict: h.verdict.as_str().to_owned(),
            evidence: h.evidence.clone(),
            totals: h.totals,
            evaluated_at_unix_ms: h.evaluated_at_unix_ms,
            started_at_unix_ms: h.started_at_unix_ms,
            revision: h.revision,
            analysis: h.figures.clone(),
        }
    }
}

/// One change of verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineJson {
    pub at_unix_ms: i64,
    pub at: String,
    pub verdict: String,
    pub summary: String,
    pub revision: u64,
}

impl From<TimelineEntry> for TimelineJson {
    fn from(e: TimelineEntry) -> Self {
        TimelineJson {
            at: rfc3339_utc(e.at_unix_ms),
            at_unix_ms: e.at_unix_ms,
            verdict: e.verdict.as_str().to_owned(),
            summary: e.summary,
            revision: e.revision,
        }
    }
}

/// `GET /api/v1/releases/{service}/{version}/verdicts`: verdict changes, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictsResponse {
    pub release: ReleaseKey,
    pub started_at_unix_ms: i64,
    pub timeline: Vec<TimelineJson>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_json_has_the_contract_fields() -> Result<(), serde_json::Error> {
        let release = ReleaseJson {
            deployment: DeploymentJson::from(Deployment {
                release: ReleaseKey::new("api", "prod", "1.0"),
                started_at_unix_ms: 0,
                commit: Some("abc".into()),
                deploy_id: None,
                pipeline_url: None,
                notes: None,
                team: None,
                source: Source::Detected,
                changes: None,
            }),
            totals: Counts {
                log_records: 3,
                ..Counts::default()
            },
        };
        let value = serde_json::to_value(&release)?;
        assert_eq!(value["service"], "api");
        assert_eq!(value["started_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(value["commit"], "abc");
        assert!(value["deploy_id"].is_null());
        assert_eq!(value["source"], "detected");
        assert_eq!(value["totals"]["log_records"], 3);
        assert_eq!(value["totals"]["error_spans"], 0);
        let back: ReleaseJson = serde_json::from_value(value)?;
        assert_eq!(back, release);
        Ok(())
    }

    #[test]
    fn deployment_request_rejects_unknown_fields() {
        let err = serde_json::from_str::<DeploymentRequest>(
            r#"{"service":"a","environment":"b","version":"c","colour":"red"}"#,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("colour"), "{err}");
    }
}
