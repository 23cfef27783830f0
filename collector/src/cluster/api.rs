//! `GET /readyz` (every collector) and `GET /api/v1/cluster` (a cluster node).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use std::sync::atomic::{AtomicU64, Ordering};

use super::Node;
use crate::error::Error;
use bellwether_cluster::partition_of;

pub fn routes(node: Option<Node>) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .route("/api/v1/cluster", get(cluster))
        .with_state(node)
}

/// Ready once the store is open; a cluster node once its replica caught up with the
/// stream as it was when the node started.
async fn readyz(State(node): State<Option<Node>>) -> (StatusCode, Json<Value>) {
    match node {
        Some(node) if !node.ready() => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "catching up",
                "applied_sequence": node.applied(),
            })),
        ),
        _ => (StatusCode::OK, Json(json!({ "status": "ready" }))),
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterQuery {
    /// Also say which partition this service is in and who holds it.
    service: Option<String>,
}

async fn cluster(
    State(node): State<Option<Node>>,
    query: Result<Query<ClusterQuery>, QueryRejection>,
) -> Result<Json<Value>, Error> {
    let Query(query) = query?;
    let Some(node) = node else {
        return Err(Error::NotFound(
            "this collector is not a cluster node (serve --cluster)".into(),
        ));
    };
    let settings = node.settings();
    let partitions: Vec<Value> = node
        .holders()
        .await
        .into_iter()
        .map(|(partition, holder)| match holder {
            Some((node, api)) => json!({ "partition": partition, "node": node, "api": api }),
            None => json!({ "partition": partition, "node": null }),
        })
        .collect();
    let service = query.service.filter(|s| !s.is_empty()).map(|service| {
        let partition = partition_of(&service, settings.partitions);
        let holder = partitions
            .get(partition as usize)
            .map_or(Value::Null, |p| p["node"].clone());
        json!({ "name": service, "partition": partition, "node": holder })
    });
    let leader = node.log().leader().await.ok();
    Ok(Json(json!({
        "node_id": settings.node_id,
        "service": service,
        "ingest_leader": leader,
        "advertise": settings.advertise,
        "partitions": settings.partitions,
        "owned": node.owned(),
        "ready": node.ready(),
        "applied_sequence": node.applied(),
        "holders": partitions,
    })))
}

static PUBLISHED: AtomicU64 = AtomicU64::new(0);
static PUBLISH_FAILED: AtomicU64 = AtomicU64::new(0);
static PUBLISH_MICROS: AtomicU64 = AtomicU64::new(0);

/// Counts one publish to the ingest stream (a batch's parts, or a deployment).
pub fn published(took: std::time::Duration, ok: bool) {
    let counter = if ok { &PUBLISHED } else { &PUBLISH_FAILED };
    counter.fetch_add(1, Ordering::Relaxed);
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    PUBLISH_MICROS.fetch_add(micros, Ordering::Relaxed);
}

/// (publishes acknowledged, publishes failed, seconds spent waiting for acks).
pub fn publish_counts() -> (u64, u64, f64) {
    (
        PUBLISHED.load(Ordering::Relaxed),
        PUBLISH_FAILED.load(Ordering::Relaxed),
        PUBLISH_MICROS.load(Ordering::Relaxed) as f64 / 1e6,
    )
}
