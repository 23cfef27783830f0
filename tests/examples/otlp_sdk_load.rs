//! Load generator for `bench/agent.sh`: emits N log records through the OpenTelemetry
//! SDK — Logger API, batch log processor, OTLP/gRPC (tonic) exporter — to an agent's
//! OTLP port, the way an instrumented app would.
//!
//!   otlp_sdk_load --endpoint http://127.0.0.1:4317 [--records 2000000] [--instances 1]
//!
//! `--instances N` splits the records over N independent SDK pipelines (logger provider,
//! batch processor, exporter), each emitting from its own thread, as N app processes
//! would; one batch processor has only one export in flight at a time.
//!
//! The records mirror the bench's file workload: a request message, INFO with 5 % ERROR,
//! and the attributes `path`, `status`, `duration_ms`, `user.id`. Every record must
//! reach the agent: the batch processor silently drops a record when its queue is full,
//! so emitters take credit before emitting and the exporter gives it back once a batch
//! has been sent — never more records outstanding than the queue holds. The run fails
//! unless the exporter sent every record.
//!
//! Prints one line: `records=N errors=E seconds=S records_per_second=R requests=Q
//! export_ms_mean=M export_ms_p50=P export_ms_p99=Q export_busy_seconds=B cpu_ticks=T`
//! (the percentiles over full exports of `MAX_EXPORT_BATCH_SIZE` records, from the call
//! into the SDK's OTLP exporter to the agent's answer). The batch processor has one
//! export in flight at a time, so `export_busy_seconds` close to `seconds` means the
//! round trips to the agent set the pace. `cpu_ticks` is this process's user + system
//! CPU in clock ticks, from `/proc/self/stat` (0 where that is unavailable).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    BatchConfigBuilder, BatchLogProcessor, LogBatch, LogExporter, SdkLogger, SdkLoggerProvider,
};
use opentelemetry_sdk::Resource;

/// The batch processor's queue. Large, so that emitters rarely wait on the exporter.
const MAX_QUEUE_SIZE: usize = 65_536;
/// Records per OTLP request.
const MAX_EXPORT_BATCH_SIZE: usize = 2_048;
/// Credit an emitter takes at once; taking it per record would contend on the lock.
const CREDIT_CHUNK: usize = 512;

struct Args {
    endpoint: String,
    records: u64,
    instances: usize,
}

fn parse_args() -> Result<Args> {
    let mut endpoint = None;
    let mut records = 2_000_000;
    let mut instances = 1;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--endpoint" => endpoint = Some(value()?),
            "--records" => records = value()?.parse().context("--records")?,
            "--instances" => instances = value()?.parse().context("--instances")?,
            _ => bail!(
                "unknown argument {flag}; usage: otlp_sdk_load --endpoint URL [--records N] [--instances N]"
            ),
        }
    }
    if instances == 0 {
        bail!("--instances must be at least 1");
    }
    Ok(Args {
        endpoint: endpoint.context("--endpoint is required")?,
        records,
        instances,
    })
}

/// Records handed to the SDK whose export has not finished. Bounded by the batch
/// processor's queue size, so its queue can never be full when a record is emitted.
struct Credit {
    outstanding: Mutex<usize>,
    changed: Condvar,
    limit: usize,
}

impl Credit {
    fn new(limit: usize) -> Self {
        Self {
            outstanding: Mutex::new(0),
            changed: Condvar::new(),
            limit,
        }
    }

    /// Waits until `n` more records fit, then counts them as outstanding.
    fn take(&self, n: usize) {
        let mut outstanding = self.outstanding.lock().expect("credit lock");
        while *outstanding + n > self.limit {
            outstanding = self.changed.wait(outstanding).expect("credit lock");
        }
        *outstanding += n;
    }

    fn give_back(&self, n: usize) {
        let mut outstanding = self.outstanding.lock().expect("credit lock");
        *outstanding = outstanding.saturating_sub(n);
        self.changed.notify_all();
    }

    /// Waits until fewer than `n` records are outstanding.
    fn wait_below(&self, n: usize) {
        let mut outstanding = self.outstanding.lock().expect("credit lock");
        while *outstanding >= n {
            outstanding = self.changed.wait(outstanding).expect("credit lock");
        }
    }
}

impl std::fmt::Debug for Credit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credit")
            .field("limit", &self.limit)
            .finish()
    }
}

/// What the exporter did, for the summary.
#[derive(Debug, Default)]
struct Exported {
    sent: AtomicU64,
    failed: AtomicU64,
    requests: AtomicU64,
    busy_nanos: AtomicU64,
    /// Duration of each full export, in nanoseconds.
    full_nanos: Mutex<Vec<u64>>,
}

impl Exported {
    /// The `q` quantile (0–1) of the full exports' durations, in milliseconds.
    fn full_ms(&self, q: f64) -> f64 {
        let mut nanos = self.full_nanos.lock().expect("durations lock").clone();
        if nanos.is_empty() {
            return 0.0;
        }
        nanos.sort_unstable();
        let at = ((nanos.len() - 1) as f64 * q).round() as usize;
        nanos[at] as f64 / 1e6
    }
}

/// Wraps the OTLP exporter: counts what it sent and what failed, and gives the credit
/// for each finished batch back to the emitters.
#[derive(Debug)]
struct Counting<E> {
    inner: E,
    credit: Arc<Credit>,
    exported: Arc<Exported>,
}

impl<E: LogExporter> LogExporter for Counting<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let n = batch.iter().count();
        let start = Instant::now();
        let result = self.inner.export(batch).await;
        let exported = &self.exported;
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        exported.busy_nanos.fetch_add(nanos, Ordering::Relaxed);
        exported.requests.fetch_add(1, Ordering::Relaxed);
        if n == MAX_EXPORT_BATCH_SIZE {
            exported
                .full_nanos
                .lock()
                .expect("durations lock")
                .push(nanos);
        }
        let counter = if result.is_ok() {
            &exported.sent
        } else {
            &exported.failed
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
        self.credit.give_back(n);
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

fn is_error(i: u64) -> bool {
    i % 20 == 7
}

/// Emits records `range` (their numbers shape the content, as in the file workload).
fn emit(logger: &SdkLogger, credit: &Credit, range: std::ops::Range<u64>) {
    let mut i = range.start;
    while i < range.end {
        let chunk = (range.end - i).min(CREDIT_CHUNK as u64);
        credit.take(chunk as usize);
        for i in i..i + chunk {
            let error = is_error(i);
            let mut record = logger.create_log_record();
            record.set_timestamp(SystemTime::now());
            if error {
                record.set_severity_number(Severity::Error);
                record.set_severity_text("ERROR");
            } else {
                record.set_severity_number(Severity::Info);
                record.set_severity_text("INFO");
            }
            record.set_body(AnyValue::from(format!(
                "handled request {i} for customer c-{}",
                i % 977
            )));
            record.add_attributes([
                ("path", AnyValue::from(format!("/api/v1/orders/{i}"))),
                ("status", AnyValue::Int(if error { 500 } else { 200 })),
                ("duration_ms", AnyValue::Int((i % 97) as i64)),
                ("user.id", AnyValue::from(format!("u-{}", i % 31))),
            ]);
            logger.emit(record);
        }
        i += chunk;
    }
}

/// This process's user + system CPU so far, in clock ticks (fields 14 and 15).
fn cpu_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // The command name (field 2) may hold spaces; the fields after it do not.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    field(14).unwrap_or(0) + field(15).unwrap_or(0)
}

/// One app's SDK: a logger provider whose batch processor exports to the agent.
struct Instance {
    provider: SdkLoggerProvider,
    credit: Arc<Credit>,
}

impl Instance {
    /// Needs a tokio runtime context: the tonic channel runs its connection there.
    fn new(endpoint: &str, exported: &Arc<Exported>) -> Result<Self> {
        let credit = Arc::new(Credit::new(MAX_QUEUE_SIZE));
        let exporter = opentelemetry_otlp::LogExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?;
        let exporter = Counting {
            inner: exporter,
            credit: credit.clone(),
            exported: exported.clone(),
        };
        let processor = BatchLogProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(MAX_QUEUE_SIZE)
                    .with_max_export_batch_size(MAX_EXPORT_BATCH_SIZE)
                    .build(),
            )
            .build();
        let resource = Resource::builder()
            .with_service_name("bench")
            .with_attributes([
                KeyValue::new("service.version", "1"),
                KeyValue::new("deployment.environment.name", "bench"),
            ])
            .build();
        let provider = SdkLoggerProvider::builder()
            .with_resource(resource)
            .with_log_processor(processor)
            .build();
        Ok(Self { provider, credit })
    }

    /// Emits records `range`, then sends whatever the processor still holds.
    fn run(self, range: std::ops::Range<u64>) -> Result<()> {
        emit(&self.provider.logger("bench"), &self.credit, range);
        // Full batches go out on their own; force_flush (which waits at most 5 s) then
        // only has the last partial batch to send.
        self.credit.wait_below(MAX_EXPORT_BATCH_SIZE);
        self.provider
            .force_flush()
            .context("flushing the logger provider")?;
        self.provider
            .shutdown_with_timeout(Duration::from_secs(60))
            .context("shutting down the logger provider")
    }
}

fn run(args: Args) -> Result<()> {
    // The batch processors export from their own threads and only wait on this runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let _entered = runtime.enter();

    let exported = Arc::new(Exported::default());
    let instances = (0..args.instances)
        .map(|_| Instance::new(&args.endpoint, &exported))
        .collect::<Result<Vec<_>>>()?;
    let start = Instant::now();
    let per_instance = args.records.div_ceil(args.instances as u64);
    std::thread::scope(|scope| {
        let running: Vec<_> = (0u64..)
            .zip(instances)
            .map(|(n, instance)| {
                let from = (n * per_instance).min(args.records);
                let to = ((n + 1) * per_instance).min(args.records);
                scope.spawn(move || instance.run(from..to))
            })
            .collect();
        running
            .into_iter()
            .try_for_each(|thread| thread.join().expect("emitter thread panicked"))
    })?;
    let seconds = start.elapsed().as_secs_f64();

    let sent = exported.sent.load(Ordering::Relaxed);
    let failed = exported.failed.load(Ordering::Relaxed);
    let requests = exported.requests.load(Ordering::Relaxed);
    let busy = exported.busy_nanos.load(Ordering::Relaxed) as f64 / 1e9;
    if sent != args.records {
        bail!(
            "exporter sent {sent} of {} records ({failed} in failed exports)",
            args.records
        );
    }
    let errors = (0..args.records).filter(|&i| is_error(i)).count();
    println!(
        "records={sent} errors={errors} seconds={seconds:.3} records_per_second={:.0} \
         requests={requests} export_ms_mean={:.1} export_ms_p50={:.1} export_ms_p99={:.1} \
         export_busy_seconds={busy:.3} cpu_ticks={}",
        sent as f64 / seconds,
        busy * 1e3 / requests.max(1) as f64,
        exported.full_ms(0.5),
        exported.full_ms(0.99),
        cpu_ticks()
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("otlp_sdk_load: {e:#}");
            ExitCode::FAILURE
        }
    }
}
