//! Wire types shared by every Bellwether crate.
//!
//! - [`v1`]: Bellwether's own gRPC API (`bellwether.v1.ReleaseService`), generated from
//!   `proto/bellwether/v1/*.proto` at build time.
//! - [`otlp`]: the OpenTelemetry protocol types and gRPC services, re-exported from
//!   `opentelemetry-proto` so the agent and the collector speak exactly one definition.
//! - [`BATCH_ID_HEADER`]: the metadata key that carries an export batch's id end to end.

#![forbid(unsafe_code)]

/// Bellwether's release API.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("bellwether.v1");
}

/// OTLP types and services (logs, traces, metrics).
pub mod otlp {
    pub use opentelemetry_proto::tonic::collector::logs::v1 as logs_service;
    pub use opentelemetry_proto::tonic::collector::metrics::v1 as metrics_service;
    pub use opentelemetry_proto::tonic::collector::trace::v1 as trace_service;
    pub use opentelemetry_proto::tonic::common::v1 as common;
    pub use opentelemetry_proto::tonic::logs::v1 as logs;
    pub use opentelemetry_proto::tonic::metrics::v1 as metrics;
    pub use opentelemetry_proto::tonic::resource::v1 as resource;
    pub use opentelemetry_proto::tonic::trace::v1 as trace;
}

/// gRPC metadata (and HTTP header) key carrying an export batch's id:
/// `<instance id>-<sequence>`. The collector applies a batch id at most once.
pub const BATCH_ID_HEADER: &str = "bellwether-batch-id";
