//! Release health over HTTP: the current verdict (long-polling with `wait`) and the
//! timeline of verdict changes. Both are the evaluator's.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::json::{HealthResponse, VerdictsResponse};
use crate::error::Error;
use crate::evaluate::{Evaluator, MAX_WAIT};
use crate::lookup::ReleaseRef;
use bellwether_model::config::parse_duration;

pub fn router(evaluator: Evaluator) -> Router {
    Router::new()
        .route(
            "/api/v1/releases/{service}/{version}/health",
            get(release_health),
        )
        .route(
            "/api/v1/releases/{service}/{version}/verdicts",
            get(release_verdicts),
        )
        .with_state(evaluator)
}

#[derive(Debug, Default, Deserialize)]
struct HealthQuery {
    environment: Option<String>,
    /// Long-poll up to this long (`30s`, `2m`; capped at 120 s).
    wait: Option<String>,
    /// Return as soon as the revision differs from this one.
    since: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct EnvironmentQuery {
    environment: Option<String>,
}

/// The release a path and its `environment` query name (empty means any).
pub(super) fn release_ref(
    service: String,
    version: String,
    environment: Option<String>,
) -> ReleaseRef {
    ReleaseRef {
        service,
        environment: environment.filter(|e| !e.is_empty()),
        version,
    }
}

async fn release_health(
    State(evaluator): State<Evaluator>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<HealthQuery>, QueryRejection>,
) -> Result<Json<HealthResponse>, Error> {
    let Path((service, version)) = path?;
    let Query(query) = query?;
    let release = release_ref(service, version, query.environment);
    let health = match query.wait.as_deref().filter(|w| !w.is_empty()) {
        Some(text) => {
            let wait =
                parse_duration(text).map_err(|e| Error::invalid(format!("invalid wait: {e}")))?;
            evaluator
                .wait(release, query.since, wait.min(MAX_WAIT))
                .await?
        }
        None => evaluator.health(release).await?,
    };
    Ok(Json(HealthResponse::from(health.as_ref())))
}

async fn release_verdicts(
    State(evaluator): State<Evaluator>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<EnvironmentQuery>, QueryRejection>,
) -> Result<Json<VerdictsResponse>, Error> {
    let Path((service, version)) = path?;
    let Query(query) = query?;
    let (deployment, timeline) = evaluator
        .timeline(release_ref(service, version, query.environment))
        .await?;
    Ok(Json(VerdictsResponse {
        release: deployment.release,
        started_at_unix_ms: deployment.started_at_unix_ms,
        timeline: timeline.into_iter().map(Into::into).collect(),
    }))
}
