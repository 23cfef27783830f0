//! The series a cluster node adds to `/metrics`.

use super::text::Text;
use crate::cluster::Node;

/// The cluster series of `/metrics` for `node`.
pub async fn render(node: &Node) -> String {
    let (published, failed, publish_seconds) = crate::cluster::api::publish_counts();
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
        published as f64,
    );
    out.sample(
        "cluster_publishes_total",
        &[("result", "failed")],
        failed as f64,
    );
    out.family(
        "cluster_publish_seconds_total",
        "counter",
        "Time spent waiting for the ingest stream to acknowledge publishes.",
    );
    out.sample("cluster_publish_seconds_total", &[], publish_seconds);
    out.finish()
}
