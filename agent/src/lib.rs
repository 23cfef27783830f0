//! `bellwether-agent`: runs beside a service, tags its logs and spans with the release
//! identity, and ships them to a Bellwether collector.
//!
//! # Layout
//!
//! ```text
//! sources ──Telemetry──▶ pipeline (tag + batch) ──Batch──▶ export ──OTLP/gRPC──▶ collector
//!  otlp_grpc            bounded channel            bounded     retry, backoff,
//!  otlp_http            = back-pressure            channel     batch ids
//!  stdin ─ parse
//! ```
//!
//! - [`identity`]: resolves the release identity (flags, `BELLWETHER_*`, `OTEL_*`,
//!   release file) from an environment map passed in by `main`.
//! - [`sources`]: OTLP/gRPC and OTLP/HTTP receivers, and standard input, whose lines
//!   [`parse`] turns into log records. A source acknowledges data once it is enqueued.
//! - [`pipeline`]: one task that stamps the identity onto every resource
//!   ([`pipeline::tagger`]) and groups records into batches by count and age.
//! - [`export`]: sends batches with gzip and a `bellwether-batch-id`, retrying transient
//!   failures with exponential backoff and jitter.
//! - [`stats`] counters, served by [`admin`] on `/healthz` and `/stats`.
//! - [`run()`] wires it all together and owns the shutdown sequence: stop receivers,
//!   drain the pipeline, flush to the collector within the flush timeout.
//!
//! Queued data lives in memory for now; a durable queue in the data directory, and file
//! tailing as another source, slot in between the pipeline and the exporter and beside
//! the other sources respectively.

#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod export;
pub mod identity;
pub mod otlp;
pub mod parse;
pub mod pipeline;
mod run;
pub mod sources;
pub mod stats;

pub use config::{Config, Listen, ListenAddrs, Listeners};
pub use run::{run, Input, RunError, RunReport};

/// Resolves once the flag turns true; never, if its sender is dropped without setting it.
pub(crate) async fn signalled(flag: &mut tokio::sync::watch::Receiver<bool>) {
    if flag.wait_for(|set| *set).await.is_err() {
        std::future::pending::<()>().await;
    }
}
