//! Tests of request metrics: which points count, cumulative to delta, failures, latency.

use super::*;
use bellwether_model::release::ReleaseKey;
use bellwether_proto::otlp::common::{AnyValue, KeyValue};
use bellwether_proto::otlp::metrics::exponential_histogram_data_point::Buckets;
use bellwether_proto::otlp::metrics::{
    ExponentialHistogram, Gauge, Histogram, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use bellwether_proto::otlp::resource::Resource;

const S: u64 = 1_000_000_000;
/// A receive time well after every point (in ms).
const NOW_MS: i64 = 1_800_000_000_000;
const T0: u64 = NOW_MS as u64 * 1_000_000 - 600 * S;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn resource() -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", Value::StringValue("api".into())),
            kv("service.version", Value::StringValue("2".into())),
            kv(
                "deployment.environment.name",
                Value::StringValue("prod".into()),
            ),
            kv("service.instance.id", Value::StringValue("i-1".into())),
        ],
        ..Default::default()
    }
}

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource()),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// An `http.server.request.duration` point (seconds; bounds 0.01, 0.1, 1) of `status`.
fn point(status: i64, start: u64, time: u64, buckets: [u64; 4]) -> HistogramDataPoint {
    HistogramDataPoint {
        attributes: vec![
            kv("http.request.method", Value::StringValue("GET".into())),
            kv("http.response.status_code", Value::IntValue(status)),
        ],
        start_time_unix_nano: start,
        time_unix_nano: time,
        count: buckets.iter().sum(),
        bucket_counts: buckets.to_vec(),
        explicit_bounds: vec![0.01, 0.1, 1.0],
        ..Default::default()
    }
}

fn histogram(temporality: i32, points: Vec<HistogramDataPoint>) -> Metric {
    Metric {
        name: "http.server.request.duration".into(),
        unit: "s".into(),
        data: Some(Data::Histogram(Histogram {
            data_points: points,
            aggregation_temporality: temporality,
        })),
        ..Default::default()
    }
}

fn release() -> ReleaseKey {
    ReleaseKey::new("api", "prod", "2")
}

/// Summarizes and commits, as a stored batch would; returns (requests, errors, samples).
fn apply(series: &SeriesTable, request: &ExportMetricsServiceRequest) -> (u64, u64, Vec<u32>) {
    let (summary, pending, _) = summarize_metrics(request, None, NOW_MS, series);
    series.commit(pending);
    let Some(delta) = summary.batch.releases.get(&release()) else {
        return (0, 0, Vec::new());
    };
    let mut total = Counts::default();
    for counts in delta.buckets.values() {
        total.add(counts);
    }
    let mut samples: Vec<u32> = delta
        .latency
        .values()
        .flat_map(|r| r.values_us.clone())
        .collect();
    samples.sort_unstable();
    (total.metric_requests, total.metric_errors, samples)
}

#[test]
fn cumulative_points_count_their_increase_once() {
    let series = SeriesTable::default();
    // A series that started 30 s before its first point: that point counts whole.
    let first = request(vec![histogram(
        CUMULATIVE,
        vec![
            point(200, T0, T0 + 30 * S, [10, 5, 0, 0]),
            point(503, T0, T0 + 30 * S, [0, 0, 2, 0]),
        ],
    )]);
    assert_eq!(apply(&series, &first).0, 17);
    assert_eq!(
        apply(&series, &first).0,
        0,
        "the same points again count nothing"
    );
    let second = request(vec![histogram(
        CUMULATIVE,
        vec![
            point(200, T0, T0 + 60 * S, [14, 8, 1, 0]),
            point(503, T0, T0 + 60 * S, [0, 0, 5, 0]),
        ],
    )]);
    let (requests, errors, _) = apply(&series, &second);
    assert_eq!((requests, errors), (11, 3));
    assert_eq!(series.len(), 2);
}

#[test]
fn a_cumulative_point_that_arrives_after_a_later_one_counts_nothing() {
    let series = SeriesTable::default();
    let later = request(vec![histogram(
        CUMULATIVE,
        vec![point(200, T0, T0 + 60 * S, [14, 8, 1, 0])],
    )]);
    let earlier = request(vec![histogram(
        CUMULATIVE,
        vec![point(200, T0, T0 + 30 * S, [10, 5, 0, 0])],
    )]);
    assert_eq!(apply(&series, &later).0, 23);
    assert_eq!(apply(&series, &earlier).0, 0, "covered by the later point");
    // And the series goes on from the later level.
    let next = request(vec![histogram(
        CUMULATIVE,
        vec![point(200, T0, T0 + 90 * S, [15, 8, 1, 0])],
    )]);
    assert_eq!(apply(&series, &next).0, 1);
}

#[test]
fn a_restarted_series_counts_from_zero_and_an_old_one_only_sets_its_level() {
    let series = SeriesTable::default();
    // Started an hour before the first point seen: only its level is taken.
    let old = T0 - 3_600 * S;
    let first = request(vec![histogram(
        CUMULATIVE,
        vec![point(200, old, T0, [1_000, 0, 0, 0])],
    )]);
    assert_eq!(apply(&series, &first).0, 0);
    let later = request(vec![histogram(
        CUMULATIVE,
        vec![point(200, old, T0 + 10 * S, [1_004, 0, 0, 0])],
    )]);
    assert_eq!(apply(&series, &later).0, 4);
    // The instance restarted: a new start time, a smaller count.
    let restarted = request(vec![histogram(
        CUMULATIVE,
        vec![point(200, T0 + 15 * S, T0 + 20 * S, [3, 0, 0, 0])],
    )]);
    assert_eq!(apply(&series, &restarted).0, 3, "not a negative or a spike");
}

#[test]
fn a_refused_batch_leaves_the_levels_alone() {
    let series = SeriesTable::default();
    let first = request(vec![histogram(
        CUMULATIVE,
        vec![point(200, T0, T0 + 10 * S, [5, 0, 0, 0])],
    )]);
    // Summarized but never committed (the store refused it).
    let (summary, _pending, _) = summarize_metrics(&first, None, NOW_MS, &series);
    assert!(!summary.batch.releases.is_empty());
    assert!(series.is_empty());
    assert_eq!(apply(&series, &first).0, 5, "sent again, it counts in full");
}

#[test]
fn delta_points_count_as_they_are_and_failures_follow_the_attributes() {
    let series = SeriesTable::default();
    let mut grpc = point(200, T0, T0 + 10 * S, [0, 3, 0, 0]);
    grpc.attributes = vec![kv("rpc.grpc.status_code", Value::IntValue(14))];
    let mut typed = point(200, T0, T0 + 10 * S, [0, 0, 0, 2]);
    typed
        .attributes
        .push(kv("error.type", Value::StringValue("timeout".into())));
    let delta = request(vec![histogram(
        1,
        vec![point(404, T0, T0 + 10 * S, [7, 0, 0, 0]), grpc, typed],
    )]);
    let (requests, errors, _) = apply(&series, &delta);
    assert_eq!(
        (requests, errors),
        (12, 5),
        "404 is the client's; UNAVAILABLE and error.type fail"
    );
    assert_eq!(
        apply(&series, &delta).0,
        12,
        "delta points are not de-duplicated by level"
    );
}

#[test]
fn latency_samples_sit_in_the_buckets_in_proportion() {
    let series = SeriesTable::default();
    let delta = request(vec![histogram(
        1,
        vec![point(200, T0, T0 + 10 * S, [300, 100, 0, 0])],
    )]);
    let (_, _, samples) = apply(&series, &delta);
    assert_eq!(samples.len() as u64, SAMPLES_PER_POINT);
    // 0–10 ms → 5 ms; 10–100 ms → 55 ms.
    let fast = samples.iter().filter(|us| **us == 5_000).count();
    let slow = samples.iter().filter(|us| **us == 55_000).count();
    assert_eq!((fast, slow), (48, 16));
}

#[test]
fn exponential_histograms_count_too() {
    let series = SeriesTable::default();
    let metric = Metric {
        name: "rpc.server.duration".into(),
        unit: "ms".into(),
        data: Some(Data::ExponentialHistogram(ExponentialHistogram {
            aggregation_temporality: 1,
            data_points: vec![ExponentialHistogramDataPoint {
                start_time_unix_nano: T0,
                time_unix_nano: T0 + 10 * S,
                count: 6,
                scale: 0,
                zero_count: 0,
                // Base 2: (16, 32] ms and (32, 64] ms.
                positive: Some(Buckets {
                    offset: 4,
                    bucket_counts: vec![4, 2],
                }),
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let (requests, errors, samples) = apply(&series, &request(vec![metric]));
    assert_eq!((requests, errors), (6, 0));
    assert!(
        samples.iter().all(|us| (16_000..=64_000).contains(us)),
        "{samples:?}"
    );
}

#[test]
fn other_metrics_are_counted_and_not_stored() {
    let series = SeriesTable::default();
    let gauge = Metric {
        name: "process.cpu.utilization".into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint::default(), NumberDataPoint::default()],
        })),
        ..Default::default()
    };
    let request = request(vec![
        gauge,
        histogram(1, vec![point(200, T0, T0 + S, [1, 0, 0, 0])]),
    ]);
    assert_eq!(data_points(&request), 3);
    let (summary, _, held) = summarize_metrics(&request, None, NOW_MS, &series);
    assert_eq!(
        held,
        PointCounts {
            request_points: 1,
            other_points: 2
        }
    );
    assert_eq!(summary.batch.releases.len(), 1);
}

#[test]
fn malformed_points_neither_panic_nor_count_nonsense_samples() {
    let series = SeriesTable::default();
    let mut nan_bounds = point(200, T0, T0 + 30 * S, [3, 0, 0, 0]);
    nan_bounds.explicit_bounds = vec![f64::NAN, f64::INFINITY, -1.0];
    nan_bounds.sum = Some(f64::NAN);
    let mut huge = point(200, T0, T0 + 30 * S, [0, 0, 1, 0]);
    huge.bucket_counts = vec![u64::MAX, u64::MAX, 1, 0];
    huge.count = u64::MAX;
    let mut mismatched = point(503, T0, T0 + 30 * S, [1, 1, 1, 1]);
    mismatched.explicit_bounds = vec![0.5];
    mismatched.bucket_counts = vec![1, 1, 1, 1, 1, 1];
    mismatched.count = 2;
    let mut no_buckets = point(200, T0, T0 + 30 * S, [0, 0, 0, 0]);
    no_buckets.bucket_counts.clear();
    no_buckets.explicit_bounds.clear();
    no_buckets.count = 5;
    no_buckets
        .attributes
        .push(kv("http.route", Value::StringValue("/other".into())));
    let request = request(vec![histogram(
        1,
        vec![nan_bounds, huge, mismatched, no_buckets],
    )]);
    let (requests, errors, samples) = apply(&series, &request);
    // Counts saturate; every sample kept is a finite, non-negative duration.
    assert_eq!(requests, u64::MAX);
    assert_eq!(errors, 2);
    assert!(
        samples.len() <= 4 * SAMPLES_PER_POINT as usize,
        "{}",
        samples.len()
    );
}
