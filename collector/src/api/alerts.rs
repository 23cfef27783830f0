//! HTTP routes of alerts, silences and the outbox (merged into the API router).
//!
//! - `GET /api/v1/alerts?state=&team=&service=` → `{"alerts": [...]}`, newest first
//! - `POST /api/v1/alerts/{id}/ack` (optional body `{"by": "..."}`) → `{"alert": {...}}`
//! - `POST /api/v1/silences` (SilenceRequest) → 201 `{"silence": {...}}`
//! - `GET /api/v1/silences` → `{"silences": [...]}`; `GET /api/v1/silences/{id}`
//! - `DELETE /api/v1/silences/{id}` (or `DELETE /api/v1/silences?id=`) → `{"deleted": id}`
//! - `GET /api/v1/outbox` → pending and failed deliveries and counters (never secrets)

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use bellwether_alerting::alerts::AlertEngine;
use bellwether_alerting::notify::outbox::OutboxView;
use bellwether_model::alert::{Alert, AlertFilter, AlertState};
use bellwether_model::silence::{Silence, SilenceRequest};
use bellwether_model::time::{now_unix_ms, rfc3339_utc};

pub fn routes(engine: AlertEngine) -> Router {
    Router::new()
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/alerts/{id}/ack", post(ack))
        .route(
            "/api/v1/silences",
            get(list_silences)
                .post(add_silence)
                .delete(delete_silence_query),
        )
        .route(
            "/api/v1/silences/{id}",
            get(get_silence).delete(delete_silence),
        )
        .route("/api/v1/outbox", get(outbox))
        .with_state(engine)
}

#[derive(Serialize)]
pub struct AlertJson {
    #[serde(flatten)]
    pub alert: Alert,
    pub started_at: String,
    pub resolved_at: Option<String>,
}

impl From<Alert> for AlertJson {
    fn from(alert: Alert) -> Self {
        Self {
            started_at: rfc3339_utc(alert.started_at_unix_ms),
            resolved_at: alert.resolved_at_unix_ms.map(rfc3339_utc),
            alert,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct AlertsQuery {
    state: Option<String>,
    team: Option<String>,
    service: Option<String>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

async fn list_alerts(
    State(engine): State<AlertEngine>,
    query: Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, Error> {
    let Query(query) = query?;
    let state = match non_empty(query.state).as_deref() {
        None => None,
        Some("firing") => Some(AlertState::Firing),
        Some("acknowledged") => Some(AlertState::Acknowledged),
        Some("resolved") => Some(AlertState::Resolved),
        Some(other) => {
            return Err(Error::invalid(format!(
                "invalid state {other:?}: firing, acknowledged or resolved"
            )))
        }
    };
    let filter = AlertFilter {
        state,
        team: non_empty(query.team),
        service: non_empty(query.service),
    };
    let alerts: Vec<AlertJson> = engine
        .alerts(filter)
        .await?
        .into_iter()
        .map(AlertJson::from)
        .collect();
    Ok(Json(serde_json::json!({ "alerts": alerts })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckRequest {
    by: Option<String>,
}

async fn ack(
    State(engine): State<AlertEngine>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, Error> {
    let Path(id) = path?;
    let body = body.map_err(|e| Error::invalid(format!("reading body: {}", e.body_text())))?;
    let request: AckRequest = if body.iter().all(u8::is_ascii_whitespace) {
        AckRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("invalid ack: {e}")))?
    };
    let alert = engine.acknowledge(id, request.by, now_unix_ms()).await?;
    Ok(Json(serde_json::json!({ "alert": AlertJson::from(alert) })))
}

async fn add_silence(
    State(engine): State<AlertEngine>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), Error> {
    let body = body.map_err(|e| Error::invalid(format!("reading body: {}", e.body_text())))?;
    let request: SilenceRequest = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid(format!("invalid silence: {e}")))?;
    let silence = engine.add_silence(request, now_unix_ms()).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "silence": silence })),
    ))
}

async fn list_silences(
    State(engine): State<AlertEngine>,
) -> Result<Json<serde_json::Value>, Error> {
    let silences: Vec<Silence> = engine.silences().await?;
    Ok(Json(serde_json::json!({ "silences": silences })))
}

async fn get_silence(
    State(engine): State<AlertEngine>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, Error> {
    let Path(id) = path?;
    let silence = engine.silence(id).await?;
    Ok(Json(serde_json::json!({ "silence": silence })))
}

async fn delete_silence(
    State(engine): State<AlertEngine>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, Error> {
    let Path(id) = path?;
    engine.remove_silence(id.clone()).await?;
    Ok(Json(serde_json::json!({ "deleted": id })))
}

#[derive(Debug, Default, Deserialize)]
struct IdQuery {
    id: Option<String>,
}

async fn delete_silence_query(
    State(engine): State<AlertEngine>,
    query: Result<Query<IdQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, Error> {
    let Query(query) = query?;
    let id = non_empty(query.id).ok_or_else(|| Error::invalid("pass ?id=<silence id>"))?;
    engine.remove_silence(id.clone()).await?;
    Ok(Json(serde_json::json!({ "deleted": id })))
}

async fn outbox(State(engine): State<AlertEngine>) -> Result<Json<OutboxView>, Error> {
    let outbox = engine.outbox().clone();
    let view = tokio::task::spawn_blocking(move || outbox.view()).await??;
    Ok(Json(view))
}
