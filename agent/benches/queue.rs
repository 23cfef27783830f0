//! The durable queue's hot path: encoding (and compressing) a batch, append (with its
//! sync to disk), read back as the exporter does, remove, and the whole `submit` round
//! trip through the pipeline (logs; and spans and metrics, to show what a span or a metric
//! data point costs the agent).
//!
//! `cargo bench -p bellwether-agent --bench queue`

use std::sync::Arc;
use std::time::Duration;

use bellwether_agent::batch::{Compression, EncodedLogs, Payload};
use bellwether_agent::identity::Identity;
use bellwether_agent::pipeline::{self, BatchConfig, Tagger, Telemetry};
use bellwether_agent::queue::{codec, Queue, Read};
use bellwether_agent::stats::{Source, Stats};
use bellwether_proto::otlp::common::KeyValue;
use bellwether_proto::otlp::common::{any_value::Value, AnyValue};
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::metrics::metric::Data;
use bellwether_proto::otlp::metrics::{
    Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics,
};
use bellwether_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// `records` log records of about 200 bytes each.
fn resource_logs(records: usize) -> Vec<ResourceLogs> {
    vec![ResourceLogs {
        scope_logs: vec![ScopeLogs {
            log_records: (0..records)
                .map(|i| LogRecord {
                    time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                    severity_number: 9,
                    body: Some(AnyValue {
                        value: Some(Value::StringValue(format!(
                            "GET /api/orders/{i} 200 12ms user=42 trace=4bf92f3577b34da6a3ce929d0e0e4736 {}",
                            "x".repeat(100)
                        ))),
                    }),
                    ..LogRecord::default()
                })
                .collect(),
            ..ScopeLogs::default()
        }],
        ..ResourceLogs::default()
    }]
}

/// `n` spans as a traced request makes them: every third a server span, the others client
/// calls naming their dependency.
fn resource_spans(n: usize) -> Vec<ResourceSpans> {
    let spans = (0..n)
        .map(|i| Span {
            trace_id: vec![(i / 3) as u8; 16],
            span_id: (i as u64).to_be_bytes().to_vec(),
            name: "GET /api/orders/{id}".into(),
            kind: if i % 3 == 0 { 2 } else { 3 },
            start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
            end_time_unix_nano: 1_700_000_000_020_000_000 + i as u64,
            attributes: vec![KeyValue {
                key: "peer.service".into(),
                value: Some(AnyValue {
                    value: Some(Value::StringValue("payments-api".into())),
                }),
                ..KeyValue::default()
            }],
            ..Span::default()
        })
        .collect();
    vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans,
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }]
}

/// `n` metrics, each one data point of a request-duration histogram.
fn resource_metrics(n: usize) -> Vec<ResourceMetrics> {
    let metrics = (0..n)
        .map(|i| Metric {
            name: "http.server.request.duration".into(),
            unit: "s".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    start_time_unix_nano: 1_700_000_000_000_000_000,
                    time_unix_nano: 1_700_000_010_000_000_000 + i as u64,
                    count: 100,
                    bucket_counts: vec![10, 70, 15, 5],
                    explicit_bounds: vec![0.005, 0.025, 0.1],
                    ..HistogramDataPoint::default()
                }],
                aggregation_temporality: 1,
            })),
            ..Metric::default()
        })
        .collect();
    vec![ResourceMetrics {
        scope_metrics: vec![ScopeMetrics {
            metrics,
            ..ScopeMetrics::default()
        }],
        ..ResourceMetrics::default()
    }]
}

fn open(dir: &std::path::Path) -> Queue {
    let stats = Arc::new(Stats::default());
    match Queue::open(dir, "bench", 1 << 30, stats) {
        Ok((queue, _)) => queue,
        Err(e) => panic!("queue opens: {e}"),
    }
}

fn append_read_remove(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    for records in [1usize, 100, 512] {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = open(dir.path());
        let batch = vec![(
            Payload::Logs(ExportLogsServiceRequest {
                resource_logs: resource_logs(records),
            }),
            records,
        )];
        group.throughput(Throughput::Elements(records as u64));
        group.bench_function(format!("append_flush_read_remove/{records}"), |b| {
            b.iter(|| {
                let seqs = queue.append(&batch).expect("appends");
                for seq in seqs {
                    match queue.read_encoded(seq).expect("reads") {
                        Read::Batch(batch) => assert_eq!(batch.records, records),
                        other => panic!("{other:?}"),
                    }
                    queue.remove(seq).expect("removes");
                }
            });
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    let records = 512;
    group.throughput(Throughput::Elements(records as u64));
    // As the pipeline does: each record encoded (and dropped) once tagged, then the
    // batch's request put together around them and compressed.
    for (name, compression) in [("gzip", Compression::Gzip), ("none", Compression::None)] {
        group.bench_function(format!("encode/{records}/{name}"), |b| {
            b.iter_batched(
                || resource_logs(records),
                |items| {
                    let encoded = items
                        .into_iter()
                        .flat_map(|item| EncodedLogs::encode(item, 0))
                        .collect();
                    let payload = Payload::EncodedLogs(encoded);
                    codec::encode("bench:q:1", records as u32, 0, &payload, compression)
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

fn submit_round_trip(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = open(dir.path());
    let stats = Arc::new(Stats::default());
    let identity = Identity {
        service: "checkout".into(),
        version: "1.4.2".into(),
        environment: "prod".into(),
        instance_id: "bench".into(),
        commit: None,
        deploy_id: None,
        team: None,
    };
    let (sender, rx) = pipeline::channel(1024, queue.clone(), stats);
    let config = BatchConfig {
        max_records: 512,
        max_bytes: pipeline::DEFAULT_BATCH_MAX_BYTES,
        timeout: Duration::from_secs(1),
    };
    runtime.spawn(pipeline::run_pipeline(
        rx,
        Tagger::new(&identity),
        config,
        queue.clone(),
    ));
    // Keep the queue from growing without bound: delete what is appended.
    let drainer = queue.clone();
    runtime.spawn(async move {
        let mut cursor = None;
        while drainer.wait_for_more(cursor).await {
            while let Some(seq) = drainer.next_after(cursor) {
                cursor = Some(seq);
                let _ = drainer.remove(seq);
            }
        }
    });

    let mut group = c.benchmark_group("pipeline");
    let make = |kind: &str, n: usize| match kind {
        "spans" => Telemetry::Spans(resource_spans(n)),
        "metrics" => Telemetry::Metrics(resource_metrics(n)),
        _ => Telemetry::Logs(resource_logs(n)),
    };
    for (kind, submitters, records) in [
        ("logs", 1usize, 100usize),
        ("logs", 8, 100),
        ("spans", 1, 512),
        ("metrics", 1, 512),
    ] {
        group.throughput(Throughput::Elements((submitters * records) as u64));
        let name = match kind {
            "logs" => format!("submit_until_durable/{submitters}x{records}"),
            kind => format!("submit_until_durable/{kind}/{submitters}x{records}"),
        };
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    (0..submitters)
                        .map(|_| make(kind, records))
                        .collect::<Vec<_>>()
                },
                |inputs| {
                    runtime.block_on(async {
                        let tasks: Vec<_> = inputs
                            .into_iter()
                            .map(|telemetry| {
                                let sender = sender.clone();
                                tokio::spawn(async move {
                                    sender.submit(Source::OtlpGrpc, telemetry, None).await
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await.expect("joins").expect("queued");
                        }
                    });
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, encode, append_read_remove, submit_round_trip);
criterion_main!(benches);
