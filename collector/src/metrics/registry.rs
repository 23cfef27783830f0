//! Process-wide counters that the ingest path bumps: requests, records and latency
//! ([`ingested`], called by the ingestor once per request). Notification deliveries are
//! counted by the notifier itself (`bellwether_alerting::notify::counts`).
//!
//! They are plain atomics in one static so a call site costs a few relaxed adds and needs
//! no handle threaded through its constructor. Like any Prometheus counter they only go
//! up for the life of the process.

use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;

use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;

use bellwether_store::ApplyOutcome;

/// Upper bounds (seconds) of the ingest latency histogram.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The OTLP signal of an ingest request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Logs,
    Traces,
    /// OTLP metrics; their records are data points.
    Metrics,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Logs, Signal::Traces, Signal::Metrics];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How an ingest request ended.
pub const INGEST_RESULTS: [&str; 3] = ["applied", "duplicate", "error"];

struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; DURATION_BUCKETS.len()],
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in DURATION_BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

struct IngestSeries {
    requests: [AtomicU64; INGEST_RESULTS.len()],
    records: AtomicU64,
    duration: Histogram,
}

impl IngestSeries {
    const fn new() -> Self {
        Self {
            requests: [const { AtomicU64::new(0) }; INGEST_RESULTS.len()],
            records: AtomicU64::new(0),
            duration: Histogram::new(),
        }
    }
}

struct Registry {
    ingest: [IngestSeries; 3],
}

static REGISTRY: Registry = Registry {
    ingest: [
        IngestSeries::new(),
        IngestSeries::new(),
        IngestSeries::new(),
    ],
};

/// Log records in a request.
pub fn log_records(request: &ExportLogsServiceRequest) -> u64 {
    let n: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    n as u64
}

/// Spans in a request.
pub fn spans(request: &ExportTraceServiceRequest) -> u64 {
    let n: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    n as u64
}

/// Counts one ingest request of `records` records that took `elapsed`.
pub fn ingested<E>(
    signal: Signal,
    records: u64,
    elapsed: Duration,
    outcome: &Result<ApplyOutcome, E>,
) {
    let series = &REGISTRY.ingest[signal.index()];
    let result = match outcome {
        Ok(ApplyOutcome::Applied) => 0,
        Ok(ApplyOutcome::Duplicate) => 1,
        Err(_) => 2,
    };
    series.requests[result].fetch_add(1, Ordering::Relaxed);
    if result == 0 {
        series.records.fetch_add(records, Ordering::Relaxed);
    }
    series.duration.observe(elapsed);
}

/// A snapshot of one signal's ingest series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IngestSnapshot {
    /// Per [`INGEST_RESULTS`].
    pub requests: [u64; INGEST_RESULTS.len()],
    pub records: u64,
    /// Cumulative counts per [`DURATION_BUCKETS`].
    pub buckets: [u64; DURATION_BUCKETS.len()],
    pub sum_seconds: f64,
    pub count: u64,
}

pub fn ingest_snapshot(signal: Signal) -> IngestSnapshot {
    let series = &REGISTRY.ingest[signal.index()];
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    IngestSnapshot {
        requests: std::array::from_fn(|i| load(&series.requests[i])),
        records: load(&series.records),
        buckets: std::array::from_fn(|i| load(&series.duration.buckets[i])),
        sum_seconds: load(&series.duration.sum_micros) as f64 / 1e6,
        count: load(&series.duration.count),
    }
}

/// Free space of the data directory's file system at the last ingest (bytes).
static DATA_DIR_FREE_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Notes the data directory's free space, as the ingest disk check saw it.
pub fn data_dir_free(bytes: u64) {
    DATA_DIR_FREE_BYTES.store(bytes, Ordering::Relaxed);
}

/// The data directory's free space at the last look (0 before one).
pub fn data_dir_free_bytes() -> u64 {
    DATA_DIR_FREE_BYTES.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(10));
        let counts: Vec<u64> = h
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts[0], 1, "≤ 1 ms");
        assert_eq!(counts[4], 1, "≤ 25 ms");
        assert_eq!(counts[5], 2, "≤ 50 ms");
        assert_eq!(
            counts[DURATION_BUCKETS.len() - 1],
            2,
            "10 s is above every bound"
        );
        assert_eq!(h.count.load(Ordering::Relaxed), 3);
    }
}
