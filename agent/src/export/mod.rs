//! The exporter: reads batches from the durable queue in order and ships them to the
//! collector, up to `concurrency` at once (each retried on its own with backoff), so the
//! collector's time to store one batch overlaps the sending of the next. A batch leaves
//! the queue only once the collector accepted it, or refused it with a non-retryable
//! status (then it is dropped and counted); batches may complete out of order, which the
//! collector does not mind: each carries its own id. When shutdown's flush deadline
//! passes, the exporter stops and whatever is left stays queued for the next start.
//!
//! - [`grpc`]: the OTLP/gRPC [`Transport`] (gzip or none, `bellwether-batch-id`
//!   metadata; the queued request bytes are sent as they are).
//! - [`retry`]: error classification and backoff.
//! - [`credentials`]: the bearer token and TLS settings presented to the collector.
//!
//! A collector refusing the agent's credentials (`UNAUTHENTICATED`, `PERMISSION_DENIED`)
//! does not cost data: the batch stays queued and is retried with backoff, each refusal
//! logged as an error, so a token fixed or rotated on either side lets delivery resume.

pub mod credentials;
pub mod grpc;
pub mod retry;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::watch;
use tonic::Status;
use tracing::{debug, error, warn};

pub use credentials::{CredentialSources, Credentials, CredentialsError, Token};
pub use grpc::{GrpcTransport, InvalidCollectorUrl};
pub use retry::{Backoff, Class, RetryPolicy};

use crate::batch::{EncodedBatch, Kind};
use crate::queue::{Queue, Read};
use crate::stats::{now_unix_ms, DropReason, Stats};

/// Pause before retrying after the queue's storage failed to read or delete.
const STORAGE_RETRY: Duration = Duration::from_secs(1);

/// What the collector said about an accepted batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Records the collector rejected (OTLP partial success).
    pub rejected: u64,
    pub message: String,
}

/// Default number of batches in flight to the collector at once.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Sends one batch; implemented by [`GrpcTransport`]. Clones share the connection.
pub trait Transport: Clone + Send + 'static {
    fn export(
        &mut self,
        batch: &EncodedBatch,
    ) -> impl Future<Output = Result<Accepted, Status>> + Send;
}

/// How one batch's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Accepted by the collector (possibly with some records rejected).
    Delivered,
    /// Refused as non-retryable: dropped and counted.
    Dropped,
    /// `give_up` turned true first; the batch stays queued.
    GaveUp,
}

/// Exports queued batches, oldest first and up to `concurrency` at once, until the
/// queue's input is closed and nothing is left, or until `give_up` turns true (shutdown's
/// flush deadline).
pub async fn run_exporter<T: Transport>(
    queue: Queue,
    transport: T,
    policy: RetryPolicy,
    stats: Arc<Stats>,
    mut give_up: watch::Receiver<bool>,
    concurrency: usize,
) {
    let concurrency = concurrency.max(1);
    let mut cursor = None;
    let mut input_done = false;
    // A read failed while batches were in flight: try again once one of them is done.
    let mut stalled = false;
    let mut in_flight = FuturesUnordered::new();
    loop {
        // Start batches until the window is full or nothing more is queued.
        while in_flight.len() < concurrency {
            let Some(seq) = queue.next_after(cursor) else {
                break;
            };
            match queue.read_encoded(seq) {
                Ok(Read::Batch(batch)) => {
                    cursor = Some(seq);
                    let (mut transport, stats) = (transport.clone(), stats.clone());
                    let mut give_up = give_up.clone();
                    in_flight.push(async move {
                        let outcome =
                            deliver(&mut transport, &batch, policy, &stats, &mut give_up).await;
                        (seq, outcome)
                    });
                }
                Ok(Read::Corrupt | Read::Gone) => cursor = Some(seq),
                Err(e) => {
                    error!(seq, error = %e, "cannot read the queue, retrying");
                    if in_flight.is_empty() {
                        if pause(STORAGE_RETRY, &mut give_up).await {
                            return;
                        }
                    } else {
                        stalled = true;
                    }
                    break;
                }
            }
        }
        if in_flight.is_empty() {
            if input_done {
                return;
            }
            tokio::select! {
                more = queue.wait_for_more(cursor) => input_done = !more,
                () = crate::signalled(&mut give_up) => return,
            }
            continue;
        }
        let room = in_flight.len() < concurrency && !input_done && !stalled;
        tokio::select! {
            done = in_flight.next() => {
                stalled = false;
                let Some((seq, outcome)) = done else { continue };
                match outcome {
                    Outcome::GaveUp => return,
                    Outcome::Delivered | Outcome::Dropped => {
                        if let Err(e) = queue.remove(seq) {
                            // Left in place, it is re-sent after a restart and the
                            // collector ignores its known batch id.
                            error!(seq, error = %e, "cannot delete a delivered batch from the queue");
                        }
                    }
                }
            }
            more = queue.wait_for_more(cursor), if room => input_done = !more,
            () = crate::signalled(&mut give_up) => return,
        }
    }
}

/// Sleeps unless told to give up first; returns whether it was.
async fn pause(delay: Duration, give_up: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        () = crate::signalled(give_up) => true,
    }
}

async fn deliver<T: Transport>(
    transport: &mut T,
    batch: &EncodedBatch,
    policy: RetryPolicy,
    stats: &Stats,
    give_up: &mut watch::Receiver<bool>,
) -> Outcome {
    let mut backoff = Backoff::new(policy);
    let mut attempt: u32 = 1;
    loop {
        let started = Instant::now();
        let result = tokio::select! {
            result = transport.export(batch) => result,
            () = crate::signalled(give_up) => return Outcome::GaveUp,
        };
        stats.export_duration.observe(started.elapsed());
        let status = match result {
            Ok(accepted) => {
                record_success(stats, batch, &accepted);
                return Outcome::Delivered;
            }
            Err(status) => status,
        };
        let jitter = rand::random::<f64>();
        let delay = match retry::classify(&status) {
            Class::NonRetryable => {
                warn!(
                    batch_id = %batch.id,
                    records = batch.records,
                    code = ?status.code(),
                    error = %status.message(),
                    "collector refused batch, dropping it"
                );
                stats.dropped(DropReason::NonRetryable, batch.records as u64);
                Stats::incr(&stats.batches_dropped);
                return Outcome::Dropped;
            }
            Class::Unauthorized => {
                let delay = backoff.next_delay(jitter);
                Stats::incr(&stats.retries);
                error!(
                    batch_id = %batch.id,
                    attempt,
                    code = ?status.code(),
                    error = %status.message(),
                    delay_ms = delay.as_millis() as u64,
                    hint = unauthorized_hint(status.code()),
                    "collector refused the agent's credentials, keeping the batch queued and retrying"
                );
                attempt = attempt.saturating_add(1);
                if pause(delay, give_up).await {
                    return Outcome::GaveUp;
                }
                continue;
            }
            Class::Retryable => backoff.next_delay(jitter),
            Class::Throttled(hint) => backoff.throttled_delay(hint, jitter),
        };
        Stats::incr(&stats.retries);
        warn!(
            batch_id = %batch.id,
            attempt,
            code = ?status.code(),
            error = %status.message(),
            delay_ms = delay.as_millis() as u64,
            "export failed, retrying"
        );
        attempt = attempt.saturating_add(1);
        if pause(delay, give_up).await {
            return Outcome::GaveUp;
        }
    }
}

fn unauthorized_hint(code: tonic::Code) -> &'static str {
    if code == tonic::Code::PermissionDenied {
        "the token lacks the ingest scope"
    } else {
        "check --token / --token-file and the collector's tokens"
    }
}

fn record_success(stats: &Stats, batch: &EncodedBatch, accepted: &Accepted) {
    let rejected = accepted.rejected.min(batch.records as u64);
    let exported = batch.records as u64 - rejected;
    match batch.kind {
        Kind::Logs => stats.exported.add(exported, 0),
        Kind::Spans => stats.exported.add(0, exported),
        Kind::Metrics => stats.exported.add_metrics(exported),
    }
    if rejected > 0 {
        warn!(
            batch_id = %batch.id,
            rejected,
            error = %accepted.message,
            "collector rejected part of a batch"
        );
        stats.dropped(DropReason::RejectedByCollector, rejected);
    }
    Stats::incr(&stats.batches_exported);
    stats
        .last_export_unix_ms
        .store(now_unix_ms(), Ordering::Relaxed);
    debug!(batch_id = %batch.id, kind = batch.kind.as_str(), records = batch.records, "batch exported");
}

#[cfg(test)]
mod tests;
