//! Gates where the rollout tools ask:
//!
//! - `GET /api/v1/releases/{service}/{version}/verdict?environment=` — the verdict in a
//!   few fields, for Argo Rollouts' `web` metric provider (`jsonPath: "{$.verdict}"`,
//!   `successCondition: result == "healthy"`, failure on `unhealthy`; `pending` meets
//!   neither and is inconclusive). See `deploy/argo-rollouts/`.
//! - `POST /api/v1/gates/flagger` — Flagger's webhooks (`confirm-promotion`, `rollout`,
//!   `pre-rollout`): its JSON body names the canary (`name`, `namespace`) and carries the
//!   webhook's `metadata`. The release is `metadata.service` (else the canary's name),
//!   `metadata.environment` (else its namespace) and `metadata.version` (required).
//!   200 proceeds (healthy; degraded too with `metadata.allow_degraded = "true"`); 412
//!   halts on a failing verdict, 425 while pending (Flagger retries on its next
//!   interval). See `deploy/flagger/`.

use std::collections::BTreeMap;

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::Error;
use crate::evaluate::Evaluator;
use crate::lookup::ReleaseRef;
use bellwether_model::health::{ReleaseHealth, Verdict};

pub fn router(evaluator: Evaluator) -> Router {
    Router::new()
        .route(
            "/api/v1/releases/{service}/{version}/verdict",
            get(compact_verdict),
        )
        .route("/api/v1/gates/flagger", post(flagger))
        .with_state(evaluator)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvironmentQuery {
    environment: Option<String>,
}

/// The few fields a rollout tool reads.
fn compact(health: &ReleaseHealth) -> Value {
    json!({
        "service": health.release.service,
        "environment": health.release.environment,
        "version": health.release.version,
        "verdict": health.verdict.as_str(),
        "summary": health.evidence.first().map(|e| e.summary.clone()),
        "revision": health.revision,
        "age_seconds": (health.evaluated_at_unix_ms - health.started_at_unix_ms).max(0) / 1000,
    })
}

async fn compact_verdict(
    State(evaluator): State<Evaluator>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<EnvironmentQuery>, QueryRejection>,
) -> Result<Json<Value>, Error> {
    let Path((service, version)) = path?;
    let Query(query) = query?;
    let release = super::health::release_ref(service, version, query.environment);
    let health = evaluator.health(release).await?;
    Ok(Json(compact(&health)))
}

/// A Flagger webhook body; Flagger sends more fields than these, which are ignored.
#[derive(Debug, Deserialize)]
struct FlaggerHook {
    name: String,
    namespace: String,
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// What Flagger is told for a verdict: 2xx proceeds, anything else halts (or, for
/// `confirm-promotion`, waits and asks again).
pub fn flagger_status(verdict: Verdict, allow_degraded: bool) -> StatusCode {
    match verdict {
        Verdict::Healthy => StatusCode::OK,
        Verdict::Degraded if allow_degraded => StatusCode::OK,
        Verdict::Pending => StatusCode::TOO_EARLY,
        Verdict::Degraded | Verdict::Unhealthy => StatusCode::PRECONDITION_FAILED,
    }
}

async fn flagger(
    State(evaluator): State<Evaluator>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), Error> {
    let body = body.map_err(|e| Error::invalid(format!("reading body: {}", e.body_text())))?;
    let hook: FlaggerHook = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid(format!("invalid Flagger webhook body: {e}")))?;
    let text = |key: &str| hook.metadata.get(key).filter(|v| !v.is_empty()).cloned();
    let version = text("version").ok_or_else(|| {
        Error::invalid(format!(
            "the webhook of canary {}/{} has no metadata.version: add `version: <the release>` to its metadata",
            hook.namespace, hook.name
        ))
    })?;
    let release = ReleaseRef {
        service: text("service").unwrap_or_else(|| hook.name.clone()),
        environment: Some(text("environment").unwrap_or_else(|| hook.namespace.clone())),
        version,
    };
    let allow_degraded = text("allow_degraded").is_some_and(|v| v == "true");
    let health = evaluator.health(release).await?;
    let status = flagger_status(health.verdict, allow_degraded);
    tracing::info!(
        canary = %format!("{}/{}", hook.namespace, hook.name),
        phase = hook.phase.as_deref().unwrap_or(""),
        verdict = health.verdict.as_str(),
        status = status.as_u16(),
        "answered a Flagger webhook"
    );
    Ok((status, Json(compact(&health))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_map_to_what_flagger_needs() {
        assert_eq!(flagger_status(Verdict::Healthy, false), StatusCode::OK);
        assert_eq!(
            flagger_status(Verdict::Pending, false),
            StatusCode::TOO_EARLY
        );
        assert_eq!(
            flagger_status(Verdict::Degraded, false),
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(flagger_status(Verdict::Degraded, true), StatusCode::OK);
        assert_eq!(
            flagger_status(Verdict::Unhealthy, true),
            StatusCode::PRECONDITION_FAILED
        );
    }
}
