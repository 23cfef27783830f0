//! `bellwether-agent`: runs beside a service, tags its logs and spans with the release
//! identity, and ships them to a Bellwether collector.
//!
//! # Layout
//!
//! ```text
//! sources ──Telemetry──▶ pipeline (tag + batch) ──▶ queue ──▶ export ──OTLP/gRPC──▶ collector
//!  otlp_grpc   submit() returns once     durable, sled   in order, retry, backoff,
//!  otlp_http   the data is flushed       in data dir,    delete after the collector
//!  stdin ─ parse  to the queue           byte-bounded    accepted it
//!  files ─ parse
//!  exec ── parse  (parse: lines → multi-line join → JSON / logfmt / plain records)
//! ```
//!
//! - [`identity`]: resolves the release identity (flags, `BELLWETHER_*`, `OTEL_*`,
//!   release file) from an environment map passed in by `main`.
//! - [`sources`]: OTLP/gRPC and OTLP/HTTP receivers, and the line sources (standard
//!   input, tailed files, the stdout / stderr of a wrapped command), whose lines
//!   [`parse`] joins into multi-line records and turns into log records. A source acknowledges data once it is durably
//!   queued (`submit` returned).
//! - [`pipeline`]: one task that stamps the identity onto every resource
//!   ([`pipeline::tagger`]), cuts batches by record count and encoded size, and appends
//!   them to the queue, acknowledging submissions appended together at once.
//! - [`queue`]: the durable, byte-bounded queue in the data directory; batch ids are
//!   fixed when a batch is queued, so re-sends after a restart are recognised.
//! - [`export`]: sends queued batches with gzip and their `bellwether-batch-id`, retrying
//!   transient failures with exponential backoff and jitter.
//! - [`stats`] counters, served by [`admin`] on `/healthz`, `/readyz`, `/metrics` and
//!   `/stats`.
//! - [`run()`] wires it all together and owns the shutdown sequence: stop receivers,
//!   drain the pipeline into the queue, deliver within the flush timeout, keep the rest
//!   queued for the next start.

#![forbid(unsafe_code)]

pub mod admin;
pub mod batch;
pub mod cli;
pub mod config;
pub mod export;
pub mod identity;
pub mod otlp;
pub mod parse;
pub mod pipeline;
pub mod queue;
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
