//! `bellwether.v1.ReleaseService` over gRPC, on the OTLP gRPC listener.

use std::pin::Pin;

use bellwether_proto::v1;
use bellwether_proto::v1::release_service_server::ReleaseService;
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::evaluate::Evaluator;
use crate::lookup::ReleaseRef;
use crate::releases::{ReleaseSummary, Releases};
use bellwether_model::health::{ReleaseHealth, Verdict};
use bellwether_model::release::{
    Counts, Deployment, DeploymentFilter, DeploymentRecord, ReleaseKey, Source,
};

pub struct ReleaseGrpc {
    releases: Releases,
    evaluator: Evaluator,
    shutdown: watch::Receiver<bool>,
}

impl ReleaseGrpc {
    /// `shutdown` turning true ends open watch streams so the server can stop.
    pub fn new(releases: Releases, evaluator: Evaluator, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            releases,
            evaluator,
            shutdown,
        }
    }
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

fn release_ref(key: Option<v1::ReleaseKey>) -> Result<ReleaseRef, Error> {
    let key = key.ok_or_else(|| Error::invalid("release is required"))?;
    if key.service.is_empty() || key.version.is_empty() {
        return Err(Error::invalid("release service and version are required"));
    }
    Ok(ReleaseRef {
        service: key.service,
        environment: non_empty(key.environment),
        version: key.version,
    })
}

fn key_to_proto(key: ReleaseKey) -> v1::ReleaseKey {
    v1::ReleaseKey {
        service: key.service,
        environment: key.environment,
        version: key.version,
    }
}

fn counts_to_proto(c: Counts) -> v1::ReleaseStats {
    v1::ReleaseStats {
        log_records: c.log_records,
        error_logs: c.error_logs,
        spans: c.spans,
        error_spans: c.error_spans,
    }
}

fn deployment_to_proto(d: Deployment) -> v1::Deployment {
    let source = match d.source {
        Source::Recorded => v1::DeploymentSource::Recorded,
        Source::Detected => v1::DeploymentSource::Detected,
    };
    v1::Deployment {
        release: Some(key_to_proto(d.release)),
        started_at_unix_ms: d.started_at_unix_ms,
        commit: d.commit.unwrap_or_default(),
        deploy_id: d.deploy_id.unwrap_or_default(),
        pipeline_url: d.pipeline_url.unwrap_or_default(),
        notes: d.notes.unwrap_or_default(),
        team: d.team.unwrap_or_default(),
        source: source as i32,
    }
}

fn summary_to_proto(s: ReleaseSummary) -> v1::ReleaseSummary {
    v1::ReleaseSummary {
        deployment: Some(deployment_to_proto(s.deployment)),
        totals: Some(counts_to_proto(s.totals)),
    }
}

fn health_to_proto(h: &ReleaseHealth) -> v1::ReleaseHealth {
    let verdict = match h.verdict {
        Verdict::Pending => v1::Verdict::Pending,
        Verdict::Healthy => v1::Verdict::Healthy,
        Verdict::Degraded => v1::Verdict::Degraded,
        Verdict::Unhealthy => v1::Verdict::Unhealthy,
    };
    v1::ReleaseHealth {
        release: Some(key_to_proto(h.release.clone())),
        verdict: verdict as i32,
        evidence: h
            .evidence
            .iter()
            .map(|e| v1::Evidence {
                kind: e.kind.clone(),
                summary: e.summary.clone(),
            })
            .collect(),
        totals: Some(counts_to_proto(h.totals)),
        evaluated_at_unix_ms: h.evaluated_at_unix_ms,
    }
}

type HealthStream = Pin<Box<dyn Stream<Item = Result<v1::ReleaseHealth, Status>> + Send>>;

#[tonic::async_trait]
impl ReleaseService for ReleaseGrpc {
    async fn record_deployment(
        &self,
        request: Request<v1::RecordDeploymentRequest>,
    ) -> Result<Response<v1::RecordDeploymentResponse>, Status> {
        let deployment = request
            .into_inner()
            .deployment
            .ok_or_else(|| Error::invalid("deployment is required"))?;
        let key = deployment.release.unwrap_or_default();
        let record = DeploymentRecord {
            release: ReleaseKey::new(key.service, key.environment, key.version),
            started_at_unix_ms: (deployment.started_at_unix_ms != 0)
                .then_some(deployment.started_at_unix_ms),
            commit: non_empty(deployment.commit),
            deploy_id: non_empty(deployment.deploy_id),
            pipeline_url: non_empty(deployment.pipeline_url),
            notes: non_empty(deployment.notes),
            team: non_empty(deployment.team),
            changes: None,
        };
        let stored = self.releases.record(record).await?;
        Ok(Response::new(v1::RecordDeploymentResponse {
            deployment: Some(deployment_to_proto(stored)),
        }))
    }

    async fn get_release_health(
        &self,
        request: Request<v1::GetReleaseHealthRequest>,
    ) -> Result<Response<v1::ReleaseHealth>, Status> {
        let release = release_ref(request.into_inner().release)?;
        let health = self.evaluator.health(release).await?;
        Ok(Response::new(health_to_proto(&health)))
    }

    type WatchReleaseHealthStream = HealthStream;

    async fn watch_release_health(
        &self,
        request: Request<v1::WatchReleaseHealthRequest>,
    ) -> Result<Response<HealthStream>, Status> {
        let release = release_ref(request.into_inner().release)?;
        // Evaluate first so an unknown release fails the call instead of the stream.
        let first = self.evaluator.health(release).await?;
        let mut updates = self.evaluator.subscribe(&first.release)?;
        let mut shutdown = self.shutdown.clone();
        // The evaluator wakes `updates` on every new revision; dropping the stream (the
        // client went away) ends this loop at its next await.
        let stream = async_stream::stream! {
            let mut last = first.revision;
            yield Ok(health_to_proto(&first));
            loop {
                tokio::select! {
                    changed = updates.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
                let latest = updates.borrow_and_update().clone();
                if let Some(health) = latest {
                    if health.revision != last {
                        last = health.revision;
                        yield Ok(health_to_proto(&health));
                    }
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_releases(
        &self,
        request: Request<v1::ListReleasesRequest>,
    ) -> Result<Response<v1::ListReleasesResponse>, Status> {
        let request = request.into_inner();
        let filter = DeploymentFilter {
            service: non_empty(request.service),
            environment: non_empty(request.environment),
            version: None,
        };
        let releases = self.releases.list(filter).await?;
        Ok(Response::new(v1::ListReleasesResponse {
            releases: releases.into_iter().map(summary_to_proto).collect(),
        }))
    }

    async fn get_release_stats(
        &self,
        request: Request<v1::GetReleaseStatsRequest>,
    ) -> Result<Response<v1::GetReleaseStatsResponse>, Status> {
        let release = release_ref(request.into_inner().release)?;
        let stats = self.releases.stats(release).await?;
        Ok(Response::new(v1::GetReleaseStatsResponse {
            release: Some(summary_to_proto(stats.release)),
            buckets: stats
                .buckets
                .into_iter()
                .map(|(start_unix_ms, counts)| v1::StatsBucket {
                    start_unix_ms,
                    stats: Some(counts_to_proto(counts)),
                })
                .collect(),
        }))
    }
}
