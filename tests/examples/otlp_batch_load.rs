//! Load generator for `bench/cluster.sh`: sends N log records straight to collectors'
//! OTLP/gRPC ports, in batches that each carry a batch id, over C concurrent
//! connections spread round-robin over the target URLs.
//!
//!   otlp_batch_load --targets http://127.0.0.1:4317[,http://…] [--records 300000]
//!       [--batch 1000] [--connections 6] [--service bench] [--version 1]
//!       [--environment bench] [--run-id ID] [--rate 0]
//!
//! Connection `j` starts on target `j % targets`. Batches are handed out in order to
//! whichever connection is free. A batch that a target did not acknowledge (refused,
//! unreachable, timed out, overloaded) is sent again, with the same batch id, to the
//! next target, and the connection stays there; the collectors count a batch id once,
//! so the totals stay exact when a node dies mid-request. A batch refused as invalid
//! fails the run, as does one that no target acknowledged within two minutes.
//!
//! `--records 0` sends until the process is stopped (for load while nodes are
//! killed). `--rate R` paces all connections together to about R records/s (0: as
//! fast as the collectors answer).
//!
//! The records mirror `otlp_sdk_load`'s: a request message, INFO with 5 % ERROR, and
//! the attributes `path`, `status`, `duration_ms`, `user.id`.
//!
//! Prints one line at the end: `records=N batches=B resent=R seconds=S
//! records_per_second=R first_send_unix_ms=T cpu_ticks=T`; `cpu_ticks` is this
//! process's user + system CPU in clock ticks (0 where `/proc` is unavailable).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bellwether_proto::otlp::common::{any_value, AnyValue, KeyValue};
use bellwether_proto::otlp::logs::LogRecord;
use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_proto::otlp::resource::Resource;
use bellwether_testkit::otlp::{kv, logs_request, release_resource, SEVERITY_ERROR, SEVERITY_INFO};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

/// Longest one batch may go unacknowledged, over all its attempts.
const BATCH_PATIENCE: Duration = Duration::from_secs(120);
/// Longest one attempt may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

struct Args {
    targets: Vec<String>,
    records: u64,
    batch: u64,
    connections: usize,
    service: String,
    version: String,
    environment: String,
    run_id: String,
    rate: u64,
}

const USAGE: &str = "usage: otlp_batch_load --targets URL[,URL…] [--records N] [--batch N] \
     [--connections N] [--service S] [--version V] [--environment E] [--run-id ID] [--rate R]";

fn parse_args() -> Result<Args> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let mut args = Args {
        targets: Vec::new(),
        records: 300_000,
        batch: 1_000,
        connections: 6,
        service: "bench".into(),
        version: "1".into(),
        environment: "bench".into(),
        run_id: format!("load-{}-{now}", std::process::id()),
        rate: 0,
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let mut value = || raw.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--targets" => {
                args.targets = value()?
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "--records" => args.records = value()?.parse().context("--records")?,
            "--batch" => args.batch = value()?.parse().context("--batch")?,
            "--connections" => args.connections = value()?.parse().context("--connections")?,
            "--service" => args.service = value()?,
            "--version" => args.version = value()?,
            "--environment" => args.environment = value()?,
            "--run-id" => args.run_id = value()?,
            "--rate" => args.rate = value()?.parse().context("--rate")?,
            _ => bail!("unknown argument {flag}; {USAGE}"),
        }
    }
    if args.targets.is_empty() {
        bail!("--targets is required; {USAGE}");
    }
    if args.batch == 0 || args.connections == 0 {
        bail!("--batch and --connections must be at least 1");
    }
    Ok(args)
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}

fn is_error(i: u64) -> bool {
    i % 20 == 7
}

/// Records `range`, stamped now.
fn records(range: std::ops::Range<u64>) -> Vec<LogRecord> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    range
        .map(|i| {
            let error = is_error(i);
            LogRecord {
                time_unix_nano: now,
                severity_number: if error { SEVERITY_ERROR } else { SEVERITY_INFO },
                severity_text: if error { "ERROR" } else { "INFO" }.to_owned(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(format!(
                        "handled request {i} for customer c-{}",
                        i % 977
                    ))),
                }),
                attributes: vec![
                    kv("path", &format!("/api/v1/orders/{i}")),
                    int("status", if error { 500 } else { 200 }),
                    int("duration_ms", (i % 97) as i64),
                    kv("user.id", &format!("u-{}", i % 31)),
                ],
                ..LogRecord::default()
            }
        })
        .collect()
}

/// A status that sending the same batch again cannot change.
fn refused(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::InvalidArgument
            | Code::OutOfRange
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::Unimplemented
    )
}

fn channel(url: &str) -> Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("target {url}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(REQUEST_TIMEOUT)
        .connect_lazy())
}

/// Shared by the connections.
struct Work {
    args: Args,
    /// The next batch to hand out.
    next: AtomicU64,
    sent: AtomicU64,
    resent: AtomicU64,
    resource: Resource,
    /// Pause between one connection's batches, when paced.
    period: Option<Duration>,
}

impl Work {
    /// Records of batch `b`, or None once all are handed out.
    fn batch(&self, b: u64) -> Option<std::ops::Range<u64>> {
        let from = b.checked_mul(self.args.batch)?;
        let unbounded = self.args.records == 0;
        if !unbounded && from >= self.args.records {
            return None;
        }
        let mut to = from + self.args.batch;
        if !unbounded {
            to = to.min(self.args.records);
        }
        Some(from..to)
    }
}

/// One connection: takes batches until none is left; moves to the next target when
/// one fails to acknowledge.
async fn connection(work: Arc<Work>, index: usize) -> Result<()> {
    let targets = &work.args.targets;
    let mut target = index % targets.len();
    let mut client = LogsServiceClient::new(channel(&targets[target])?);
    let mut ticker = work.period.map(|period| {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    loop {
        if let Some(ticker) = &mut ticker {
            ticker.tick().await;
        }
        let b = work.next.fetch_add(1, Ordering::Relaxed);
        let Some(range) = work.batch(b) else {
            return Ok(());
        };
        let n = range.end - range.start;
        let id = MetadataValue::try_from(format!("{}-{b}", work.args.run_id))?;
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            // Built anew for each attempt: cheaper than keeping a copy for a rare retry.
            let request = logs_request(work.resource.clone(), records(range.clone()));
            let mut message = tonic::Request::new(request);
            message
                .metadata_mut()
                .insert(bellwether_proto::BATCH_ID_HEADER, id.clone());
            match client.export(message).await {
                Ok(_) => break,
                Err(status) if refused(&status) => {
                    bail!("{} refused batch {b}: {status}", targets[target]);
                }
                Err(status) => {
                    if started.elapsed() > BATCH_PATIENCE {
                        bail!("no target acknowledged batch {b} in {BATCH_PATIENCE:?}: {status}");
                    }
                    if attempt == 0 {
                        eprintln!(
                            "otlp_batch_load: {} did not take batch {b} ({:?}: {}); trying the next target",
                            targets[target],
                            status.code(),
                            status.message()
                        );
                    }
                    attempt += 1;
                    work.resent.fetch_add(1, Ordering::Relaxed);
                    target = (target + 1) % targets.len();
                    client = LogsServiceClient::new(channel(&targets[target])?);
                    // Once every target has failed it, wait a little before each round.
                    if (attempt as usize).is_multiple_of(targets.len()) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
        work.sent.fetch_add(n, Ordering::Relaxed);
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

async fn run(args: Args) -> Result<()> {
    let resource = release_resource(
        &args.service,
        &args.version,
        &args.environment,
        &format!("{}-load", args.service),
    );
    let period = (args.rate > 0).then(|| {
        Duration::from_secs_f64((args.batch * args.connections as u64) as f64 / args.rate as f64)
    });
    let connections = args.connections;
    let work = Arc::new(Work {
        args,
        next: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        resent: AtomicU64::new(0),
        resource,
        period,
    });
    let first_send = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|j| tokio::spawn(connection(Arc::clone(&work), j)))
        .collect();
    for task in tasks {
        task.await.context("a connection panicked")??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let sent = work.sent.load(Ordering::Relaxed);
    println!(
        "records={sent} batches={} resent={} seconds={seconds:.3} records_per_second={:.0} \
         first_send_unix_ms={first_send} cpu_ticks={}",
        sent.div_ceil(work.args.batch),
        work.resent.load(Ordering::Relaxed),
        sent as f64 / seconds,
        cpu_ticks()
    );
    Ok(())
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
            .block_on(run(args))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("otlp_batch_load: {e:#}");
            ExitCode::FAILURE
        }
    }
}
