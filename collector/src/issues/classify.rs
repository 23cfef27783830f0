//! Classification of a release's fingerprints: [`lookback`] picks the history,
//! [`classify_one`] decides, [`classify_against`] reads both from the store.

use std::collections::BTreeSet;

use super::{IssueStatus, IssueSummary, LOOKBACK_MS, LOOKBACK_RELEASES, MAX_LOOKBACK_RELEASES};
use bellwether_model::issue::{FirstSeen, ReleaseIssue};
use bellwether_model::release::{Deployment, DeploymentFilter, ReleaseKey};
use bellwether_store::{ReleaseStore, StoreError};

/// Occurrences this long before a deployment's start still count as part of it: record
/// times and deployment times come from different clocks, and an auto-detected deployment
/// starts at its first record's *receive* time.
pub const DEPLOY_CLOCK_SLACK_MS: i64 = 5 * 60 * 1000;

/// Fingerprints of the releases a release is compared with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The deployment that started right before (same service and environment).
    pub previous: BTreeSet<String>,
    /// The baseline and every deployment of [`lookback`], the previous one included.
    pub recent: BTreeSet<String>,
}

/// The deployments `deployment` is compared with, newest first: of the same service and
/// environment, started before it; the first [`LOOKBACK_RELEASES`] and any others started
/// within [`LOOKBACK_MS`] before it, at most [`MAX_LOOKBACK_RELEASES`].
pub fn lookback<'a>(deployment: &Deployment, deployments: &'a [Deployment]) -> Vec<&'a Deployment> {
    let this = &deployment.release;
    let start = deployment.started_at_unix_ms;
    let mut before: Vec<&Deployment> = deployments
        .iter()
        .filter(|d| {
            d.release.service == this.service
                && d.release.environment == this.environment
                && d.release != *this
                && d.started_at_unix_ms < start
        })
        .collect();
    before.sort_by(|a, b| {
        b.started_at_unix_ms
            .cmp(&a.started_at_unix_ms)
            .then_with(|| a.release.cmp(&b.release))
    });
    before
        .into_iter()
        .enumerate()
        .take_while(|(i, d)| {
            *i < LOOKBACK_RELEASES || d.started_at_unix_ms >= start.saturating_sub(LOOKBACK_MS)
        })
        .map(|(_, d)| d)
        .take(MAX_LOOKBACK_RELEASES)
        .collect()
}

/// The status of one fingerprint of a release deployed at `deployed_at_unix_ms`.
///
/// A release deployed again (same version, later start) has occurrences from before that
/// start: they count as "seen before", so an error that comes back with the re-deploy is
/// regressed, not new.
pub fn classify_one(
    issue: &ReleaseIssue,
    deployed_at_unix_ms: i64,
    history: &History,
) -> IssueStatus {
    if history.previous.contains(&issue.fingerprint) {
        return IssueStatus::Existing;
    }
    let seen_in_release_before =
        issue.first_seen_unix_ms < deployed_at_unix_ms.saturating_sub(DEPLOY_CLOCK_SLACK_MS);
    let seen_before = seen_in_release_before || history.recent.contains(&issue.fingerprint);
    let back_now =
        issue.last_seen_unix_ms >= deployed_at_unix_ms.saturating_sub(DEPLOY_CLOCK_SLACK_MS);
    match (seen_before, back_now) {
        (false, _) => IssueStatus::New,
        (true, true) => IssueStatus::Regressed,
        // Only old occurrences of this same release: nothing came back.
        (true, false) => IssueStatus::Existing,
    }
}

/// [`classify_against`] with the deployments of [`lookback`] as the only history.
pub fn classify(
    store: &dyn ReleaseStore,
    deployment: &Deployment,
) -> Result<Vec<IssueSummary>, StoreError> {
    classify_against(store, deployment, None)
}

/// The fingerprints of `deployment`'s release, classified: new first, then regressed,
/// then existing, each by count (highest first). `baseline`, when given, is part of the
/// history even if it is older than the [`lookback`].
pub fn classify_against(
    store: &dyn ReleaseStore,
    deployment: &Deployment,
    baseline: Option<&ReleaseKey>,
) -> Result<Vec<IssueSummary>, StoreError> {
    let release = &deployment.release;
    let issues = store.release_issues(release)?;
    if issues.is_empty() {
        return Ok(Vec::new());
    }
    let filter = DeploymentFilter {
        service: Some(release.service.clone()),
        environment: Some(release.environment.clone()),
        version: None,
    };
    let deployments = store.deployments(&filter)?;
    let prior = lookback(deployment, &deployments);
    let mut history = History::default();
    for (i, earlier) in prior.iter().enumerate() {
        let fingerprints = store.release_fingerprints(&earlier.release)?;
        if i == 0 {
            history.previous = fingerprints.iter().cloned().collect();
        }
        history.recent.extend(fingerprints);
    }
    if let Some(baseline) = baseline {
        if baseline != release && !prior.iter().any(|d| &d.release == baseline) {
            history.recent.extend(store.release_fingerprints(baseline)?);
        }
    }
    let mut summaries = Vec::with_capacity(issues.len());
    for issue in issues {
        let status = classify_one(&issue, deployment.started_at_unix_ms, &history);
        let record = store.issue(&release.service, &issue.fingerprint)?;
        let (title, exception_type, first_seen) = match record {
            Some(record) => (record.title, record.exception_type, record.first_seen),
            None => (
                issue.fingerprint.clone(),
                String::new(),
                FirstSeen {
                    unix_ms: issue.first_seen_unix_ms,
                    environment: release.environment.clone(),
                    version: release.version.clone(),
                },
            ),
        };
        summaries.push(IssueSummary {
            fingerprint: issue.fingerprint,
            title,
            exception_type,
            status,
            count: issue.count,
            instances: issue.instances,
            first_seen,
            first_seen_in_release_unix_ms: issue.first_seen_unix_ms,
            last_seen_unix_ms: issue.last_seen_unix_ms,
        });
    }
    summaries.sort_by(|a, b| {
        a.status
            .cmp(&b.status)
            .then_with(|| b.count.cmp(&a.count))
            .then_with(|| a.fingerprint.cmp(&b.fingerprint))
    });
    Ok(summaries)
}
