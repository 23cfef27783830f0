//! Counters shared by every stage, served by the admin endpoint as JSON (`/stats`) and
//! in the Prometheus text format (`/metrics`).
//!
//! Fixed counters are fields of [`Stats`]. Components with a variable set of series (one
//! per tailed file, say) use [`Stats::series`]: named counters and gauges with labels,
//! rendered on `/metrics` as `bellwether_agent_<name>{labels}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

pub mod series;
pub use series::{Series, SeriesKind};

/// Where telemetry entered the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    OtlpGrpc,
    OtlpHttp,
    Stdin,
    /// Tailed files (`--file`).
    File,
    /// Output of the command run by `bellwether-agent run`.
    Exec,
}

impl Source {
    /// Every source, for totals and `/metrics`; a new source is added here too.
    pub const ALL: [Source; 5] = [
        Source::OtlpGrpc,
        Source::OtlpHttp,
        Source::Stdin,
        Source::File,
        Source::Exec,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Source::OtlpGrpc => "otlp_grpc",
            Source::OtlpHttp => "otlp_http",
            Source::Stdin => "stdin",
            Source::File => "file",
            Source::Exec => "exec",
        }
    }
}

/// Log records and spans.
#[derive(Debug, Default)]
pub struct SignalCounters {
    pub log_records: AtomicU64,
    pub spans: AtomicU64,
    /// OTLP metrics (each with all its data points).
    pub metrics: AtomicU64,
}

impl SignalCounters {
    pub fn add(&self, log_records: u64, spans: u64) {
        self.log_records.fetch_add(log_records, Ordering::Relaxed);
        self.spans.fetch_add(spans, Ordering::Relaxed);
    }

    pub fn add_metrics(&self, metrics: u64) {
        self.metrics.fetch_add(metrics, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> SignalSnapshot {
        SignalSnapshot {
            log_records: self.log_records.load(Ordering::Relaxed),
            spans: self.spans.load(Ordering::Relaxed),
            metrics: self.metrics.load(Ordering::Relaxed),
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
    /// Still undelivered when the flush timeout ran out at shutdown. No longer happens
    /// since the queue is durable (what is left stays queued); kept for `/stats`.
    Shutdown,
    /// Their queue entry was damaged on disk (counted where the record count was known).
    Corrupt,
}

/// Upper bounds, in seconds, of the export duration histogram's buckets.
pub const EXPORT_DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A histogram of durations with fixed buckets ([`EXPORT_DURATION_BUCKETS`]).
#[derive(Debug, Default)]
pub struct DurationHistogram {
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    buckets: [AtomicU64; EXPORT_DURATION_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl DurationHistogram {
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let slot = EXPORT_DURATION_BUCKETS
            .iter()
            .position(|le| seconds <= *le)
            .unwrap_or(EXPORT_DURATION_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// (cumulative counts per bucket bound, +Inf included last; sum in seconds; count).
    pub fn snapshot(&self) -> (Vec<u64>, f64, u64) {
        let mut running = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                running += b.load(Ordering::Relaxed);
                running
            })
            .collect();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (cumulative, sum, self.count.load(Ordering::Relaxed))
    }
}

/// A step on the way from a source's hand-over to its answer, timed for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Stamping the identity on each resource, encoding log records, cutting batches.
    Tag,
    /// Encoding each batch's queue entry, compression included.
    Encode,
    /// Writing the entries to the segment file and syncing it.
    Write,
    /// Syncing the queue's database and sequence note.
    Commit,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Tag, Stage::Encode, Stage::Write, Stage::Commit];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Tag => "tag",
            Stage::Encode => "encode",
            Stage::Write => "write",
            Stage::Commit => "commit",
        }
    }
}

/// Time spent in each [`Stage`], summed over every append.
#[derive(Debug, Default)]
pub struct StageTimes {
    nanos: [AtomicU64; Stage::ALL.len()],
}

impl StageTimes {
    pub fn add(&self, stage: Stage, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.nanos[stage as usize].fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn seconds(&self, stage: Stage) -> f64 {
        self.nanos[stage as usize].load(Ordering::Relaxed) as f64 / 1e9
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    pub received_otlp_grpc: SignalCounters,
    pub received_otlp_http: SignalCounters,
    pub received_stdin: SignalCounters,
    pub received_file: SignalCounters,
    pub received_exec: SignalCounters,
    pub exported: SignalCounters,
    pub dropped_non_retryable: AtomicU64,
    pub dropped_rejected: AtomicU64,
    pub dropped_shutdown: AtomicU64,
    pub dropped_corrupt: AtomicU64,
    /// OTLP requests turned away because the queue stayed full (the client retries).
    pub refused_requests: AtomicU64,
    pub retries: AtomicU64,
    pub batches_exported: AtomicU64,
    pub batches_dropped: AtomicU64,
    /// Duration of every export attempt, failed ones included.
    pub export_duration: DurationHistogram,
    /// From a source's hand-over to the durable append it waits for (the OTLP answer's
    /// time in the agent, after decoding), accepted hand-overs only.
    pub submit_duration: DurationHistogram,
    /// Where appends spend their time.
    pub stages: StageTimes,
    /// When the collector last accepted a batch (Unix ms; 0 = never).
    pub last_export_unix_ms: AtomicU64,
    /// Queue gauges, kept current by the queue.
    pub queue_batches: AtomicU64,
    pub queue_records: AtomicU64,
    pub queue_bytes: AtomicU64,
    /// When the oldest queued batch was appended (Unix ms; 0 = queue empty).
    pub queue_oldest_unix_ms: AtomicU64,
    pub queue_max_bytes: AtomicU64,
    /// Queue entries deleted because they failed their checksum.
    pub queue_corrupt_entries: AtomicU64,
    /// Times the whole queue database was unreadable and moved aside.
    pub queue_corrupt_resets: AtomicU64,
    /// Free space on the data directory's file system at the last look.
    pub disk_free_bytes: AtomicU64,
    /// Space the queue keeps free there (0: not checked).
    pub disk_reserve_bytes: AtomicU64,
    /// 1 while sources are held back because the disk is full.
    pub disk_full: AtomicU64,
    /// Times the disk became full.
    pub disk_full_episodes: AtomicU64,
    /// Times the file tailer could not save its positions (retried later).
    pub checkpoint_errors: AtomicU64,
    /// Labelled series registered by components (file tailing, ...).
    pub series: Series,
}

impl Stats {
    pub fn received(&self, source: Source) -> &SignalCounters {
        match source {
            Source::OtlpGrpc => &self.received_otlp_grpc,
            Source::OtlpHttp => &self.received_otlp_http,
            Source::Stdin => &self.received_stdin,
            Source::File => &self.received_file,
            Source::Exec => &self.received_exec,
        }
    }

    pub fn dropped(&self, reason: DropReason, records: u64) {
        let counter = match reason {
            DropReason::NonRetryable => &self.dropped_non_retryable,
            DropReason::RejectedByCollector => &self.dropped_rejected,
            DropReason::Shutdown => &self.dropped_shutdown,
            DropReason::Corrupt => &self.dropped_corrupt,
        };
        counter.fetch_add(records, Ordering::Relaxed);
    }

    /// Log records plus spans received from every source.
    pub fn received_records(&self) -> u64 {
        Source::ALL
            .iter()
            .map(|source| {
                let r = self.received(*source).snapshot();
                r.log_records + r.spans
            })
            .sum()
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
                file: self.received_file.snapshot(),
                exec: self.received_exec.snapshot(),
            },
            exported: self.exported.snapshot(),
            dropped: DroppedSnapshot {
                non_retryable: load(&self.dropped_non_retryable),
                rejected_by_collector: load(&self.dropped_rejected),
                shutdown: load(&self.dropped_shutdown),
                corrupt: load(&self.dropped_corrupt),
            },
            refused_requests: load(&self.refused_requests),
            retries: load(&self.retries),
            batches: BatchesSnapshot {
                exported: load(&self.batches_exported),
                dropped: load(&self.batches_dropped),
            },
            queue: QueueSnapshot {
                batches: load(&self.queue_batches),
                records: load(&self.queue_records),
                bytes: load(&self.queue_bytes),
                max_bytes: load(&self.queue_max_bytes),
                oldest_age_seconds: self.queue_oldest_age(now_unix_ms()).as_secs_f64(),
                corrupt_entries: load(&self.queue_corrupt_entries),
                corrupt_resets: load(&self.queue_corrupt_resets),
            },
            disk: DiskSnapshot {
                free_bytes: load(&self.disk_free_bytes),
                reserve_bytes: load(&self.disk_reserve_bytes),
                full: load(&self.disk_full) == 1,
                full_episodes: load(&self.disk_full_episodes),
            },
            checkpoint_errors: load(&self.checkpoint_errors),
        }
    }

    /// Age of the oldest queued batch at `now_unix_ms` (zero when the queue is empty).
    pub fn queue_oldest_age(&self, now_unix_ms: u64) -> Duration {
        match self.queue_oldest_unix_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            oldest => Duration::from_millis(now_unix_ms.saturating_sub(oldest)),
        }
    }
}

/// Milliseconds since the Unix epoch, now: the clock of every `*_unix_ms` value here
/// (the queue stamps batches with it, so their age is read against it too).
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueSnapshot {
    pub batches: u64,
    pub records: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub oldest_age_seconds: f64,
    pub corrupt_entries: u64,
    pub corrupt_resets: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignalSnapshot {
    pub log_records: u64,
    pub spans: u64,
    pub metrics: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedSnapshot {
    pub otlp_grpc: SignalSnapshot,
    pub otlp_http: SignalSnapshot,
    pub stdin: SignalSnapshot,
    pub file: SignalSnapshot,
    pub exec: SignalSnapshot,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedSnapshot {
    pub non_retryable: u64,
    pub rejected_by_collector: u64,
    pub shutdown: u64,
    pub corrupt: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchesSnapshot {
    pub exported: u64,
    pub dropped: u64,
}

/// The `/stats` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsSnapshot {
    pub received: ReceivedSnapshot,
    pub exported: SignalSnapshot,
    pub dropped: DroppedSnapshot,
    pub refused_requests: u64,
    pub retries: u64,
    pub batches: BatchesSnapshot,
    pub queue: QueueSnapshot,
    pub disk: DiskSnapshot,
    pub checkpoint_errors: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskSnapshot {
    pub free_bytes: u64,
    pub reserve_bytes: u64,
    pub full: bool,
    pub full_episodes: u64,
}
