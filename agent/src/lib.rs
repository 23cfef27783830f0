//! `bellwether-agent`: runs beside a service, tags its logs and spans with the release
//! identity, and ships them to a Bellwether collector.
//!
//! # Layout
//!
//! ```text
//! sources ──Telemetry──▶ pipeline ──Payload──▶ queue ──EncodedBatch──▶ export ──▶ collector
//!  otlp_grpc             tag, cut batches      durable segment         in order, retry
//!  otlp_http             by count and size;    files, byte-bounded;    with backoff; sent
//!  stdin ─┐              submit() returns      each batch encoded      as stored, deleted
//!  files ─┼─ parse       once flushed to       and compressed once,    once the collector
//!  exec ──┘              the queue             its id fixed            accepted it
//! ```
//!
//! (parse: lines → multi-line join → JSON / logfmt / plain records.) What travels between
//! the pipeline, the queue and the exporter is in the [`batch`] format.
//!
//! Modules only use modules in the rows below their own (the workspace's `tests/tests/layering.rs`
//! checks that the graph has no cycle):
//!
//! ```text
//! run  cli                 wiring and shutdown; command-line flags
//! config  admin            settings, composed; the admin endpoint
//! sources                  receivers and line sources
//! pipeline  export         tagging and batching into the queue; the queue to the collector
//! queue                    the durable store of encoded batches
//! batch  parse             the batch format; lines into log records
//! identity  otlp  stats    release identity; OTLP helpers; counters and the clock
//! ```
//!
//! - [`identity`]: resolves the release identity (flags, `BELLWETHER_*`, `OTEL_*`,
//!   release file) from an environment map passed in by `main`.
//! - [`sources`]: OTLP/gRPC and OTLP/HTTP receivers, and the line sources (standard
//!   input, tailed files, the stdout / stderr of a wrapped command), whose lines
//!   [`parse`] joins into multi-line records and turns into log records. A source
//!   acknowledges data once it is durably queued (`submit` returned).
//! - [`pipeline`]: one task that stamps the identity onto every resource
//!   ([`pipeline::tagger`]), cuts batches by record count and encoded size
//!   ([`pipeline::pending`]), and appends them to the queue, acknowledging submissions
//!   appended together at once.
//! - [`batch`]: what a batch holds, its wire form (the encoded export request and its
//!   [`Compression`](batch::Compression)), log records kept encoded, and the request
//!   framing around them.
//! - [`queue`]: the durable, byte-bounded queue in the data directory; batch ids are
//!   fixed when a batch is queued, so re-sends after a restart are recognised.
//! - [`export`]: sends queued batches with their `bellwether-batch-id`, as stored (gzip
//!   or not), retrying transient failures with exponential backoff and jitter.
//! - [`stats`] counters, served by [`admin`] on `/healthz`, `/readyz`, `/metrics` and
//!   `/stats`.
//! - [`otlp`]: small helpers over the OTLP types.
//! - [`config`]: the run configuration, composed of each module's settings; [`cli`]
//!   builds it from flags and `BELLWETHER_*` variables.
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
