//! `GET /api/v1/releases/{service}/{version}/issues?environment=`: a release's error
//! fingerprints, new first, then regressed, then existing, each by count.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::evaluate::suspects::{issue_suspects, Suspect};
use crate::issues::{IssueStatus, ReleaseIssues};
use crate::releases::Releases;
use bellwether_model::issue::{FirstSeen, IssueSample};
use bellwether_model::release::ReleaseKey;

#[derive(Debug, Default, Deserialize)]
pub(super) struct IssuesQuery {
    environment: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuesResponse {
    pub release: ReleaseKey,
    pub issues: Vec<IssueJson>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueJson {
    pub fingerprint: String,
    pub title: String,
    pub exception_type: String,
    /// `new`, `regressed` or `existing`.
    pub status: String,
    pub count: u64,
    /// How many instances of the release reported it (ids in `instance_ids`).
    pub instances: usize,
    pub instance_ids: Vec<String>,
    /// Where the service first saw it.
    pub first_seen: FirstSeen,
    pub first_seen_in_release_unix_ms: i64,
    pub last_seen_unix_ms: i64,
    pub samples: Vec<IssueSample>,
    /// New and regressed issues: the release's commits that changed the files of its
    /// in-app frames, best first (the same the flagging verdict's evidence names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspect_commits: Vec<Suspect>,
}

impl From<ReleaseIssues> for IssuesResponse {
    fn from(r: ReleaseIssues) -> Self {
        let changes = r.deployment.changes.as_ref();
        IssuesResponse {
            release: r.deployment.release.clone(),
            issues: r
                .issues
                .into_iter()
                .map(|(summary, samples)| IssueJson {
                    suspect_commits: match summary.status {
                        IssueStatus::New | IssueStatus::Regressed => {
                            issue_suspects(&samples, changes)
                        }
                        IssueStatus::Existing => Vec::new(),
                    },
                    fingerprint: summary.fingerprint,
                    title: summary.title,
                    exception_type: summary.exception_type,
                    status: summary.status.as_str().to_owned(),
                    count: summary.count,
                    instances: summary.instances.len(),
                    instance_ids: summary.instances.into_iter().collect(),
                    first_seen: summary.first_seen,
                    first_seen_in_release_unix_ms: summary.first_seen_in_release_unix_ms,
                    last_seen_unix_ms: summary.last_seen_unix_ms,
                    samples,
                })
                .collect(),
        }
    }
}

pub(super) async fn release_issues(
    State(releases): State<Releases>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<IssuesQuery>, QueryRejection>,
) -> Result<Json<IssuesResponse>, Error> {
    let Path((service, version)) = path?;
    let Query(query) = query?;
    let release = super::health::release_ref(service, version, query.environment);
    Ok(Json(releases.issues(release).await?.into()))
}
