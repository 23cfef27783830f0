//! The pipeline between sources and the exporter.
//!
//! Sources hand [`Telemetry`] to a [`PipelineSender`] (a bounded channel: a full channel
//! makes sources wait, which is the back-pressure). One task ([`run_pipeline`]) receives
//! it, stamps the identity onto each resource ([`tagger`]), and groups records into
//! [`Batch`]es by count and age ([`batch`]) for the exporter.

pub mod batch;
pub mod tagger;

use std::sync::Arc;
use std::time::Duration;

use bellwether_proto::otlp::logs::ResourceLogs;
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::trace::ResourceSpans;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;
use tokio::sync::mpsc;
use tokio::time::Instant;

use batch::Pending;
pub use batch::{Batch, BatchIds, Payload};
pub use tagger::Tagger;

use crate::otlp::{log_record_count, span_count};
use crate::stats::{Source, Stats};

/// Telemetry as it enters the agent, untagged.
#[derive(Debug, Clone, PartialEq)]
pub enum Telemetry {
    Logs(Vec<ResourceLogs>),
    Spans(Vec<ResourceSpans>),
}

impl Telemetry {
    /// (log records, spans).
    fn counts(&self) -> (usize, usize) {
        match self {
            Telemetry::Logs(logs) => (log_record_count(logs), 0),
            Telemetry::Spans(spans) => (0, span_count(spans)),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    #[error("agent is shutting down")]
    Closed,
    #[error("agent queue is full")]
    Full,
}

/// The sources' end of the pipeline channel.
#[derive(Debug, Clone)]
pub struct PipelineSender {
    tx: mpsc::Sender<Telemetry>,
    stats: Arc<Stats>,
}

impl PipelineSender {
    /// Enqueues telemetry, waiting for room at most `wait` (forever when `None`). Once this
    /// returns `Ok` the data is the agent's responsibility.
    pub async fn submit(
        &self,
        source: Source,
        telemetry: Telemetry,
        wait: Option<Duration>,
    ) -> Result<(), SubmitError> {
        let (log_records, spans) = telemetry.counts();
        if log_records + spans == 0 {
            return Ok(());
        }
        let permit = match wait {
            None => self.tx.reserve().await.map_err(|_| SubmitError::Closed)?,
            Some(wait) => tokio::time::timeout(wait, self.tx.reserve())
                .await
                .map_err(|_| {
                    Stats::incr(&self.stats.refused_requests);
                    SubmitError::Full
                })?
                .map_err(|_| SubmitError::Closed)?,
        };
        permit.send(telemetry);
        self.stats
            .received(source)
            .add(log_records as u64, spans as u64);
        Ok(())
    }
}

/// Creates the pipeline channel.
pub fn channel(capacity: usize, stats: Arc<Stats>) -> (PipelineSender, mpsc::Receiver<Telemetry>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (PipelineSender { tx, stats }, rx)
}

/// Batching settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    pub max_records: usize,
    pub timeout: Duration,
}

/// Tags and batches until every sender is gone, then flushes what is left and returns.
pub async fn run_pipeline(
    mut rx: mpsc::Receiver<Telemetry>,
    tagger: Tagger,
    config: BatchConfig,
    mut ids: BatchIds,
    out: mpsc::Sender<Batch>,
) {
    let mut logs = Pending::<ResourceLogs>::default();
    let mut spans = Pending::<ResourceSpans>::default();
    let max = config.max_records.max(1);
    loop {
        let deadline = [logs.oldest(), spans.oldest()]
            .into_iter()
            .flatten()
            .min()
            .map(|oldest| oldest + config.timeout);
        let sleep = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = rx.recv() => {
                let now = Instant::now();
                match message {
                    Some(Telemetry::Logs(items)) => {
                        for mut item in items {
                            tagger.tag(&mut item.resource);
                            logs.push(item, now);
                        }
                    }
                    Some(Telemetry::Spans(items)) => {
                        for mut item in items {
                            tagger.tag(&mut item.resource);
                            spans.push(item, now);
                        }
                    }
                    None => break,
                }
                if emit_full(&mut logs, max, &mut ids, &out, logs_payload).await.is_err()
                    || emit_full(&mut spans, max, &mut ids, &out, spans_payload).await.is_err()
                {
                    return;
                }
            }
            () = sleep => {
                let now = Instant::now();
                let due = |oldest: Option<Instant>| oldest.is_some_and(|t| t + config.timeout <= now);
                let (logs_due, spans_due) = (due(logs.oldest()), due(spans.oldest()));
                if logs_due && emit_all(&mut logs, max, &mut ids, &out, logs_payload).await.is_err() {
                    return;
                }
                if spans_due && emit_all(&mut spans, max, &mut ids, &out, spans_payload).await.is_err() {
                    return;
                }
            }
        }
    }
    // Every source is gone: flush the rest.
    let _ = emit_all(&mut logs, max, &mut ids, &out, logs_payload).await;
    let _ = emit_all(&mut spans, max, &mut ids, &out, spans_payload).await;
}

/// The exporter is gone.
struct Closed;

/// Emits batches while at least a full batch is waiting.
async fn emit_full<T: batch::ResourceBatch>(
    pending: &mut Pending<T>,
    max: usize,
    ids: &mut BatchIds,
    out: &mpsc::Sender<Batch>,
    payload: fn(Vec<T>) -> Payload,
) -> Result<(), Closed> {
    while pending.count() >= max {
        emit_one(pending, max, ids, out, payload).await?;
    }
    Ok(())
}

/// Emits everything waiting.
async fn emit_all<T: batch::ResourceBatch>(
    pending: &mut Pending<T>,
    max: usize,
    ids: &mut BatchIds,
    out: &mpsc::Sender<Batch>,
    payload: fn(Vec<T>) -> Payload,
) -> Result<(), Closed> {
    while pending.count() > 0 {
        emit_one(pending, max, ids, out, payload).await?;
    }
    Ok(())
}

async fn emit_one<T: batch::ResourceBatch>(
    pending: &mut Pending<T>,
    max: usize,
    ids: &mut BatchIds,
    out: &mpsc::Sender<Batch>,
    payload: fn(Vec<T>) -> Payload,
) -> Result<(), Closed> {
    let Some((items, records)) = pending.take(max, Instant::now()) else {
        return Ok(());
    };
    let batch = Batch {
        id: ids.next_id(),
        records,
        payload: payload(items),
    };
    out.send(batch).await.map_err(|_| Closed)
}

fn logs_payload(resource_logs: Vec<ResourceLogs>) -> Payload {
    Payload::Logs(ExportLogsServiceRequest { resource_logs })
}

fn spans_payload(resource_spans: Vec<ResourceSpans>) -> Payload {
    Payload::Spans(ExportTraceServiceRequest { resource_spans })
}

#[cfg(test)]
mod tests;
