//! OTLP metrics → per-(release, bucket) requests, failed requests and latency samples.
//!
//! Only the OpenTelemetry request-duration histograms say anything about a release's
//! requests: `http.server.request.duration` (seconds), the older `http.server.duration`
//! (milliseconds) and `rpc.server.duration` (milliseconds), explicit-bucket or
//! exponential. Every data point's count is requests (`metric_requests`); it is failed
//! (`metric_errors`) when `http.response.status_code` (or the older `http.status_code`)
//! is ≥ 500, when `error.type` is set, or when `rpc.grpc.status_code` is a server error
//! (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS). Up to
//! [`SAMPLES_PER_POINT`] latency samples a point go to the bucket's reservoir, spread
//! over the histogram's buckets in proportion to their counts, each at its bucket's
//! middle. Every other metric is accepted and counted, not stored.
//!
//! Delta temporality is taken as it is. Cumulative points become deltas per series
//! (resource identity and instance, metric, point attributes) against the last point
//! of the series this collector applied: a later start time or a smaller count is a
//! restart of the series, whose first point counts whole, as does the first point of a
//! series that started at most [`FRESH_SERIES`] before it. The first point of an older
//! series (this collector restarted, or the series is new to it) only sets the series'
//! level: counting it would put hours of requests into one bucket. The series table is
//! in memory, bounded by [`MAX_SERIES`] (the longest unseen are dropped first), and
//! updated only once the batch is stored, so a refused batch counts in full when sent
//! again. Cumulative series are per collector node: send one instance's metrics to one
//! node (an agent does), or use delta temporality.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use bellwether_model::release::{bucket_start, Counts};
use bellwether_proto::otlp::common::any_value::Value;
use bellwether_proto::otlp::common::KeyValue;
use bellwether_proto::otlp::metrics::metric::Data;
use bellwether_proto::otlp::metrics::{ExponentialHistogramDataPoint, HistogramDataPoint};
use bellwether_proto::otlp::metrics_service::ExportMetricsServiceRequest;

use super::summarize::{record_time_ms, release_of, Summary};
use super::Ingestor;
use crate::error::Error;
use crate::limits;
use crate::metrics;
use bellwether_model::time::now_unix_ms;
use bellwether_store::ApplyOutcome;

/// Latency samples taken from one data point at most.
pub const SAMPLES_PER_POINT: u64 = 64;
/// A cumulative series whose start is at most this long before its first point seen
/// counts that point whole.
pub const FRESH_SERIES_MS: i64 = 5 * 60 * 1000;
/// Series remembered at most.
pub const MAX_SERIES: usize = 100_000;
const CUMULATIVE: i32 = 2;
/// gRPC status codes that are the server's fault.
const GRPC_SERVER_ERRORS: [i64; 6] = [2, 4, 12, 13, 14, 15];

/// Which request metric a metric is, with its unit's scale to microseconds.
fn request_metric(name: &str, unit: &str) -> Option<f64> {
    let default = match name {
        "http.server.request.duration" => 1e6,
        "http.server.duration" | "rpc.server.duration" => 1e3,
        _ => return None,
    };
    Some(match unit {
        "s" => 1e6,
        "ms" => 1e3,
        "us" => 1.0,
        _ => default,
    })
}

/// The last point applied of one cumulative series.
#[derive(Clone, Debug, PartialEq)]
struct Level {
    start_ns: u64,
    time_ns: u64,
    count: u64,
    buckets: Vec<u64>,
    seen_ms: i64,
}

/// Cumulative series levels, shared by every metrics request of a collector.
#[derive(Debug, Default)]
pub struct SeriesTable {
    levels: Mutex<HashMap<u64, Level>>,
    /// Held from summarizing a metrics request to committing its levels, so that two
    /// requests of one series (an agent sends several batches at once) never both count
    /// from the same level.
    serial: tokio::sync::Mutex<()>,
}

/// Levels a summarized request moves its series to, applied once it is stored.
#[derive(Debug, Default)]
pub struct Pending(Vec<(u64, Level)>);

impl SeriesTable {
    /// Applies `pending` (a stored batch's levels); a level older than the one held is
    /// left out (a batch sent again after a later one).
    pub fn commit(&self, pending: Pending) {
        let Ok(mut levels) = self.levels.lock() else {
            return;
        };
        for (key, level) in pending.0 {
            match levels.get(&key) {
                Some(held) if held.time_ns > level.time_ns && held.start_ns == level.start_ns => {}
                _ => {
                    levels.insert(key, level);
                }
            }
        }
        if levels.len() > MAX_SERIES {
            let mut by_age: Vec<(i64, u64)> = levels.iter().map(|(k, l)| (l.seen_ms, *k)).collect();
            by_age.sort_unstable();
            for (_, key) in by_age.iter().take(levels.len() - MAX_SERIES) {
                levels.remove(key);
            }
        }
    }

    fn level(&self, key: u64) -> Option<Level> {
        self.levels.lock().ok()?.get(&key).cloned()
    }

    pub fn len(&self) -> usize {
        self.levels.lock().map(|l| l.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a metrics request held: data points of request metrics and of others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PointCounts {
    pub request_points: u64,
    pub other_points: u64,
}

/// Every data point of a request, for limits and counters.
pub fn data_points(request: &ExportMetricsServiceRequest) -> u64 {
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| data_points_of(&m.data))
        .sum()
}

/// One data point reduced to what counts: its series, times, count and buckets (each
/// bucket's count with its middle in microseconds).
struct Point {
    key: u64,
    start_ns: u64,
    time_ns: u64,
    count: u64,
    buckets: Vec<u64>,
    middles_us: Vec<f64>,
    failed: bool,
    cumulative: bool,
}

/// Summarizes a metrics request against `series`; returns the summary, the levels to
/// commit once it is stored, and what it held.
pub fn summarize_metrics(
    request: &ExportMetricsServiceRequest,
    batch_id: Option<String>,
    received_at_unix_ms: i64,
    series: &SeriesTable,
) -> (Summary, Pending, PointCounts) {
    let mut summary = Summary::new(batch_id, received_at_unix_ms);
    let mut pending = Pending::default();
    let mut held = PointCounts::default();
    for resource_metrics in &request.resource_metrics {
        let resource = resource_metrics.resource.as_ref();
        let (release, identity) = release_of(resource);
        let resource_hash =
            hash_attributes(resource.map(|r| r.attributes.as_slice()).unwrap_or(&[]));
        for metric in resource_metrics
            .scope_metrics
            .iter()
            .flat_map(|s| &s.metrics)
        {
            let points: Vec<Point> =
                match (&metric.data, request_metric(&metric.name, &metric.unit)) {
                    (Some(Data::Histogram(h)), Some(scale)) => {
                        let cumulative = h.aggregation_temporality == CUMULATIVE;
                        h.data_points
                            .iter()
                            .map(|p| {
                                explicit_point(p, &metric.name, resource_hash, scale, cumulative)
                            })
                            .collect()
                    }
                    (Some(Data::ExponentialHistogram(h)), Some(scale)) => {
                        let cumulative = h.aggregation_temporality == CUMULATIVE;
                        h.data_points
                            .iter()
                            .map(|p| {
                                exponential_point(p, &metric.name, resource_hash, scale, cumulative)
                            })
                            .collect()
                    }
                    _ => {
                        held.other_points += data_points_of(&metric.data);
                        continue;
                    }
                };
            held.request_points += points.len() as u64;
            for point in points {
                let Some((count, buckets)) =
                    delta(&point, series, &mut pending, received_at_unix_ms)
                else {
                    continue;
                };
                if count == 0 {
                    continue;
                }
                let unix_ms = record_time_ms(point.time_ns, received_at_unix_ms);
                let bucket = bucket_start(unix_ms);
                let delta = summary.batch.releases.entry(release.clone()).or_default();
                delta.identity.merge(&identity);
                delta.buckets.entry(bucket).or_default().add(&Counts {
                    metric_requests: count,
                    metric_errors: if point.failed { count } else { 0 },
                    ..Counts::default()
                });
                let reservoir = delta.latency.entry(bucket).or_default();
                for (n, middle) in samples(&buckets, &point.middles_us, count) {
                    let us = middle.clamp(0.0, f64::from(u32::MAX)) as u32;
                    for _ in 0..n {
                        reservoir.offer(us);
                    }
                }
            }
        }
    }
    (summary, pending, held)
}

fn data_points_of(data: &Option<Data>) -> u64 {
    (match data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }) as u64
}

/// The point's requests and bucket counts since the series' last applied point, or
/// None when the point only sets the series' level.
fn delta(
    point: &Point,
    series: &SeriesTable,
    pending: &mut Pending,
    received_at_unix_ms: i64,
) -> Option<(u64, Vec<u64>)> {
    if !point.cumulative {
        return Some((point.count, point.buckets.clone()));
    }
    let level = Level {
        start_ns: point.start_ns,
        time_ns: point.time_ns,
        count: point.count,
        buckets: point.buckets.clone(),
        seen_ms: received_at_unix_ms,
    };
    // A level set by an earlier point of this same request wins over the table's.
    let previous = pending
        .0
        .iter()
        .rev()
        .find(|(k, _)| *k == point.key)
        .map(|(_, l)| l.clone())
        .or_else(|| series.level(point.key));
    pending.0.push((point.key, level));
    match previous {
        // Already applied (a batch sent again), or older than a point applied (batches
        // that arrived out of order): the later cumulative point covers it.
        Some(prev) if prev.start_ns == point.start_ns && point.time_ns <= prev.time_ns => {
            Some((0, Vec::new()))
        }
        Some(prev) if prev.start_ns == point.start_ns && point.count >= prev.count => {
            let buckets = if prev.buckets.len() == point.buckets.len() {
                point
                    .buckets
                    .iter()
                    .zip(&prev.buckets)
                    .map(|(now, before)| now.saturating_sub(*before))
                    .collect()
            } else {
                point.buckets.clone()
            };
            Some((point.count - prev.count, buckets))
        }
        // A restart of the series: everything in this point is new.
        Some(_) => Some((point.count, point.buckets.clone())),
        None => {
            let age_ms = (point.time_ns.saturating_sub(point.start_ns) / 1_000_000) as i64;
            (point.start_ns != 0 && age_ms <= FRESH_SERIES_MS)
                .then(|| (point.count, point.buckets.clone()))
        }
    }
}

/// How many samples to take at each bucket's middle: up to [`SAMPLES_PER_POINT`] in
/// all, in proportion to the buckets' counts (every bucket with requests gets one).
fn samples<'a>(
    buckets: &'a [u64],
    middles_us: &'a [f64],
    count: u64,
) -> impl Iterator<Item = (u64, f64)> + 'a {
    // Counts come from the sender: sums and products saturate rather than overflow, and
    // a bucket whose bounds give no finite middle (NaN or infinite bounds) gives no sample.
    let total: u64 = buckets
        .iter()
        .fold(0u64, |a, n| a.saturating_add(*n))
        .max(1);
    let take = count.min(SAMPLES_PER_POINT);
    buckets
        .iter()
        .zip(middles_us)
        .filter(|(n, middle)| **n > 0 && middle.is_finite())
        .map(move |(n, middle)| {
            let share = u64::try_from(u128::from(*n) * u128::from(take) / u128::from(total));
            (share.unwrap_or(take).clamp(1, take.max(1)), *middle)
        })
}

fn explicit_point(
    p: &HistogramDataPoint,
    name: &str,
    resource: u64,
    scale: f64,
    cumulative: bool,
) -> Point {
    let bounds = &p.explicit_bounds;
    let middles_us = (0..p.bucket_counts.len())
        .map(|i| {
            let middle = match (i.checked_sub(1).and_then(|j| bounds.get(j)), bounds.get(i)) {
                (Some(lo), Some(hi)) => (lo + hi) / 2.0,
                (None, Some(hi)) => hi / 2.0,
                (Some(lo), None) => lo * 1.5,
                (None, None) => p.sum.map_or(0.0, |s| s / p.count.max(1) as f64),
            };
            middle * scale
        })
        .collect();
    Point {
        key: series_key(resource, name, &p.attributes),
        start_ns: p.start_time_unix_nano,
        time_ns: p.time_unix_nano,
        count: p.count,
        buckets: p.bucket_counts.clone(),
        middles_us,
        failed: failed(&p.attributes),
        cumulative,
    }
}

fn exponential_point(
    p: &ExponentialHistogramDataPoint,
    name: &str,
    resource: u64,
    scale: f64,
    cumulative: bool,
) -> Point {
    let base = 2f64.powf(2f64.powi(-p.scale.clamp(-10, 20)));
    let positive = p.positive.as_ref();
    let offset = positive.map_or(0, |b| b.offset);
    let mut buckets = vec![p.zero_count];
    let mut middles_us = vec![0.0];
    for (i, n) in positive
        .map(|b| b.bucket_counts.as_slice())
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        buckets.push(*n);
        let index = f64::from(offset) + i as f64;
        middles_us.push(base.powf(index + 0.5) * scale);
    }
    Point {
        key: series_key(resource, name, &p.attributes),
        start_ns: p.start_time_unix_nano,
        time_ns: p.time_unix_nano,
        count: p.count,
        buckets,
        middles_us,
        failed: failed(&p.attributes),
        cumulative,
    }
}

/// Whether a request-metric point counts failed requests.
fn failed(attributes: &[KeyValue]) -> bool {
    let value = |key: &str| {
        attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    };
    let int = |key: &str| match value(key) {
        Some(Value::IntValue(i)) => Some(*i),
        Some(Value::StringValue(s)) => s.trim().parse().ok(),
        Some(Value::DoubleValue(d)) => Some(*d as i64),
        _ => None,
    };
    let status = int("http.response.status_code").or_else(|| int("http.status_code"));
    let error_type =
        matches!(value("error.type"), Some(Value::StringValue(s)) if !s.trim().is_empty());
    status.is_some_and(|s| s >= 500)
        || error_type
        || int("rpc.grpc.status_code").is_some_and(|c| GRPC_SERVER_ERRORS.contains(&c))
}

fn hash_attributes(attributes: &[KeyValue]) -> u64 {
    let mut pairs: Vec<(&str, String)> = attributes
        .iter()
        .map(|kv| (kv.key.as_str(), format!("{:?}", kv.value)))
        .collect();
    pairs.sort_unstable();
    let mut hasher = DefaultHasher::new();
    pairs.hash(&mut hasher);
    hasher.finish()
}

fn series_key(resource: u64, name: &str, attributes: &[KeyValue]) -> u64 {
    let mut hasher = DefaultHasher::new();
    (resource, name, hash_attributes(attributes)).hash(&mut hasher);
    hasher.finish()
}

impl Ingestor {
    /// Ingests an OTLP metrics request: its request-duration histograms count as
    /// requests, failures and latency of their releases; other metrics are counted
    /// (`bellwether_ingest_records_total{signal="metrics"}` counts every data point)
    /// and dropped.
    pub async fn metrics(
        &self,
        request: ExportMetricsServiceRequest,
        batch_id: Option<String>,
    ) -> Result<ApplyOutcome, Error> {
        let received = now_unix_ms();
        let (started, points) = (std::time::Instant::now(), data_points(&request));
        let outcome = match limits::check_records(&self.limits, points as usize) {
            Err(e) => Err(e),
            Ok(()) => {
                let _serial = self.series.serial.lock().await;
                let series = std::sync::Arc::clone(&self.series);
                let levels = std::sync::Arc::new(Mutex::new(Pending::default()));
                let out = std::sync::Arc::clone(&levels);
                let outcome = self
                    .apply_with(move |_recent| {
                        let (summary, pending, _) =
                            summarize_metrics(&request, batch_id.clone(), received, &series);
                        if let Ok(mut out) = out.lock() {
                            *out = pending;
                        }
                        summary
                    })
                    .await;
                if outcome.is_ok() {
                    let pending = levels.lock().map(|mut l| std::mem::take(&mut *l));
                    if let Ok(pending) = pending {
                        self.series.commit(pending);
                    }
                }
                outcome
            }
        };
        metrics::ingested(
            metrics::Signal::Metrics,
            points,
            started.elapsed(),
            &outcome,
        );
        outcome
    }
}

#[cfg(test)]
#[path = "request_metrics_tests.rs"]
mod tests;
