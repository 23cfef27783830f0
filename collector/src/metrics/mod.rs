//! `GET /metrics`: the collector in the Prometheus text format, on the HTTP API listener.
//!
//! # Layout
//!
//! - [`registry`]: counters bumped where things happen — ingest requests, records and
//!   latency, notification attempts per receiver and result.
//! - [`releases`]: series computed at scrape time from the store, the evaluator's latest
//!   verdicts and the alert engine. Only active releases (the evaluator's definition:
//!   started within `active_window`, and the newest of their environment or still
//!   serving) are exported, so label sets stay bounded.
//! - [`text`]: the exposition format writer.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `bellwether_release_error_ratio` | gauge | service, environment, version |
//! | `bellwether_release_errors_total`, `bellwether_release_exposure_total` | counter | service, environment, version |
//! | `bellwether_release_verdict` | gauge (1 for the current verdict) | service, environment, version, verdict |
//! | `bellwether_release_start_time_seconds` | gauge | service, environment, version |
//! | `bellwether_deployments_total` | counter | service, environment |
//! | `bellwether_alerts` | gauge | state, team |
//! | `bellwether_notifications_total` | counter | receiver, result |
//! | `bellwether_ingest_requests_total` | counter | signal, result |
//! | `bellwether_ingest_records_total` | counter | signal |
//! | `bellwether_ingest_duration_seconds` | histogram | signal |
//! | `bellwether_limit_exceeded_total` | counter | limit (see [`crate::limits`]) |
//! | `bellwether_data_dir_free_bytes` | gauge | |
//! | `bellwether_build_info` | gauge | version |
//! | `bellwether_cluster_*` (a cluster node only) | see [`cluster::render`] | |

pub mod cluster;
pub mod registry;
pub mod releases;
pub mod text;

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::evaluate::Evaluator;
use bellwether_alerting::alerts::AlertEngine;
use bellwether_store::ReleaseStore;

pub use registry::Signal;
pub use registry::{ingested, log_records, spans};

/// What a scrape reads.
#[derive(Clone)]
pub struct Sources {
    pub store: Arc<dyn ReleaseStore>,
    pub evaluator: Evaluator,
    pub alerts: AlertEngine,
    /// A cluster node adds its series ([`cluster::render`]).
    pub cluster: Option<crate::cluster::Node>,
}

/// The `/metrics` route.
pub fn routes(sources: Sources) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(sources)
}

async fn scrape(State(sources): State<Sources>) -> Response {
    match releases::render(&sources).await {
        Ok(mut body) => {
            if let Some(node) = &sources.cluster {
                body.push_str(&cluster::render(node).await);
            }
            ([(header::CONTENT_TYPE, text::CONTENT_TYPE)], body).into_response()
        }
        Err(error) => {
            tracing::warn!(error = %error, "rendering metrics failed");
            error.into_response()
        }
    }
}
