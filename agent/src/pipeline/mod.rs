//! The pipeline between sources and the durable queue.
//!
//! Sources hand [`Telemetry`] to a [`PipelineSender`]. [`PipelineSender::submit`] first
//! reserves room in the queue (waiting while it is full: the back-pressure), then passes
//! the telemetry to one task ([`run_pipeline`]) that stamps the identity onto each
//! resource ([`tagger`]), cuts batches by record count and encoded size ([`pending`]) and
//! appends them to the [`Queue`]. `submit` returns only once that append is flushed to
//! disk, so a source that acknowledges after `submit` never acknowledges data a crash can
//! lose. Submissions that arrive together are appended (and flushed) together.

pub mod pending;
pub mod tagger;

use std::sync::Arc;
use std::time::Duration;

use bellwether_proto::otlp::logs::ResourceLogs;
use bellwether_proto::otlp::metrics::ResourceMetrics;
use bellwether_proto::otlp::metrics_service::ExportMetricsServiceRequest;
use bellwether_proto::otlp::resource::Resource;
use bellwether_proto::otlp::trace::ResourceSpans;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;
use prost::Message;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::error;

use pending::Pending;
pub use tagger::Tagger;

use crate::batch::{EncodedLogs, Payload, ResourceBatch};
use crate::otlp::{log_record_count, span_count};
use crate::queue::{Admission, Queue};
use crate::stats::{Source, Stage, Stats};

/// Default bound of one batch's encoded size.
pub const DEFAULT_BATCH_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Default bound of the data sources handed over that is not appended yet, in encoded
/// bytes (its decoded form in memory is a few times larger).
pub const DEFAULT_MAX_IN_FLIGHT_BYTES: usize = 8 * 1024 * 1024;

/// Longest the pipeline waits for more submissions to append together with the first
/// one, and only while submissions arrive concurrently (the previous append carried
/// several): every submitter is waiting on the append, so a lone one must not wait.
/// Without lingering, submissions that arrive during an append still share the next.
const GROUP_LINGER: Duration = Duration::from_millis(2);

/// Telemetry as it enters the agent, untagged.
#[derive(Debug, Clone, PartialEq)]
pub enum Telemetry {
    Logs(Vec<ResourceLogs>),
    /// Logs whose records a source encoded as it made them.
    EncodedLogs(Vec<EncodedLogs>),
    Spans(Vec<ResourceSpans>),
    Metrics(Vec<ResourceMetrics>),
}

impl Telemetry {
    /// (log records, spans, metrics).
    fn counts(&self) -> (usize, usize, usize) {
        match self {
            Telemetry::Logs(logs) => (log_record_count(logs), 0, 0),
            Telemetry::EncodedLogs(logs) => (logs.iter().map(ResourceBatch::count).sum(), 0, 0),
            Telemetry::Spans(spans) => (0, span_count(spans), 0),
            Telemetry::Metrics(metrics) => (0, 0, metrics.iter().map(ResourceBatch::count).sum()),
        }
    }

    /// Encoded size of each item: their sum is the estimate of the room it takes in the
    /// queue, and batching reuses them.
    fn encoded_lens(&self) -> Vec<usize> {
        match self {
            Telemetry::Logs(logs) => logs.iter().map(Message::encoded_len).collect(),
            Telemetry::EncodedLogs(logs) => logs.iter().map(ResourceBatch::batch_len).collect(),
            Telemetry::Spans(spans) => spans.iter().map(Message::encoded_len).collect(),
            Telemetry::Metrics(metrics) => metrics.iter().map(Message::encoded_len).collect(),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    #[error("agent is shutting down")]
    Closed,
    #[error("agent queue is full")]
    Full,
    #[error("agent's disk is full: retry later")]
    DiskFull,
    #[error("agent queue storage failed: {0}")]
    Storage(String),
}

/// One hand-over from a source.
#[derive(Debug)]
pub struct Submission {
    telemetry: Telemetry,
    /// Encoded size of each item, before tagging.
    sizes: Vec<usize>,
    /// Room reserved in the queue; released once the data is appended.
    admission: Admission,
    /// Memory reserved for the data until it is appended.
    memory: OwnedSemaphorePermit,
    ack: oneshot::Sender<Result<(), SubmitError>>,
}

/// The sources' end of the pipeline channel.
#[derive(Debug, Clone)]
pub struct PipelineSender {
    tx: mpsc::Sender<Submission>,
    queue: Queue,
    stats: Arc<Stats>,
    /// Encoded bytes submitted and not appended yet, bounded.
    memory: Arc<Semaphore>,
    max_in_flight: u32,
}

impl PipelineSender {
    /// Hands telemetry over, waiting for room in the queue at most `wait` (forever when
    /// `None`). Returns `Ok` once the data is durably queued: from then on it is the
    /// agent's responsibility, across restarts too. `Full` means nothing was taken.
    pub async fn submit(
        &self,
        source: Source,
        telemetry: Telemetry,
        wait: Option<Duration>,
    ) -> Result<(), SubmitError> {
        let (log_records, spans, metrics) = telemetry.counts();
        if log_records + spans + metrics == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let sizes = telemetry.encoded_lens();
        let estimate = sizes.iter().sum::<usize>() as u64;
        let refused = || {
            Stats::incr(&self.stats.refused_requests);
            if self.queue.disk_full() {
                SubmitError::DiskFull
            } else {
                SubmitError::Full
            }
        };
        // One item larger than the whole bound takes all of it.
        let memory_bytes = u32::try_from(estimate)
            .unwrap_or(u32::MAX)
            .clamp(1, self.max_in_flight);
        let (admission, memory, permit) = match wait {
            None => {
                let admission = self.queue.admit(estimate).await;
                let memory = self
                    .memory
                    .clone()
                    .acquire_many_owned(memory_bytes)
                    .await
                    .map_err(|_| SubmitError::Closed)?;
                let permit = self.tx.reserve().await.map_err(|_| SubmitError::Closed)?;
                (admission, memory, permit)
            }
            Some(wait) => {
                let admission = tokio::time::timeout(wait, self.queue.admit(estimate))
                    .await
                    .map_err(|_| refused())?;
                let left = wait.saturating_sub(started.elapsed());
                let memory = self.memory.clone().acquire_many_owned(memory_bytes);
                let memory = tokio::time::timeout(left, memory)
                    .await
                    .map_err(|_| refused())?
                    .map_err(|_| SubmitError::Closed)?;
                let left = wait.saturating_sub(started.elapsed());
                let permit = tokio::time::timeout(left, self.tx.reserve())
                    .await
                    .map_err(|_| refused())?
                    .map_err(|_| SubmitError::Closed)?;
                (admission, memory, permit)
            }
        };
        let (ack, acked) = oneshot::channel();
        permit.send(Submission {
            telemetry,
            sizes,
            admission,
            memory,
            ack,
        });
        // Past this point the data is being appended: waiting is not bounded by `wait`,
        // since giving up now could not take the data back.
        acked.await.map_err(|_| SubmitError::Closed)??;
        self.stats.submit_duration.observe(started.elapsed());
        self.stats
            .received(source)
            .add(log_records as u64, spans as u64);
        self.stats.received(source).add_metrics(metrics as u64);
        Ok(())
    }
}

/// Creates the pipeline channel in front of `queue`, holding at most `capacity`
/// submissions and [`DEFAULT_MAX_IN_FLIGHT_BYTES`].
pub fn channel(
    capacity: usize,
    queue: Queue,
    stats: Arc<Stats>,
) -> (PipelineSender, mpsc::Receiver<Submission>) {
    channel_bounded(capacity, DEFAULT_MAX_IN_FLIGHT_BYTES, queue, stats)
}

/// Creates the pipeline channel in front of `queue`: at most `capacity` submissions and
/// `max_bytes` encoded bytes are on their way to the queue at once.
pub fn channel_bounded(
    capacity: usize,
    max_bytes: usize,
    queue: Queue,
    stats: Arc<Stats>,
) -> (PipelineSender, mpsc::Receiver<Submission>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let max_in_flight = u32::try_from(max_bytes).unwrap_or(u32::MAX).max(1);
    let sender = PipelineSender {
        tx,
        queue,
        stats,
        memory: Arc::new(Semaphore::new(max_in_flight as usize)),
        max_in_flight,
    };
    (sender, rx)
}

/// Batching settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    pub max_records: usize,
    /// Bound of a batch's encoded (uncompressed protobuf) size.
    pub max_bytes: usize,
    /// Longest the pipeline holds a record back to batch it with later ones. Since the
    /// source waits for the record to be queued, this is capped at a few milliseconds.
    pub timeout: Duration,
}

/// A submitter waiting for its data to be appended; the room it holds is released with it.
struct Waiting {
    ack: oneshot::Sender<Result<(), SubmitError>>,
    _admission: Admission,
    _memory: OwnedSemaphorePermit,
}

/// Submissions gathered for one append.
struct Group {
    logs: Pending<EncodedLogs>,
    spans: Pending<ResourceSpans>,
    metrics: Pending<ResourceMetrics>,
    waiting: Vec<Waiting>,
}

impl Group {
    fn new() -> Self {
        Self {
            logs: Pending::default(),
            spans: Pending::default(),
            metrics: Pending::default(),
            waiting: Vec::new(),
        }
    }

    fn add(&mut self, submission: Submission, tagger: &Tagger) {
        let sizes = submission.sizes.into_iter();
        match submission.telemetry {
            Telemetry::Logs(items) => add_logs(&mut self.logs, items, sizes, tagger),
            Telemetry::EncodedLogs(items) => add_tagged(&mut self.logs, items, sizes, tagger),
            Telemetry::Spans(items) => add_tagged(&mut self.spans, items, sizes, tagger),
            Telemetry::Metrics(items) => add_tagged(&mut self.metrics, items, sizes, tagger),
        }
        self.waiting.push(Waiting {
            ack: submission.ack,
            _admission: submission.admission,
            _memory: submission.memory,
        });
    }

    /// Whether a full batch is waiting already.
    fn full(&self, config: &BatchConfig) -> bool {
        let max_records = config.max_records.max(1);
        self.logs.count() >= max_records
            || self.spans.count() >= max_records
            || self.metrics.count() >= max_records
            || self.logs.bytes() + self.spans.bytes() + self.metrics.bytes() >= config.max_bytes
    }

    /// Cuts everything into batches, logs first.
    fn batches(&mut self, config: &BatchConfig) -> Vec<(Payload, usize)> {
        let mut out = Vec::new();
        while let Some((items, n)) = self.logs.take(config.max_records, config.max_bytes) {
            out.push((logs_payload(items), n));
        }
        while let Some((items, n)) = self.spans.take(config.max_records, config.max_bytes) {
            out.push((spans_payload(items), n));
        }
        while let Some((resource_metrics, n)) =
            self.metrics.take(config.max_records, config.max_bytes)
        {
            out.push((
                Payload::Metrics(ExportMetricsServiceRequest { resource_metrics }),
                n,
            ));
        }
        out
    }
}

/// Tags, batches and appends to the queue until every sender is gone; then closes the
/// queue's input so the exporter knows nothing more is coming.
pub async fn run_pipeline(
    mut rx: mpsc::Receiver<Submission>,
    tagger: Tagger,
    config: BatchConfig,
    queue: Queue,
) {
    let mut linger = Duration::ZERO;
    while let Some(first) = rx.recv().await {
        let mut tagging = Duration::ZERO;
        let mut group = Group::new();
        let tagged = std::time::Instant::now();
        group.add(first, &tagger);
        tagging += tagged.elapsed();
        let deadline = Instant::now() + linger;
        while !group.full(&config) {
            let next = match rx.try_recv() {
                Ok(submission) => Some(submission),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) if linger.is_zero() => None,
                Err(mpsc::error::TryRecvError::Empty) => tokio::select! {
                    submission = rx.recv() => submission,
                    () = tokio::time::sleep_until(deadline) => None,
                },
            };
            match next {
                Some(submission) => {
                    let tagged = std::time::Instant::now();
                    group.add(submission, &tagger);
                    tagging += tagged.elapsed();
                }
                None => break,
            }
        }
        linger = if group.waiting.len() > 1 {
            config.timeout.min(GROUP_LINGER)
        } else {
            Duration::ZERO
        };
        let tagged = std::time::Instant::now();
        let batches = group.batches(&config);
        queue
            .stats()
            .stages
            .add(Stage::Tag, tagging + tagged.elapsed());
        let appender = queue.clone();
        let result = match tokio::task::spawn_blocking(move || appender.append(&batches)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(SubmitError::Storage(e.to_string())),
            Err(e) => Err(SubmitError::Storage(e.to_string())),
        };
        if let Err(e) = &result {
            error!(error = %e, "cannot append to the queue, refusing the data");
        }
        for waiting in group.waiting {
            let _ = waiting.ack.send(result.clone());
        }
    }
    queue.close_input();
}

/// Tags each item and adds it with its size: the one measured at submit (`sizes`, in
/// order) plus what tagging added to its resource.
fn add_tagged<T: ResourceBatch>(
    pending: &mut Pending<T>,
    items: Vec<T>,
    mut sizes: impl Iterator<Item = usize>,
    tagger: &Tagger,
) {
    let len = |r: &Option<Resource>| r.as_ref().map_or(0, |r| r.encoded_len() + 8);
    for mut item in items {
        let size = sizes.next().unwrap_or_else(|| item.batch_len());
        let before = len(item.resource_mut());
        tagger.tag(item.resource_mut());
        let grown = len(item.resource_mut()).saturating_sub(before);
        pending.push_sized(item, size + grown);
    }
}

/// Tags each item's resource, then encodes its records: from here on they are bytes.
fn add_logs(
    pending: &mut Pending<EncodedLogs>,
    items: Vec<ResourceLogs>,
    mut sizes: impl Iterator<Item = usize>,
    tagger: &Tagger,
) {
    for mut item in items {
        let size = sizes.next().unwrap_or(0);
        tagger.tag(&mut item.resource);
        for encoded in EncodedLogs::encode(item, size) {
            pending.push(encoded);
        }
    }
}

fn logs_payload(items: Vec<EncodedLogs>) -> Payload {
    Payload::EncodedLogs(items)
}

fn spans_payload(resource_spans: Vec<ResourceSpans>) -> Payload {
    Payload::Spans(ExportTraceServiceRequest { resource_spans })
}

#[cfg(test)]
mod tests;
