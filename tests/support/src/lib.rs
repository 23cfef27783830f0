//! What Bellwether's tests share.
//!
//! The collector's integration tests (`collector/tests`, an in-process collector) and the
//! end-to-end tests (`bellwether-e2e`, the real binaries) need the same pieces around the
//! collector: something that plays a notification receiver, traffic for a release, a child
//! process whose ports are learnt from its log, an HTTP client and a way to wait. They live
//! here once. This crate sits below both: it depends on the wire types
//! (`bellwether-proto`) and the model's clock and buckets (`bellwether-model`), never on
//! the collector, so both can use it without a cycle.
//!
//! # Layout
//!
//! - [`receiver`]: a real HTTP server on loopback that records every request (method,
//!   path, headers, body) and answers as scripted (failures, delays).
//! - [`otlp`]: OTLP requests stamped with a release's identity: resources, log records
//!   with exception attributes, logs and spans with a given error share, and the gRPC
//!   export of log records.
//! - [`traffic`]: a release's log traffic as the verdict tests lay it down: the previous
//!   release's baseline and the error mix of the release under test.
//! - [`process`]: a child process whose stderr is collected and scanned for
//!   `listening kind=… addr=…`, stopped by SIGTERM or killed when dropped.
//! - [`http`]: requests to an HTTP API, answered with status and body.
//! - [`nats`]: a NATS JetStream cluster of real `nats-server` processes on free loopback
//!   ports, for the cluster stores and leases.
//! - [`eventually`] polls with a deadline; [`clock`] gives the timestamps traffic needs.

#![forbid(unsafe_code)]

pub mod clock;
pub mod http;
pub mod nats;
pub mod otlp;
pub mod process;
pub mod receiver;
pub mod traffic;

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

/// How often [`eventually`] checks again.
const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns `Some`, or fails after `timeout` with the last error
/// `check` returned (or a timeout message when it never failed).
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() > deadline {
            return Err(last_error.unwrap_or_else(|| anyhow!("condition not met in {timeout:?}")));
        }
        tokio::time::sleep(POLL).await;
    }
}
