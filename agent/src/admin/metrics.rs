//! `/metrics`: the agent's counters in the Prometheus text format (version 0.0.4).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::stats::series::render_labels;
use crate::stats::{DurationHistogram, Source, Stage, Stats, EXPORT_DURATION_BUCKETS};

/// Prefix of every metric name.
pub const PREFIX: &str = "bellwether_agent_";

/// Content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {PREFIX}{name} {help}");
        let _ = writeln!(self.0, "# TYPE {PREFIX}{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = writeln!(
            self.0,
            "{PREFIX}{name}{} {value}",
            render_labels(labels.iter().copied())
        );
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, histogram: &DurationHistogram) {
        let (buckets, sum, count) = histogram.snapshot();
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (bound, cumulative) in EXPORT_DURATION_BUCKETS.iter().zip(&buckets) {
            self.sample(&bucket, &[("le", &bound.to_string())], cumulative);
        }
        let all = buckets.last().copied().unwrap_or(0);
        self.sample(&bucket, &[("le", "+Inf")], all);
        self.sample(&format!("{name}_sum"), &[], sum);
        self.sample(&format!("{name}_count"), &[], count);
    }
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Renders every metric at `now_unix_ms`.
pub fn render(stats: &Stats, now_unix_ms: u64) -> String {
    let mut out = Out(String::with_capacity(4096));
    let s = stats.snapshot();

    out.family(
        "records_received_total",
        "counter",
        "Records durably queued, by source and signal.",
    );
    for source in Source::ALL {
        let r = stats.received(source).snapshot();
        for (signal, value) in [
            ("logs", r.log_records),
            ("spans", r.spans),
            ("metrics", r.metrics),
        ] {
            out.sample(
                "records_received_total",
                &[("source", source.name()), ("signal", signal)],
                value,
            );
        }
    }
    out.family(
        "records_sent_total",
        "counter",
        "Records the collector accepted, by signal.",
    );
    out.sample(
        "records_sent_total",
        &[("signal", "logs")],
        s.exported.log_records,
    );
    out.sample(
        "records_sent_total",
        &[("signal", "spans")],
        s.exported.spans,
    );
    out.sample(
        "records_sent_total",
        &[("signal", "metrics")],
        s.exported.metrics,
    );
    out.family(
        "records_dropped_total",
        "counter",
        "Records given up on, by reason.",
    );
    for (reason, value) in [
        ("non_retryable", s.dropped.non_retryable),
        ("rejected_by_collector", s.dropped.rejected_by_collector),
        ("corrupt", s.dropped.corrupt),
        ("shutdown", s.dropped.shutdown),
    ] {
        out.sample("records_dropped_total", &[("reason", reason)], value);
    }
    out.single(
        "batches_sent_total",
        "counter",
        "Batches the collector accepted.",
        s.batches.exported,
    );
    out.single(
        "batches_dropped_total",
        "counter",
        "Batches refused by the collector as non-retryable.",
        s.batches.dropped,
    );
    out.single(
        "export_retries_total",
        "counter",
        "Export attempts that failed and were retried.",
        s.retries,
    );
    out.single(
        "requests_refused_total",
        "counter",
        "OTLP requests turned away because the queue stayed full.",
        s.refused_requests,
    );

    out.histogram(
        "export_duration_seconds",
        "Duration of export attempts to the collector, failed ones included.",
        &stats.export_duration,
    );
    out.histogram(
        "submit_duration_seconds",
        "From a source's hand-over to its durable append (an OTLP request's time in the \
         agent after decoding), accepted hand-overs only.",
        &stats.submit_duration,
    );
    out.family(
        "append_stage_seconds_total",
        "counter",
        "Time appends spent per stage: tag (identity, record encoding, batching), encode \
         (queue entries, compression), write (segment write and sync), commit (database \
         and sequence note sync).",
    );
    for stage in Stage::ALL {
        out.sample(
            "append_stage_seconds_total",
            &[("stage", stage.name())],
            stats.stages.seconds(stage),
        );
    }
    let last = load(&stats.last_export_unix_ms);
    out.single(
        "last_export_timestamp_seconds",
        "gauge",
        "When the collector last accepted a batch (Unix seconds; 0 = never).",
        last as f64 / 1000.0,
    );

    out.single(
        "queue_batches",
        "gauge",
        "Batches in the durable queue.",
        s.queue.batches,
    );
    out.single(
        "queue_records",
        "gauge",
        "Records in the durable queue.",
        s.queue.records,
    );
    out.single(
        "queue_bytes",
        "gauge",
        "Encoded bytes in the durable queue.",
        s.queue.bytes,
    );
    out.single(
        "queue_max_bytes",
        "gauge",
        "Bound of the durable queue in bytes.",
        s.queue.max_bytes,
    );
    out.single(
        "queue_oldest_age_seconds",
        "gauge",
        "Age of the oldest queued batch (0 when empty).",
        stats.queue_oldest_age(now_unix_ms).as_secs_f64(),
    );
    out.single(
        "queue_corrupt_entries_total",
        "counter",
        "Queue entries deleted because they were damaged on disk.",
        s.queue.corrupt_entries,
    );
    out.single(
        "queue_corrupt_resets_total",
        "counter",
        "Times the queue database was unreadable and moved aside.",
        s.queue.corrupt_resets,
    );
    out.single(
        "disk_free_bytes",
        "gauge",
        "Free space on the data directory's file system at the last look.",
        s.disk.free_bytes,
    );
    out.single(
        "disk_reserve_bytes",
        "gauge",
        "Space the queue keeps free on the data directory's file system (0: not checked).",
        s.disk.reserve_bytes,
    );
    out.single(
        "disk_full",
        "gauge",
        "1 while sources are held back because the data directory's disk is full.",
        u64::from(s.disk.full),
    );
    out.single(
        "disk_full_episodes_total",
        "counter",
        "Times the data directory's disk became full.",
        s.disk.full_episodes,
    );
    out.single(
        "checkpoint_errors_total",
        "counter",
        "Times the file tailer could not save its positions (retried at the next round).",
        s.checkpoint_errors,
    );
    stats.series.render(PREFIX, &mut out.0);
    out.0
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The value of the sample line starting with `series` (name plus labels).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn renders_counters_gauges_and_histogram() {
        let stats = Stats::default();
        stats.received(Source::Stdin).add(3, 0);
        stats.exported.add(2, 5);
        stats.export_duration.observe(Duration::from_millis(3));
        stats.export_duration.observe(Duration::from_secs(60));
        stats.queue_records.store(7, Ordering::Relaxed);
        stats.queue_oldest_unix_ms.store(1_000, Ordering::Relaxed);
        stats.queue_corrupt_entries.store(2, Ordering::Relaxed);
        stats
            .series
            .add("file_rotations_total", "Rotations", &[("path", "/a")], 1.0);
        let text = render(&stats, 31_000);
        let v = |series: &str| value(&text, series);
        assert_eq!(
            v("bellwether_agent_records_received_total{source=\"stdin\",signal=\"logs\"}"),
            Some(3.0)
        );
        assert_eq!(
            v("bellwether_agent_records_sent_total{signal=\"spans\"}"),
            Some(5.0)
        );
        assert_eq!(
            v("bellwether_agent_records_dropped_total{reason=\"non_retryable\"}"),
            Some(0.0)
        );
        assert_eq!(v("bellwether_agent_queue_records"), Some(7.0));
        assert_eq!(v("bellwether_agent_queue_oldest_age_seconds"), Some(30.0));
        assert_eq!(v("bellwether_agent_queue_corrupt_entries_total"), Some(2.0));
        assert_eq!(
            v("bellwether_agent_export_duration_seconds_bucket{le=\"0.005\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("bellwether_agent_export_duration_seconds_bucket{le=\"10\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("bellwether_agent_export_duration_seconds_bucket{le=\"+Inf\"}"),
            Some(2.0)
        );
        assert_eq!(
            v("bellwether_agent_export_duration_seconds_count"),
            Some(2.0)
        );
        assert_eq!(
            v("bellwether_agent_file_rotations_total{path=\"/a\"}"),
            Some(1.0)
        );
        // Every sample line belongs to a declared family.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "undeclared {name}"
            );
        }
    }
}
