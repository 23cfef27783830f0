//! Ingest throughput, reproducibly:
//!
//! ```text
//! cargo run --release -p bellwether-collector --example ingest_bench -- [BATCHES] [RECORDS] [CLIENTS] [--error-percent P] [--java-stacks]
//! ```
//!
//! `--error-percent P` (default 2) makes P % of the records errors, each in its own trace;
//! with `--java-stacks` every error carries a Java exception (`exception.type`,
//! `exception.message`, `exception.stacktrace` of about 1.5 KiB, one of four
//! fingerprints), so fingerprinting and issue bookkeeping are part of the measurement.
//!
//! 1. store: summarize + apply BATCHES batches of RECORDS log records, one at a time,
//!    with a flush per batch (what the collector does) and without (sled's background
//!    flush), to show what durability costs;
//! 2. traces: summarize + apply BATCHES trace batches of RECORDS requests (background
//!    flush), each request a server span alone and then with two client spans (calls to
//!    two dependencies): the difference is what a client span costs;
//! 3. metrics: summarize + apply BATCHES metrics batches of RECORDS data points of
//!    `http.server.request.duration` (delta, 4 buckets, a route and status each);
//! 4. end to end: CLIENTS concurrent OTLP/gRPC clients (gzip, batch ids) against
//!    `server::run` on loopback, BATCHES batches in all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bellwether_collector::config::Settings;
use bellwether_collector::ingest::request_metrics::{summarize_metrics, SeriesTable};
use bellwether_collector::ingest::summarize::{summarize_logs, summarize_traces};
use bellwether_collector::server::{self, Listeners};
use bellwether_proto::otlp::common::{any_value, AnyValue, KeyValue};
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::metrics::metric::Data;
use bellwether_proto::otlp::metrics::{
    Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics,
};
use bellwether_proto::otlp::metrics_service::ExportMetricsServiceRequest;
use bellwether_proto::otlp::resource::Resource;
use bellwether_proto::otlp::trace::span::SpanKind;
use bellwether_proto::otlp::trace::{status, ResourceSpans, ScopeSpans, Span, Status};
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;
use bellwether_store::{ReleaseStore, SledStore};
use tonic::codec::CompressionEncoding;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

/// Nanoseconds since the Unix epoch, now.
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// What the records of a request look like.
#[derive(Clone, Copy, Debug)]
struct Mix {
    /// Errors per 10 000 records.
    errors_per_10k: usize,
    java_stacks: bool,
}

fn java_stack(i: usize) -> String {
    let method = ["charge", "refund", "reserve", "ship"][i % 4];
    let mut stack = format!(
        "com.shop.Checkout$PaymentException: {method} failed for order {i}\n\tat com.shop.Checkout.{method}(Checkout.java:22)\n"
    );
    for depth in 0..20 {
        stack.push_str(&format!(
            "\tat org.springframework.web.servlet.FrameworkServlet.service{depth}(FrameworkServlet.java:{})\n",
            800 + depth
        ));
    }
    stack.push_str("Caused by: java.lang.NullPointerException: Cannot invoke \"java.lang.Integer.intValue()\"\n\tat com.shop.Checkout$Cart.total(Checkout.java:10)\n\t... 21 more");
    stack
}

fn request(records: usize, version: usize, mix: Mix) -> ExportLogsServiceRequest {
    let now = now_ns();
    let log_records = (0..records)
        .map(|i| {
            let error = (i * mix.errors_per_10k) % 10_000 + mix.errors_per_10k >= 10_000;
            let mut record = LogRecord {
                time_unix_nano: now - (i as u64 % 60) * 1_000_000_000,
                severity_number: if error { 17 } else { 9 },
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(format!("request {i} served"))),
                }),
                ..LogRecord::default()
            };
            if error {
                record.trace_id = (version * records + i).to_be_bytes().repeat(2);
                if mix.java_stacks {
                    record.attributes = vec![
                        kv("exception.type", "com.shop.Checkout$PaymentException"),
                        kv(
                            "exception.message",
                            &format!("payment failed for order {i}"),
                        ),
                        kv("exception.stacktrace", &java_stack(i)),
                    ];
                }
            }
            record
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "bench"),
                    kv("service.version", &format!("1.{}", version % 4)),
                    kv("deployment.environment.name", "prod"),
                    kv("vcs.ref.head.revision", "abc123"),
                ],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

fn report(label: &str, records: usize, batches: usize, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "{label:<34} {:>10.0} records/s  {:>8.2} ms/batch  ({records} records in {batches} batches, {:.2}s)",
        records as f64 / secs,
        secs * 1000.0 / batches as f64,
        secs
    );
}

fn store_bench(batches: usize, records: usize, flush: bool, mix: Mix) -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    let store = SledStore::open_with(dir.path(), flush)?;
    let requests: Vec<_> = (0..batches).map(|i| request(records, i, mix)).collect();
    let started = Instant::now();
    for (i, request) in requests.iter().enumerate() {
        let batch = summarize_logs(request, Some(format!("bench:{i}")), 1_700_000_000_000);
        store.apply(&batch)?;
    }
    store.flush()?;
    let label = if flush {
        "store, flush per batch"
    } else {
        "store, background flush"
    };
    report(label, batches * records, batches, started.elapsed());
    Ok(())
}

/// `requests` requests of batch `batch`, each a server span and `calls` client spans
/// (to `payments-api` and `postgresql/orders`, alternately), 2 % failing.
fn traces(requests: usize, batch: usize, calls: usize) -> ExportTraceServiceRequest {
    let now = now_ns();
    let span = |n: usize, id: u8, kind: SpanKind, failed: bool, attrs: Vec<KeyValue>| Span {
        trace_id: (batch * requests + n).to_be_bytes().repeat(2),
        span_id: [&(n as u64).to_be_bytes()[1..], &[id]].concat(),
        parent_span_id: if id == 0 {
            Vec::new()
        } else {
            [&(n as u64).to_be_bytes()[1..], &[0]].concat()
        },
        kind: kind as i32,
        name: "GET /cart".into(),
        start_time_unix_nano: now - 20_000_000,
        end_time_unix_nano: now,
        attributes: attrs,
        status: Some(Status {
            code: if failed {
                status::StatusCode::Error
            } else {
                status::StatusCode::Ok
            } as i32,
            ..Status::default()
        }),
        ..Span::default()
    };
    let spans = (0..requests)
        .flat_map(|n| {
            let failed = n % 50 == 7;
            let mut spans = vec![span(n, 0, SpanKind::Server, failed, Vec::new())];
            for c in 0..calls {
                let attrs = if c % 2 == 0 {
                    vec![kv("peer.service", "payments-api")]
                } else {
                    vec![
                        kv("db.system.name", "postgresql"),
                        kv("db.namespace", "orders"),
                    ]
                };
                spans.push(span(
                    n,
                    c as u8 + 1,
                    SpanKind::Client,
                    failed && c == 0,
                    attrs,
                ));
            }
            spans
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "bench"),
                    kv("service.version", "1.0"),
                    kv("deployment.environment.name", "prod"),
                ],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

/// Summarize + apply of trace batches with `calls` client spans a request; returns the
/// time taken.
fn traces_bench(batches: usize, requests: usize, calls: usize) -> BenchResult<Duration> {
    let dir = tempfile::tempdir()?;
    let store = SledStore::open_with(dir.path(), false)?;
    let exports: Vec<_> = (0..batches).map(|b| traces(requests, b, calls)).collect();
    let started = Instant::now();
    for (i, export) in exports.iter().enumerate() {
        let batch = summarize_traces(export, Some(format!("bench:{i}")), 1_700_000_000_000);
        store.apply(&batch)?;
    }
    store.flush()?;
    let elapsed = started.elapsed();
    let spans = batches * requests * (1 + calls);
    println!(
        "{:<34} {:>10.0} spans/s    {:>8.2} µs/span  ({spans} spans in {batches} batches, {:.2}s)",
        format!("traces, {calls} client spans a request"),
        spans as f64 / elapsed.as_secs_f64().max(1e-9),
        elapsed.as_secs_f64() * 1e6 / spans as f64,
        elapsed.as_secs_f64()
    );
    Ok(elapsed)
}

/// `points` delta points of the request-duration histogram, one per (route, status).
fn metrics(points: usize) -> ExportMetricsServiceRequest {
    let now = now_ns();
    let data_points = (0..points)
        .map(|i| HistogramDataPoint {
            attributes: vec![
                kv("http.route", &format!("/items/{}", i / 4)),
                KeyValue {
                    key: "http.response.status_code".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue([200, 201, 404, 500][i % 4])),
                    }),
                    ..KeyValue::default()
                },
            ],
            start_time_unix_nano: now - 10_000_000_000,
            time_unix_nano: now,
            count: 100,
            sum: Some(1.2),
            bucket_counts: vec![10, 70, 15, 5],
            explicit_bounds: vec![0.005, 0.025, 0.1],
            ..HistogramDataPoint::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "bench"),
                    kv("service.version", "1.0"),
                    kv("deployment.environment.name", "prod"),
                ],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "http.server.request.duration".into(),
                    unit: "s".into(),
                    data: Some(Data::Histogram(Histogram {
                        data_points,
                        aggregation_temporality: 1,
                    })),
                    ..Metric::default()
                }],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

fn metrics_bench(batches: usize, points: usize) -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    let store = SledStore::open_with(dir.path(), false)?;
    let series = SeriesTable::default();
    let exports: Vec<_> = (0..batches).map(|_| metrics(points)).collect();
    let started = Instant::now();
    for (i, export) in exports.iter().enumerate() {
        let (batch, pending, _) = summarize_metrics(
            export,
            Some(format!("bench:{i}")),
            1_700_000_000_000,
            &series,
        );
        store.apply(&batch.batch)?;
        series.commit(pending);
    }
    store.flush()?;
    let elapsed = started.elapsed();
    let all = batches * points;
    println!(
        "{:<34} {:>10.0} points/s   {:>8.2} µs/point ({all} points in {batches} batches, {:.2}s)",
        "metrics, request-duration points",
        all as f64 / elapsed.as_secs_f64().max(1e-9),
        elapsed.as_secs_f64() * 1e6 / all as f64,
        elapsed.as_secs_f64()
    );
    Ok(())
}

async fn grpc_bench(batches: usize, records: usize, clients: usize, mix: Mix) -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    let settings = Settings::ephemeral(dir.path());
    let listeners = Listeners::bind(&settings).await?;
    let url = format!("http://{}", listeners.otlp_grpc.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::run(settings, listeners, async {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(url)?
        .connect()
        .await?;
    let request = Arc::new(request(records, 0, mix));
    let per_client = batches / clients.max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = LogsServiceClient::new(channel.clone())
            .send_compressed(CompressionEncoding::Gzip)
            .max_encoding_message_size(64 << 20);
        let request = Arc::clone(&request);
        tasks.push(tokio::spawn(async move {
            for b in 0..per_client {
                let mut message = tonic::Request::new((*request).clone());
                message.metadata_mut().insert(
                    bellwether_proto::BATCH_ID_HEADER,
                    format!("bench-{c}:{b}").parse()?,
                );
                client.export(message).await?;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    report(
        &format!("otlp/grpc end to end, {clients} clients"),
        per_client * clients * records,
        per_client * clients,
        started.elapsed(),
    );
    let _ = stop.send(());
    server.await??;
    Ok(())
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let mut args: Vec<usize> = Vec::new();
    let mut mix = Mix {
        errors_per_10k: 200,
        java_stacks: false,
    };
    let mut raw = std::env::args().skip(1);
    while let Some(arg) = raw.next() {
        match arg.as_str() {
            "--java-stacks" => mix.java_stacks = true,
            "--error-percent" => {
                let percent: f64 = raw
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or("--error-percent needs a number")?;
                mix.errors_per_10k = (percent.clamp(0.0, 100.0) * 100.0).round() as usize;
            }
            other => args.push(
                other
                    .parse()
                    .map_err(|_| format!("unexpected argument {other}"))?,
            ),
        }
    }
    let batches = args.first().copied().unwrap_or(200);
    let records = args.get(1).copied().unwrap_or(1000);
    let clients = args.get(2).copied().unwrap_or(8);
    println!(
        "{batches} batches of {records} log records, {}% errors{}",
        mix.errors_per_10k as f64 / 100.0,
        if mix.java_stacks {
            " with Java stack traces"
        } else {
            ""
        }
    );
    tokio::task::spawn_blocking(move || -> BenchResult<()> {
        store_bench(batches, records, true, mix)?;
        store_bench(batches, records, false, mix)?;
        let alone = traces_bench(batches, records, 0)?;
        let with_calls = traces_bench(batches, records, 2)?;
        let client_spans = (batches * records * 2) as f64;
        println!(
            "{:<34} {:>10.2} µs",
            "cost of one client span",
            (with_calls.as_secs_f64() - alone.as_secs_f64()) * 1e6 / client_spans
        );
        metrics_bench(batches, records)
    })
    .await??;
    grpc_bench(batches, records, 1, mix).await?;
    grpc_bench(batches, records, clients, mix).await
}
