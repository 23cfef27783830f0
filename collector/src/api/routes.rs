//! Routes and handlers of the HTTP API.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;

use super::json::{
    DeploymentJson, DeploymentRequest, ReleaseJson, ReleasesResponse, StatsResponse,
};
use crate::error::Error;
use crate::evaluate::Evaluator;
use crate::lookup::ReleaseRef;
use crate::releases::Releases;
use bellwether_model::release::DeploymentFilter;

pub fn router(releases: Releases, evaluator: Evaluator) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/deployments", post(record_deployment))
        .route("/api/v1/releases", get(list_releases))
        .route(
            "/api/v1/releases/{service}/{version}/stats",
            get(release_stats),
        )
        .route(
            "/api/v1/releases/{service}/{version}/issues",
            get(super::issues::release_issues),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(releases)
        .merge(super::health::router(evaluator.clone()))
        .merge(super::rollouts::router(evaluator))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn not_found() -> Error {
    Error::NotFound("no such route".to_owned())
}

async fn method_not_allowed() -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(serde_json::json!({ "error": "method not allowed" })),
    )
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Self {
        Error::invalid(format!("invalid query: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for Error {
    fn from(rejection: PathRejection) -> Self {
        Error::invalid(format!("invalid path: {}", rejection.body_text()))
    }
}

#[derive(Debug, Default, Deserialize)]
struct ReleasesQuery {
    service: Option<String>,
    environment: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct EnvironmentQuery {
    environment: Option<String>,
}

/// An empty filter value means no filter.
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

async fn record_deployment(
    State(releases): State<Releases>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<DeploymentJson>), Error> {
    let body = body.map_err(|e| Error::invalid(format!("reading body: {}", e.body_text())))?;
    // serde's message names the offending field ("unknown field `colour`, expected ...").
    let request: DeploymentRequest = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid(format!("invalid deployment: {e}")))?;
    let deployment = releases.record(request.try_into()?).await?;
    Ok((StatusCode::CREATED, Json(deployment.into())))
}

async fn list_releases(
    State(releases): State<Releases>,
    query: Result<Query<ReleasesQuery>, QueryRejection>,
) -> Result<Json<ReleasesResponse>, Error> {
    let Query(query) = query?;
    let filter = DeploymentFilter {
        service: non_empty(query.service),
        environment: non_empty(query.environment),
        version: None,
    };
    let list = releases.list(filter).await?;
    // The list gives each change set's counts and lead time; its commits are in the
    // release's own answers, so a long history stays a small answer.
    let releases = list
        .into_iter()
        .map(|release| {
            let mut json = ReleaseJson::from(release);
            json.deployment.changes.changes = None;
            json
        })
        .collect();
    Ok(Json(ReleasesResponse { releases }))
}

fn release_ref(
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<EnvironmentQuery>, QueryRejection>,
) -> Result<ReleaseRef, Error> {
    let Path((service, version)) = path?;
    let Query(query) = query?;
    Ok(ReleaseRef {
        service,
        environment: non_empty(query.environment),
        version,
    })
}

async fn release_stats(
    State(releases): State<Releases>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<EnvironmentQuery>, QueryRejection>,
) -> Result<Json<StatsResponse>, Error> {
    let stats = releases.stats(release_ref(path, query)?).await?;
    Ok(Json(stats.into()))
}
