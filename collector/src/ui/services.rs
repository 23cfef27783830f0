//! Summaries the web UI shows, computed on the server from the store, the evaluator and
//! the alert engine:
//!
//! - `GET /api/v1/services` → every service with, per environment, its current release,
//!   verdict, owning team and alert counts;
//! - `GET /api/v1/services/{service}?environment=` → per environment: the current release
//!   against its baseline (exposure, errors, error rate, p95, new issues) and the release
//!   history with verdicts.

use std::collections::BTreeMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::Views;
use crate::error::Error;
use crate::issues::IssueStatus;
use crate::lookup::ReleaseRef;
use crate::metrics::releases::exposure;
use bellwether_model::alert::{Alert, AlertFilter, AlertState};
use bellwether_model::health::ReleaseHealth;
use bellwether_model::release::{Deployment, DeploymentFilter, ReleaseKey, Source};
use bellwether_model::time::{now_unix_ms, rfc3339_utc};

/// Releases listed per environment on a service page.
pub const HISTORY: usize = 25;
/// Latency samples for p95 come from at most this far back.
const LATENCY_WINDOW_MS: i64 = 6 * 3600 * 1000;

#[derive(Debug, Serialize, Deserialize)]
pub struct ServicesResponse {
    pub services: Vec<ServiceJson>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ServiceJson {
    pub service: String,
    pub environments: Vec<EnvironmentJson>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EnvironmentJson {
    pub environment: String,
    pub team: String,
    pub routed_by: String,
    pub current: ReleaseRow,
    pub releases: usize,
    pub firing_alerts: usize,
    pub acknowledged_alerts: usize,
}

/// One release with its latest verdict and totals.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReleaseRow {
    pub version: String,
    pub started_at_unix_ms: i64,
    pub started_at: String,
    pub source: Source,
    pub commit: Option<String>,
    pub deploy_id: Option<String>,
    /// None until the evaluator judged it.
    pub verdict: Option<String>,
    pub summary: Option<String>,
    pub exposure: u64,
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub firing_alerts: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ServiceDetail {
    pub service: String,
    pub environments: Vec<EnvironmentDetail>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EnvironmentDetail {
    pub environment: String,
    pub team: String,
    pub routed_by: String,
    pub current: String,
    pub baseline: Option<String>,
    pub method: Option<String>,
    pub exposure_kind: Option<String>,
    /// The current release, then its baseline.
    pub comparison: Vec<ComparisonRow>,
    /// Newest first, at most [`HISTORY`].
    pub releases: Vec<ReleaseRow>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// `current` or `baseline`.
    pub role: String,
    pub version: String,
    pub exposure: u64,
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub p95_ms: Option<f64>,
    pub new_issues: usize,
    pub regressed_issues: usize,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct EnvironmentQuery {
    environment: Option<String>,
}

fn by_environment(deployments: Vec<Deployment>) -> BTreeMap<String, Vec<Deployment>> {
    let mut groups: BTreeMap<String, Vec<Deployment>> = BTreeMap::new();
    for d in deployments {
        groups
            .entry(d.release.environment.clone())
            .or_default()
            .push(d);
    }
    for group in groups.values_mut() {
        group.sort_by(|a, b| {
            b.started_at_unix_ms
                .cmp(&a.started_at_unix_ms)
                .then_with(|| b.release.version.cmp(&a.release.version))
        });
    }
    groups
}

fn count_alerts(alerts: &[Alert], release: &ReleaseKey, state: AlertState) -> usize {
    alerts
        .iter()
        .filter(|a| a.state == state && a.release == *release)
        .count()
}

impl Views {
    /// The latest health of a release, evaluating it now when it has none yet.
    async fn latest(&self, d: &Deployment, evaluate: bool) -> Result<Option<ReleaseHealth>, Error> {
        let latest = self.evaluator.subscribe(&d.release)?.borrow().clone();
        if let Some(latest) = latest {
            return Ok(Some(latest.as_ref().clone()));
        }
        if !evaluate {
            return Ok(None);
        }
        let health = self
            .evaluator
            .health(ReleaseRef {
                service: d.release.service.clone(),
                environment: Some(d.release.environment.clone()),
                version: d.release.version.clone(),
            })
            .await?;
        Ok(Some(health.as_ref().clone()))
    }

    async fn row(
        &self,
        d: &Deployment,
        alerts: &[Alert],
        evaluate: bool,
    ) -> Result<ReleaseRow, Error> {
        let health = self.latest(d, evaluate).await?;
        let store = std::sync::Arc::clone(&self.store);
        let key = d.release.clone();
        let totals = tokio::task::spawn_blocking(move || store.totals(&key)).await??;
        let (exposure, errors) = (exposure(&totals), totals.errors);
        Ok(ReleaseRow {
            version: d.release.version.clone(),
            started_at_unix_ms: d.started_at_unix_ms,
            started_at: rfc3339_utc(d.started_at_unix_ms),
            source: d.source,
            commit: d.commit.clone(),
            deploy_id: d.deploy_id.clone(),
            verdict: health.as_ref().map(|h| h.verdict.as_str().to_owned()),
            summary: health
                .as_ref()
                .map(bellwether_model::health::headline)
                .filter(|s| !s.is_empty()),
            exposure,
            errors,
            error_rate: (exposure > 0).then(|| errors as f64 / exposure as f64),
            firing_alerts: count_alerts(alerts, &d.release, AlertState::Firing),
        })
    }

    async fn deployments(&self, service: Option<String>) -> Result<Vec<Deployment>, Error> {
        let store = std::sync::Arc::clone(&self.store);
        let filter = DeploymentFilter {
            service,
            environment: None,
            version: None,
        };
        Ok(tokio::task::spawn_blocking(move || store.deployments(&filter)).await??)
    }

    async fn comparison(&self, role: &str, d: &Deployment) -> Result<ComparisonRow, Error> {
        let store = std::sync::Arc::clone(&self.store);
        let key = d.release.clone();
        let since = d.started_at_unix_ms.max(now_unix_ms() - LATENCY_WINDOW_MS);
        let (totals, samples) = tokio::task::spawn_blocking(move || {
            let totals = store.totals(&key)?;
            let samples = store.latency_samples(&key, since..i64::MAX)?;
            Ok::<_, bellwether_store::StoreError>((totals, samples))
        })
        .await??;
        let issues = self
            .releases
            .issues(ReleaseRef {
                service: d.release.service.clone(),
                environment: Some(d.release.environment.clone()),
                version: d.release.version.clone(),
            })
            .await?;
        let count = |status: IssueStatus| {
            issues
                .issues
                .iter()
                .filter(|(i, _)| i.status == status)
                .count()
        };
        let (exposure, errors) = (exposure(&totals), totals.errors);
        Ok(ComparisonRow {
            role: role.to_owned(),
            version: d.release.version.clone(),
            exposure,
            errors,
            error_rate: (exposure > 0).then(|| errors as f64 / exposure as f64),
            p95_ms: p95(samples),
            new_issues: count(IssueStatus::New),
            regressed_issues: count(IssueStatus::Regressed),
        })
    }
}

/// The 95th percentile (nearest rank) of `samples`.
pub fn p95(mut samples: Vec<f64>) -> Option<f64> {
    samples.retain(|s| s.is_finite());
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((samples.len() as f64) * 0.95).ceil() as usize;
    samples.get(rank.saturating_sub(1)).copied()
}

pub(super) async fn list(State(views): State<Views>) -> Result<Json<ServicesResponse>, Error> {
    let alerts = views.alerts.alerts(AlertFilter::default()).await?;
    let mut services: BTreeMap<String, Vec<Deployment>> = BTreeMap::new();
    for d in views.deployments(None).await? {
        services
            .entry(d.release.service.clone())
            .or_default()
            .push(d);
    }
    let mut out = Vec::new();
    for (service, deployments) in services {
        let mut environments = Vec::new();
        for (environment, group) in by_environment(deployments) {
            let Some(current) = group.first() else {
                continue;
            };
            let owner = views.alerts.config().ownership.service_owner(
                &service,
                &environment,
                current.team.as_deref(),
            );
            let in_env = |state: AlertState| {
                alerts
                    .iter()
                    .filter(|a| {
                        a.state == state
                            && a.release.service == service
                            && a.release.environment == environment
                    })
                    .count()
            };
            environments.push(EnvironmentJson {
                team: owner.team,
                routed_by: owner.matched_by.to_string(),
                current: views.row(current, &alerts, true).await?,
                releases: group.len(),
                firing_alerts: in_env(AlertState::Firing),
                acknowledged_alerts: in_env(AlertState::Acknowledged),
                environment,
            });
        }
        out.push(ServiceJson {
            service,
            environments,
        });
    }
    Ok(Json(ServicesResponse { services: out }))
}

pub(super) async fn detail(
    State(views): State<Views>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<EnvironmentQuery>, QueryRejection>,
) -> Result<Json<ServiceDetail>, Error> {
    let Path(service) = path?;
    let Query(query) = query?;
    let wanted = query.environment.filter(|e| !e.is_empty());
    let deployments = views.deployments(Some(service.clone())).await?;
    if deployments.is_empty() {
        return Err(Error::NotFound(format!("service {service} not found")));
    }
    let alerts = views
        .alerts
        .alerts(AlertFilter {
            service: Some(service.clone()),
            ..AlertFilter::default()
        })
        .await?;
    let mut environments = Vec::new();
    for (environment, group) in by_environment(deployments) {
        if wanted.as_ref().is_some_and(|w| *w != environment) {
            continue;
        }
        let Some(current) = group.first() else {
            continue;
        };
        let owner = views.alerts.config().ownership.service_owner(
            &service,
            &environment,
            current.team.as_deref(),
        );
        let health = views.latest(current, true).await?;
        let figures = health.as_ref().map(|h| &h.figures);
        let baseline_version = figures.and_then(|f| f.baseline_version.clone());
        let mut comparison = vec![views.comparison("current", current).await?];
        if let Some(base) = baseline_version
            .as_ref()
            .and_then(|v| group.iter().find(|d| d.release.version == *v))
        {
            comparison.push(views.comparison("baseline", base).await?);
        }
        let mut releases = Vec::new();
        for (i, d) in group.iter().take(HISTORY).enumerate() {
            releases.push(views.row(d, &alerts, i == 0).await?);
        }
        environments.push(EnvironmentDetail {
            team: owner.team,
            routed_by: owner.matched_by.to_string(),
            current: current.release.version.clone(),
            baseline: baseline_version,
            method: figures.map(|f| f.method.clone()),
            exposure_kind: figures.map(|f| f.exposure_kind.clone()),
            comparison,
            releases,
            environment,
        });
    }
    if environments.is_empty() {
        return Err(Error::NotFound(format!(
            "service {service} has no environment {}",
            wanted.unwrap_or_default()
        )));
    }
    Ok(Json(ServiceDetail {
        service,
        environments,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p95_is_the_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(p95(samples), Some(95.0));
        assert_eq!(p95(vec![7.0, f64::NAN]), Some(7.0));
        assert_eq!(p95(Vec::new()), None);
    }
}
