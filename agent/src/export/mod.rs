//! The exporter: ships batches to the collector one at a time, retrying transient
//! failures with backoff until they succeed, the failure proves permanent, or shutdown's
//! flush deadline passes.
//!
//! - [`grpc`]: the OTLP/gRPC [`Transport`] (gzip, `bellwether-batch-id` metadata).
//! - [`retry`]: error classification and backoff.

pub mod grpc;
pub mod retry;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tonic::Status;
use tracing::{debug, warn};

pub use grpc::{GrpcTransport, InvalidCollectorUrl};
pub use retry::{Backoff, Class, RetryPolicy};

use crate::pipeline::{Batch, Payload};
use crate::stats::{DropReason, Stats};

/// What the collector said about an accepted batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Records the collector rejected (OTLP partial success).
    pub rejected: u64,
    pub message: String,
}

/// Sends one batch; implemented by [`GrpcTransport`].
pub trait Transport: Send + 'static {
    fn export(&mut self, batch: &Batch) -> impl Future<Output = Result<Accepted, Status>> + Send;
}

/// Exports batches until the channel closes. When `give_up` turns true (shutdown's flush
/// deadline), the batch in flight and all still queued are counted as lost.
pub async fn run_exporter<T: Transport>(
    mut batches: mpsc::Receiver<Batch>,
    mut transport: T,
    policy: RetryPolicy,
    stats: Arc<Stats>,
    mut give_up: watch::Receiver<bool>,
) {
    while let Some(batch) = batches.recv().await {
        if *give_up.borrow() {
            lose(&stats, &batch);
            continue;
        }
        deliver(&mut transport, &batch, policy, &stats, &mut give_up).await;
    }
}

async fn deliver<T: Transport>(
    transport: &mut T,
    batch: &Batch,
    policy: RetryPolicy,
    stats: &Stats,
    give_up: &mut watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(policy);
    let mut attempt: u32 = 1;
    loop {
        let result = tokio::select! {
            result = transport.export(batch) => result,
            () = crate::signalled(give_up) => {
                lose(stats, batch);
                return;
            }
        };
        let status = match result {
            Ok(accepted) => {
                record_success(stats, batch, &accepted);
                return;
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
                return;
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
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = crate::signalled(give_up) => {
                lose(stats, batch);
                return;
            }
        }
    }
}

fn record_success(stats: &Stats, batch: &Batch, accepted: &Accepted) {
    let rejected = accepted.rejected.min(batch.records as u64);
    let exported = batch.records as u64 - rejected;
    match batch.payload {
        Payload::Logs(_) => stats.exported.add(exported, 0),
        Payload::Spans(_) => stats.exported.add(0, exported),
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
    debug!(batch_id = %batch.id, kind = batch.payload.kind(), records = batch.records, "batch exported");
}

fn lose(stats: &Stats, batch: &Batch) {
    stats.dropped(DropReason::Shutdown, batch.records as u64);
    Stats::incr(&stats.batches_dropped);
}

#[cfg(test)]
mod tests;
