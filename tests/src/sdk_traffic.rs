//! Traffic as an instrumented service sends it: the OpenTelemetry SDK's tracer and logger
//! providers, batch processors and OTLP/gRPC exporters, pointed at a collector.
//!
//! Each request is one SERVER span and one log record in the same trace (the record
//! carries the span's trace and span ids). A failing request is a span with status Error
//! and an `exception` event (type and message), and an ERROR log record with
//! `exception.type`, `exception.message` and `exception.stacktrace`: the three records
//! an instrumented service reports for one failure.
//!
//! Every timestamp is explicit, so minutes of traffic at a steady rate are laid down in
//! seconds of wall time: request `i` of [`Traffic`] ends at `from + i / per_second` and
//! its log record is written then. Which requests fail is fixed (every `fail_every`-th)
//! and durations come from a seeded generator ([`Latency`]), so a run is the same every
//! time. [`send`] fails unless the exporters delivered every span and every record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bellwether_testkit::eventually;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{BatchLogProcessor, LogBatch, LogExporter, SdkLoggerProvider};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How long the exporters get to deliver what was emitted.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);
/// Spans or records per OTLP request.
const EXPORT_BATCH: usize = 1_024;
/// How often the batch processors export a partial batch.
const EXPORT_DELAY: Duration = Duration::from_millis(100);

/// Who sends: the resource attributes of one instance of one release.
#[derive(Clone, Copy, Debug)]
pub struct Release<'a> {
    pub service: &'a str,
    pub version: &'a str,
    pub environment: &'a str,
    pub instance: &'a str,
}

/// The exception a failing request reports, on its span event and its log record.
#[derive(Clone, Copy, Debug)]
pub struct Failure {
    pub exception_type: &'static str,
    pub message: &'static str,
    pub stacktrace: &'static str,
}

/// A declined payment, with a Java stack trace (in-app frames under `com.shop`).
pub const PAYMENT_DECLINED: Failure = Failure {
    exception_type: "com.shop.payments.PaymentDeclinedException",
    message: "card declined by issuer",
    stacktrace: "com.shop.payments.PaymentDeclinedException: card declined by issuer\n\
                 \tat com.shop.payments.Gateway.charge(Gateway.java:42)\n\
                 \tat com.shop.checkout.CheckoutService.placeOrder(CheckoutService.java:118)\n\
                 \tat com.shop.checkout.CheckoutController.post(CheckoutController.java:31)",
};

/// Request durations: lognormal with the given median and 95th percentile, drawn from a
/// generator seeded with `seed`.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    pub median_ms: f64,
    pub p95_ms: f64,
    pub seed: u64,
}

impl Latency {
    /// The same shape, every duration `factor` times as long.
    pub fn scaled(self, factor: f64) -> Self {
        Self {
            median_ms: self.median_ms * factor,
            p95_ms: self.p95_ms * factor,
            seed: self.seed,
        }
    }

    /// The same distribution, drawn from another seed.
    pub fn reseeded(self, seed: u64) -> Self {
        Self { seed, ..self }
    }

    /// An endless sequence of durations.
    fn durations(self) -> impl Iterator<Item = Duration> {
        // ln X ~ N(μ, σ²): the median is e^μ, the 95th percentile e^(μ + 1.645 σ).
        let mu = self.median_ms.ln();
        let sigma = (self.p95_ms / self.median_ms).ln() / 1.644_853_6;
        let mut rng = StdRng::seed_from_u64(self.seed);
        std::iter::from_fn(move || {
            // Box–Muller; 1 − u lies in (0, 1], so the logarithm is finite.
            let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            Some(Duration::from_secs_f64((mu + sigma * z).exp() / 1e3))
        })
    }
}

/// Requests of one release over a span of time, at a steady rate.
#[derive(Clone, Copy, Debug)]
pub struct Traffic {
    /// The first request ends here (Unix ms)…
    pub from_unix_ms: i64,
    /// …and the last one before this.
    pub to_unix_ms: i64,
    pub per_second: u64,
    /// Every `fail_every`-th request fails (100: 1 %); `None`: none does.
    pub fail_every: Option<u64>,
    pub failure: Failure,
    pub latency: Latency,
}

impl Traffic {
    /// How many requests the traffic holds.
    pub fn requests(&self) -> u64 {
        let millis = u64::try_from(self.to_unix_ms - self.from_unix_ms).unwrap_or(0);
        millis * self.per_second / 1_000
    }

    /// Whether request `i` fails.
    pub fn fails(&self, i: u64) -> bool {
        // The middle of every block, not its first request: a block's failure never
        // sits on the boundary of a time range.
        self.fail_every
            .is_some_and(|every| every > 0 && i % every == every / 2)
    }

    /// How many of the requests fail.
    pub fn failures(&self) -> u64 {
        (0..self.requests()).filter(|&i| self.fails(i)).count() as u64
    }

    /// When request `i` ends.
    fn end_of(&self, i: u64) -> SystemTime {
        let from = Duration::from_millis(u64::try_from(self.from_unix_ms).unwrap_or(0));
        let offset = Duration::from_nanos(i * 1_000_000_000 / self.per_second.max(1));
        UNIX_EPOCH + from + offset
    }
}

/// What [`send`] delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub requests: u64,
    pub failures: u64,
    pub spans: u64,
    pub log_records: u64,
}

/// Sends `traffic` from `release` through the SDK to the OTLP/gRPC endpoint `endpoint`
/// (`http://host:port`), and returns once every span and log record was delivered.
/// Needs a multi-threaded tokio runtime: the exporters' connections run on it while the
/// batch processors' threads wait for them.
pub async fn send(endpoint: &str, release: &Release<'_>, traffic: &Traffic) -> Result<Sent> {
    let requests = traffic.requests();
    let delivered = Arc::new(Delivered::default());
    let pipeline = Pipeline::new(endpoint, release, requests, &delivered)?;
    let traffic = *traffic;
    let pipeline = tokio::task::spawn_blocking(move || {
        pipeline.emit(&traffic);
        pipeline
    })
    .await?;
    // Full batches go out on their own, the rest after EXPORT_DELAY: wait for all of them
    // rather than for a flush, which gives up after 5 s.
    let waited = eventually(DELIVERY_TIMEOUT, || {
        let delivered = Arc::clone(&delivered);
        async move {
            if delivered.failed() > 0 {
                bail!("exports failed: {delivered:?}");
            }
            Ok(delivered.all(requests).then_some(()))
        }
    })
    .await;
    let shutdown = tokio::task::spawn_blocking(move || pipeline.shutdown()).await?;
    waited.with_context(|| format!("{requests} requests emitted, delivered: {delivered:?}"))?;
    shutdown?;
    Ok(Sent {
        requests,
        failures: traffic.failures(),
        spans: delivered.spans.load(Ordering::Relaxed),
        log_records: delivered.log_records.load(Ordering::Relaxed),
    })
}

/// Spans and log records the exporters delivered, and those in failed exports.
#[derive(Debug, Default)]
struct Delivered {
    spans: AtomicU64,
    log_records: AtomicU64,
    failed_spans: AtomicU64,
    failed_log_records: AtomicU64,
}

impl Delivered {
    fn all(&self, requests: u64) -> bool {
        self.spans.load(Ordering::Relaxed) >= requests
            && self.log_records.load(Ordering::Relaxed) >= requests
    }

    fn failed(&self) -> u64 {
        self.failed_spans.load(Ordering::Relaxed) + self.failed_log_records.load(Ordering::Relaxed)
    }
}

fn count(result: &OTelSdkResult, n: usize, ok: &AtomicU64, failed: &AtomicU64) {
    let counter = if result.is_ok() { ok } else { failed };
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

/// The OTLP span exporter, counting what it delivered.
#[derive(Debug)]
struct CountingSpans<E> {
    inner: E,
    delivered: Arc<Delivered>,
}

impl<E: SpanExporter> SpanExporter for CountingSpans<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        let result = self.inner.export(batch).await;
        let d = &self.delivered;
        count(&result, n, &d.spans, &d.failed_spans);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP log exporter, counting what it delivered.
#[derive(Debug)]
struct CountingLogs<E> {
    inner: E,
    delivered: Arc<Delivered>,
}

impl<E: LogExporter> LogExporter for CountingLogs<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let n = batch.iter().count();
        let result = self.inner.export(batch).await;
        let d = &self.delivered;
        count(&result, n, &d.log_records, &d.failed_log_records);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        self.inner.event_enabled(level, target, name)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// One service instance's SDK: a tracer provider and a logger provider.
struct Pipeline {
    tracers: SdkTracerProvider,
    loggers: SdkLoggerProvider,
}

impl Pipeline {
    /// Needs a tokio runtime context: the exporters' channels run their connections there.
    /// The processors' queues hold `requests`, so that none is dropped for a full queue.
    fn new(
        endpoint: &str,
        release: &Release<'_>,
        requests: u64,
        delivered: &Arc<Delivered>,
    ) -> Result<Self> {
        let queue = usize::try_from(requests)
            .unwrap_or(usize::MAX)
            .max(EXPORT_BATCH);
        let resource = Resource::builder()
            .with_service_name(release.service.to_owned())
            .with_attributes([
                KeyValue::new("service.version", release.version.to_owned()),
                KeyValue::new(
                    "deployment.environment.name",
                    release.environment.to_owned(),
                ),
                KeyValue::new("service.instance.id", release.instance.to_owned()),
            ])
            .build();

        let spans = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .context("building the span exporter")?;
        let spans = CountingSpans {
            inner: spans,
            delivered: Arc::clone(delivered),
        };
        let span_batches = opentelemetry_sdk::trace::BatchConfigBuilder::default()
            .with_max_queue_size(queue)
            .with_max_export_batch_size(EXPORT_BATCH)
            .with_scheduled_delay(EXPORT_DELAY)
            .build();
        let tracers = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_span_processor(
                BatchSpanProcessor::builder(spans)
                    .with_batch_config(span_batches)
                    .build(),
            )
            .build();

        let logs = opentelemetry_otlp::LogExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .context("building the log exporter")?;
        let logs = CountingLogs {
            inner: logs,
            delivered: Arc::clone(delivered),
        };
        let log_batches = opentelemetry_sdk::logs::BatchConfigBuilder::default()
            .with_max_queue_size(queue)
            .with_max_export_batch_size(EXPORT_BATCH)
            .with_scheduled_delay(EXPORT_DELAY)
            .build();
        let loggers = SdkLoggerProvider::builder()
            .with_resource(resource)
            .with_log_processor(
                BatchLogProcessor::builder(logs)
                    .with_batch_config(log_batches)
                    .build(),
            )
            .build();
        Ok(Self { tracers, loggers })
    }

    /// Emits every request of `traffic`: blocks on nothing but the SDK's queues.
    fn emit(&self, traffic: &Traffic) {
        let tracer = self.tracers.tracer("bellwether-e2e");
        let logger = self.loggers.logger("bellwether-e2e");
        let failure = traffic.failure;
        let durations = traffic.latency.durations();
        for (i, duration) in (0..traffic.requests()).zip(durations) {
            let fails = traffic.fails(i);
            let end = traffic.end_of(i);
            let status_code: i64 = if fails { 500 } else { 200 };
            let mut span = tracer
                .span_builder("POST /checkout")
                .with_kind(SpanKind::Server)
                .with_start_time(end - duration)
                .with_attributes([
                    KeyValue::new("http.request.method", "POST"),
                    KeyValue::new("http.route", "/checkout"),
                    KeyValue::new("http.response.status_code", status_code),
                ])
                .start(&tracer);
            let context = span.span_context().clone();

            let mut record = logger.create_log_record();
            record.set_timestamp(end);
            record.set_observed_timestamp(end);
            record.set_trace_context(
                context.trace_id(),
                context.span_id(),
                Some(context.trace_flags()),
            );
            if fails {
                span.add_event_with_timestamp(
                    "exception",
                    end,
                    vec![
                        KeyValue::new("exception.type", failure.exception_type),
                        KeyValue::new("exception.message", failure.message),
                    ],
                );
                span.set_status(Status::error(failure.message));
                record.set_severity_number(Severity::Error);
                record.set_severity_text("ERROR");
                record.set_body(AnyValue::from("checkout failed"));
                record.add_attributes([
                    ("exception.type", failure.exception_type),
                    ("exception.message", failure.message),
                    ("exception.stacktrace", failure.stacktrace),
                ]);
            } else {
                record.set_severity_number(Severity::Info);
                record.set_severity_text("INFO");
                record.set_body(AnyValue::from("order placed"));
            }
            logger.emit(record);
            span.end_with_timestamp(end);
        }
    }

    /// Flushes and shuts both providers down; an error when either reports one.
    fn shutdown(self) -> Result<()> {
        let flushed = (self.tracers.force_flush(), self.loggers.force_flush());
        flushed.0.context("flushing the tracer provider")?;
        flushed.1.context("flushing the logger provider")?;
        self.tracers
            .shutdown_with_timeout(Duration::from_secs(30))
            .context("shutting down the tracer provider")?;
        self.loggers
            .shutdown_with_timeout(Duration::from_secs(30))
            .context("shutting down the logger provider")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(fail_every: Option<u64>) -> Traffic {
        Traffic {
            from_unix_ms: 1_700_000_000_000,
            to_unix_ms: 1_700_000_060_000,
            per_second: 100,
            fail_every,
            failure: PAYMENT_DECLINED,
            latency: Latency {
                median_ms: 20.0,
                p95_ms: 45.0,
                seed: 1,
            },
        }
    }

    #[test]
    fn failures_are_every_nth_request() {
        assert_eq!(traffic(None).requests(), 6_000);
        assert_eq!(traffic(None).failures(), 0);
        assert_eq!(traffic(Some(100)).failures(), 60);
        assert_eq!(traffic(Some(50)).failures(), 120);
        let ends = traffic(None);
        assert_eq!(
            ends.end_of(150).duration_since(UNIX_EPOCH).ok(),
            Some(Duration::from_millis(1_700_000_001_500))
        );
    }

    #[test]
    fn durations_are_seeded_lognormal() {
        let latency = traffic(None).latency;
        let mut ms: Vec<f64> = latency
            .durations()
            .take(20_000)
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        let again: Vec<f64> = latency
            .durations()
            .take(20_000)
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        assert_eq!(ms, again, "the same seed gives the same durations");
        ms.sort_by(f64::total_cmp);
        let (median, p95) = (ms[10_000], ms[19_000]);
        assert!((median - 20.0).abs() < 1.0, "median {median}");
        assert!((p95 - 45.0).abs() < 3.0, "p95 {p95}");
        let doubled = latency.scaled(2.0).durations().next().unwrap_or_default();
        let first = latency.durations().next().unwrap_or_default();
        let off = (doubled.as_secs_f64() - 2.0 * first.as_secs_f64()).abs();
        assert!(off < 1e-6, "{doubled:?} vs 2 × {first:?}");
    }
}
