//! Counters shared by every stage, served as JSON on the admin endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Where telemetry entered the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    OtlpGrpc,
    OtlpHttp,
    Stdin,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::OtlpGrpc => "otlp_grpc",
            Source::OtlpHttp => "otlp_http",
            Source::Stdin => "stdin",
        }
    }
}

/// Log records and spans.
#[derive(Debug, Default)]
pub struct SignalCounters {
    pub log_records: AtomicU64,
    pub spans: AtomicU64,
}

impl SignalCounters {
    pub fn add(&self, log_records: u64, spans: u64) {
        self.log_records.fetch_add(log_records, Ordering::Relaxed);
        self.spans.fetch_add(spans, Ordering::Relaxed);
    }

    fn snapshot(&self) -> SignalSnapshot {
        SignalSnapshot {
            log_records: self.log_records.load(Ordering::Relaxed),
            spans: self.spans.load(Ordering::Relaxed),
        }
    }
}

/// Why records were dropped (counted in records: log records plus spans).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The collector refused the batch with a non-retryable status.
    NonRetryable,
    /// The collector accepted the batch but rejected some records (partial success).
    RejectedByCollector,
    /// Still undelivered when the flush timeout ran out at shutdown.
    Shutdown,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub received_otlp_grpc: SignalCounters,
    pub received_otlp_http: SignalCounters,
    pub received_stdin: SignalCounters,
    pub exported: SignalCounters,
    pub dropped_non_retryable: AtomicU64,
    pub dropped_rejected: AtomicU64,
    pub dropped_shutdown: AtomicU64,
    /// OTLP requests turned away because the queue stayed full (the client retries).
    pub refused_requests: AtomicU64,
    pub retries: AtomicU64,
    pub batches_exported: AtomicU64,
    pub batches_dropped: AtomicU64,
}

impl Stats {
    pub fn received(&self, source: Source) -> &SignalCounters {
        match source {
            Source::OtlpGrpc => &self.received_otlp_grpc,
            Source::OtlpHttp => &self.received_otlp_http,
            Source::Stdin => &self.received_stdin,
        }
    }

    pub fn dropped(&self, reason: DropReason, records: u64) {
        let counter = match reason {
            DropReason::NonRetryable => &self.dropped_non_retryable,
            DropReason::RejectedByCollector => &self.dropped_rejected,
            DropReason::Shutdown => &self.dropped_shutdown,
        };
        counter.fetch_add(records, Ordering::Relaxed);
    }

    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            received: ReceivedSnapshot {
                otlp_grpc: self.received_otlp_grpc.snapshot(),
                otlp_http: self.received_otlp_http.snapshot(),
                stdin: self.received_stdin.snapshot(),
            },
            exported: self.exported.snapshot(),
            dropped: DroppedSnapshot {
                non_retryable: load(&self.dropped_non_retryable),
                rejected_by_collector: load(&self.dropped_rejected),
                shutdown: load(&self.dropped_shutdown),
            },
            refused_requests: load(&self.refused_requests),
            retries: load(&self.retries),
            batches: BatchesSnapshot {
                exported: load(&self.batches_exported),
                dropped: load(&self.batches_dropped),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignalSnapshot {
    pub log_records: u64,
    pub spans: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedSnapshot {
    pub otlp_grpc: SignalSnapshot,
    pub otlp_http: SignalSnapshot,
    pub stdin: SignalSnapshot,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedSnapshot {
    pub non_retryable: u64,
    pub rejected_by_collector: u64,
    pub shutdown: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchesSnapshot {
    pub exported: u64,
    pub dropped: u64,
}

/// The `/stats` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub received: ReceivedSnapshot,
    pub exported: SignalSnapshot,
    pub dropped: DroppedSnapshot,
    pub refused_requests: u64,
    pub retries: u64,
    pub batches: BatchesSnapshot,
}
