//! `bellwether serve --cluster`: a node of a Bellwether cluster over NATS JetStream.
//!
//! - [`settings`]: the `[cluster]` section and the `--cluster` / `--node-id` flags.
//! - [`node`]: what a node runs beside the single collector's parts: the partition
//!   leases, the ingest stream every batch and deployment is published to, and the
//!   replica that applies the whole stream, in order, to this node's sled store.
//! - [`api`]: `GET /api/v1/cluster`, `/readyz`, and the publish counters whose series
//!   [`crate::metrics::cluster`] renders with the node's own.
//!
//! Every node holds all counts (its replica) and evaluates every active release, so any
//! node answers every query and long-poll from its own store. Only the node holding a
//! service's partition records its verdicts in the shared store, fires its alerts and
//! delivers its notifications ([`bellwether_model::scope::Scope`]).

pub mod api;
pub mod node;
pub mod settings;

pub use node::Node;
pub use settings::{ClusterSettings, RawCluster};
