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
use crate::metrics::text::Text;
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

/// The cluster series of `/metrics` for `node`.
pub async fn metrics(node: &Node) -> String {
    let mut out = Text::default();
    let owned = node.owned().len();
    out.family(
        "cluster_partitions",
        "gauge",
        "Partitions the services are spread over.",
    );
    out.sample(
        "cluster_partitions",
        &[],
        f64::from(node.settings().partitions),
    );
    out.family(
        "cluster_partitions_owned",
        "gauge",
        "Partitions this node holds the lease of.",
    );
    out.sample("cluster_partitions_owned", &[], owned as f64);
    out.family(
        "cluster_lease_changes_total",
        "counter",
        "Partitions this node gained or lost since it started.",
    );
    let (gained, lost) = node.lease_changes();
    out.sample(
        "cluster_lease_changes_total",
        &[("change", "gained")],
        gained as f64,
    );
    out.sample(
        "cluster_lease_changes_total",
        &[("change", "lost")],
        lost as f64,
    );
    out.family(
        "cluster_ready",
        "gauge",
        "1 once this node's replica caught up at start.",
    );
    out.sample("cluster_ready", &[], if node.ready() { 1.0 } else { 0.0 });
    out.family(
        "cluster_replica_applied_sequence",
        "gauge",
        "Last ingest stream sequence this node's replica applied.",
    );
    out.sample(
        "cluster_replica_applied_sequence",
        &[],
        node.applied() as f64,
    );
    if let Ok(last) = node.log().last_sequence().await {
        out.family(
            "cluster_replica_pending_messages",
            "gauge",
            "Ingest stream messages this node's replica has not applied yet.",
        );
        out.sample(
            "cluster_replica_pending_messages",
            &[],
            last.saturating_sub(node.applied()) as f64,
        );
    }
    out.family(
        "cluster_publishes_total",
        "counter",
        "Publishes to the ingest stream by result (a failed one was answered 429 / RESOURCE_EXHAUSTED).",
    );
    out.sample(
        "cluster_publishes_total",
        &[("result", "ok")],
        PUBLISHED.load(Ordering::Relaxed) as f64,
    );
    out.sample(
        "cluster_publishes_total",
        &[("result", "failed")],
        PUBLISH_FAILED.load(Ordering::Relaxed) as f64,
    );
    out.family(
        "cluster_publish_seconds_total",
        "counter",
        "Time spent waiting for the ingest stream to acknowledge publishes.",
    );
    out.sample(
        "cluster_publish_seconds_total",
        &[],
        PUBLISH_MICROS.load(Ordering::Relaxed) as f64 / 1e6,
    );
    out.finish()
}
