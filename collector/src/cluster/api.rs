//! `GET /readyz` (every collector) and `GET /api/v1/cluster` (a cluster node).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::Node;
use crate::error::Error;

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

async fn cluster(State(node): State<Option<Node>>) -> Result<Json<Value>, Error> {
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
    Ok(Json(json!({
        "node_id": settings.node_id,
        "advertise": settings.advertise,
        "partitions": settings.partitions,
        "owned": node.owned(),
        "ready": node.ready(),
        "applied_sequence": node.applied(),
        "holders": partitions,
    })))
}
