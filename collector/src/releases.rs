//! Release queries and commands shared by the HTTP API and the gRPC `ReleaseService`:
//! record a deployment, list releases, per-release statistics. Health is
//! [`crate::evaluate`]'s.

use std::sync::Arc;

use crate::error::Error;
use crate::lookup::{resolve, ReleaseRef};
use bellwether_model::release::{Counts, Deployment, DeploymentFilter, DeploymentRecord};
use bellwether_model::time::now_unix_ms;
use bellwether_store::ReleaseStore;

/// Longest service, environment or version name.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest free-text deployment field (commit, notes, pipeline URL, ...).
pub const MAX_TEXT_BYTES: usize = 8 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseSummary {
    pub deployment: Deployment,
    pub totals: Counts,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseStats {
    pub release: ReleaseSummary,
    /// (bucket start, counts), oldest first.
    pub buckets: Vec<(i64, Counts)>,
}

#[derive(Clone)]
pub struct Releases {
    store: Arc<dyn ReleaseStore>,
    alerts: Option<bellwether_alerting::alerts::AlertEngine>,
    /// In a cluster, deployments go through the ingest stream to every node.
    cluster: Option<crate::cluster::Node>,
}

impl Releases {
    pub fn new(store: Arc<dyn ReleaseStore>) -> Self {
        Self {
            store,
            alerts: None,
            cluster: None,
        }
    }

    /// Records deployments through the cluster's stream, so every node has them.
    pub fn with_cluster(mut self, node: crate::cluster::Node) -> Self {
        self.cluster = Some(node);
        self
    }

    /// Recorded deployments are also announced through `alerts` (release notifications).
    pub fn with_alerts(mut self, alerts: bellwether_alerting::alerts::AlertEngine) -> Self {
        self.alerts = Some(alerts);
        self
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn ReleaseStore) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || work(store.as_ref())).await?
    }

    pub async fn record(&self, record: DeploymentRecord) -> Result<Deployment, Error> {
        let record = validate_record(record)?;
        let deployment = match &self.cluster {
            Some(node) => {
                node.record_deployment(record, now_unix_ms(), &self.store)
                    .await?
            }
            None => {
                self.blocking(move |store| Ok(store.record_deployment(&record, now_unix_ms())?))
                    .await?
            }
        };
        tracing::info!(
            service = %deployment.release.service,
            environment = %deployment.release.environment,
            version = %deployment.release.version,
            "deployment recorded"
        );
        if let Some(alerts) = &self.alerts {
            if let Err(error) = alerts.deployment_recorded(deployment.clone()).await {
                tracing::warn!(error = %error, "queueing the release notification failed");
            }
        }
        Ok(deployment)
    }

    /// Releases matching `filter`, newest deployment first.
    pub async fn list(&self, filter: DeploymentFilter) -> Result<Vec<ReleaseSummary>, Error> {
        self.blocking(move |store| {
            let mut releases = store
                .deployments(&filter)?
                .into_iter()
                .map(|deployment| {
                    let totals = store.totals(&deployment.release)?;
                    Ok(ReleaseSummary { deployment, totals })
                })
                .collect::<Result<Vec<_>, Error>>()?;
            releases.sort_by(|a, b| {
                b.deployment
                    .started_at_unix_ms
                    .cmp(&a.deployment.started_at_unix_ms)
                    .then_with(|| a.deployment.release.cmp(&b.deployment.release))
            });
            Ok(releases)
        })
        .await
    }

    pub async fn stats(&self, release: ReleaseRef) -> Result<ReleaseStats, Error> {
        self.blocking(move |store| {
            let deployment = resolve(store, &release)?;
            let totals = store.totals(&deployment.release)?;
            let buckets = store.buckets(&deployment.release, i64::MIN..i64::MAX)?;
            Ok(ReleaseStats {
                release: ReleaseSummary { deployment, totals },
                buckets,
            })
        })
        .await
    }

    /// The deployment `release` names; see [`resolve`].
    pub async fn resolve(&self, release: ReleaseRef) -> Result<Deployment, Error> {
        self.blocking(move |store| resolve(store, &release)).await
    }

    /// The issues of a release, classified, with samples; see [`crate::issues`].
    pub async fn issues(&self, release: ReleaseRef) -> Result<crate::issues::ReleaseIssues, Error> {
        self.blocking(move |store| crate::issues::release_issues(store, &release))
            .await
    }
}

fn validate_name(field: &str, value: &str) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(Error::invalid(format!("{field} must not be empty")));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(format!(
            "{field} exceeds {MAX_NAME_BYTES} bytes"
        )));
    }
    if value.contains('\0') {
        return Err(Error::invalid(format!("{field} must not contain NUL")));
    }
    Ok(())
}

/// Checks names and lengths; empty optional text means "not given".
pub fn validate_record(mut record: DeploymentRecord) -> Result<DeploymentRecord, Error> {
    validate_name("service", &record.release.service)?;
    validate_name("environment", &record.release.environment)?;
    validate_name("version", &record.release.version)?;
    if let Some(changes) = &record.changes {
        changes.validate().map_err(|e| Error::invalid(e.0))?;
    }
    for (field, value) in [
        ("commit", &mut record.commit),
        ("deploy_id", &mut record.deploy_id),
        ("pipeline_url", &mut record.pipeline_url),
        ("notes", &mut record.notes),
        ("team", &mut record.team),
    ] {
        if value.as_deref().is_some_and(str::is_empty) {
            *value = None;
        }
        if value.as_ref().is_some_and(|v| v.len() > MAX_TEXT_BYTES) {
            return Err(Error::invalid(format!(
                "{field} exceeds {MAX_TEXT_BYTES} bytes"
            )));
        }
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bellwether_model::release::ReleaseKey;

    fn record(service: &str, environment: &str, version: &str) -> DeploymentRecord {
        DeploymentRecord {
            release: ReleaseKey::new(service, environment, version),
            ..DeploymentRecord::default()
        }
    }

    #[test]
    fn names_are_required_and_bounded() {
        assert!(validate_record(record("api", "prod", "1")).is_ok());
        let err = validate_record(record("", "prod", "1"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("service must not be empty"));
        let long = "v".repeat(257);
        let err = validate_record(record("api", "prod", &long))
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("version exceeds 256 bytes"));
        assert!(validate_record(record("api", "pr\0d", "1")).is_err());
        let mut with_empty = record("api", "prod", "1");
        with_empty.commit = Some(String::new());
        assert_eq!(
            validate_record(with_empty).ok().and_then(|r| r.commit),
            None
        );
    }
}
