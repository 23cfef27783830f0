//! Load generator (not a test): runs the real `bellwether serve` binary, sends N agents'
//! worth of OTLP/gRPC log traffic across many services and releases while a pipeline polls
//! release health, then prints throughput, health-API latency, the collector's peak RSS
//! and data-dir growth.
//!
//! ```text
//! cargo build --release -p bellwether-collector
//! cargo run --release -p bellwether-collector --example loadgen -- \
//!     [--bin target/release/bellwether] [--agents 16] [--services 50] [--versions 4] \
//!     [--batch 1000] [--seconds 20] [--error-percent 1] [--rate 0]
//! ```
//!
//! `--rate R` paces all agents together to R records/s (0: as fast as the collector takes
//! them); run once unpaced to find the maximum, then at 80 % of it for the latency figures.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bellwether_proto::otlp::common::{any_value, AnyValue, KeyValue};
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::resource::Resource;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::codec::CompressionEncoding;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Args {
    bin: PathBuf,
    agents: usize,
    services: usize,
    versions: usize,
    batch: usize,
    seconds: u64,
    error_percent: usize,
    rate: u64,
}

fn args() -> Result<Args> {
    let mut args = Args {
        bin: PathBuf::from("target/release/bellwether"),
        agents: 16,
        services: 50,
        versions: 4,
        batch: 1000,
        seconds: 20,
        error_percent: 1,
        rate: 0,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    for pair in raw.chunks(2) {
        let (flag, value) = match pair {
            [flag, value] => (flag.as_str(), value.as_str()),
            _ => return Err(format!("expected --flag VALUE pairs, got {raw:?}").into()),
        };
        match flag {
            "--bin" => args.bin = PathBuf::from(value),
            "--agents" => args.agents = value.parse()?,
            "--services" => args.services = value.parse()?,
            "--versions" => args.versions = value.parse()?,
            "--batch" => args.batch = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            "--error-percent" => args.error_percent = value.parse()?,
            "--rate" => args.rate = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(args)
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn request(
    service: &str,
    version: &str,
    agent: usize,
    n: usize,
    errors: usize,
) -> ExportLogsServiceRequest {
    let now = now_ns();
    let records = (0..n)
        .map(|i| LogRecord {
            time_unix_nano: now,
            severity_number: if i < errors { 17 } else { 9 },
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(if i < errors {
                    format!("payment {i} failed: upstream timeout")
                } else {
                    format!("GET /api/orders/{i} 200")
                })),
            }),
            trace_id: vec![(i % 251) as u8 + 1; 16],
            ..LogRecord::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", service),
                    kv("service.version", version),
                    kv("deployment.environment.name", "prod"),
                    kv("service.instance.id", &format!("agent-{agent}")),
                ],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// `VmHWM` (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut child = tokio::process::Command::new(&args.bin)
        .args([
            "serve",
            "--otlp-grpc-addr",
            "127.0.0.1:0",
            "--otlp-http-addr",
        ])
        .args(["127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "info")
        .env_remove("BELLWETHER_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            format!(
                "starting {}: {e} (build it with cargo build --release)",
                args.bin.display()
            )
        })?;
    let pid = child.id().ok_or("collector exited")?;
    let mut lines = BufReader::new(child.stderr.take().ok_or("no stderr")?).lines();
    let mut addrs = HashMap::new();
    while addrs.len() < 3 {
        let line = lines
            .next_line()
            .await?
            .ok_or("collector exited before listening")?;
        if let Some(rest) = line.split("listening kind=").nth(1) {
            let mut parts = rest.split(" addr=");
            if let (Some(kind), Some(addr)) = (parts.next(), parts.next()) {
                addrs.insert(kind.to_owned(), addr.trim().to_owned());
            }
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let grpc = format!("http://{}", addrs["otlp-grpc"]);
    let http = addrs["http"].clone();
    let start_bytes = dir_bytes(&data);

    let stop = Arc::new(AtomicBool::new(false));
    let records = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let mut agents = Vec::new();
    for agent in 0..args.agents {
        let (stop, records, failures, grpc) = (
            stop.clone(),
            records.clone(),
            failures.clone(),
            grpc.clone(),
        );
        let (services, versions, batch) = (args.services, args.versions, args.batch);
        let errors = batch * args.error_percent / 100;
        // Each agent's share of the rate, as a pause between its batches.
        let period = (args.rate > 0)
            .then(|| Duration::from_secs_f64(batch as f64 * args.agents as f64 / args.rate as f64));
        agents.push(tokio::spawn(async move {
            let mut client = LogsServiceClient::connect(grpc)
                .await?
                .send_compressed(CompressionEncoding::Gzip);
            let mut sequence = 0u64;
            let mut ticker = period.map(tokio::time::interval);
            while !stop.load(Ordering::Relaxed) {
                if let Some(ticker) = &mut ticker {
                    ticker.tick().await;
                }
                let n = agent * 7919 + sequence as usize;
                let service = format!("svc-{}", n % services);
                let version = format!("v{}", (n / services) % versions);
                let mut req =
                    tonic::Request::new(request(&service, &version, agent, batch, errors));
                if let Ok(id) = format!("agent-{agent}:boot:{sequence}").parse() {
                    req.metadata_mut()
                        .insert(bellwether_proto::BATCH_ID_HEADER, id);
                }
                match client.export(req).await {
                    Ok(_) => records.fetch_add(batch as u64, Ordering::Relaxed),
                    Err(_) => failures.fetch_add(1, Ordering::Relaxed),
                };
                sequence += 1;
            }
            Ok::<_, tonic::transport::Error>(())
        }));
    }

    // A pipeline polling release health, as `bellwether gate` does.
    let poller = {
        let (stop, http, services) = (stop.clone(), http.clone(), args.services);
        tokio::spawn(async move {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<Full<Bytes>>();
            let mut latencies = Vec::new();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let uri = format!(
                    "http://{http}/api/v1/releases/svc-{}/v0/health?environment=prod",
                    i % services
                );
                let started = Instant::now();
                let ok = match http::Request::get(uri).body(Full::new(Bytes::new())) {
                    Ok(request) => match client.request(request).await {
                        Ok(response) => response.into_body().collect().await.is_ok(),
                        Err(_) => false,
                    },
                    Err(_) => false,
                };
                if ok {
                    latencies.push(started.elapsed());
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            latencies
        })
    };

    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for agent in agents {
        agent.await??;
    }
    let elapsed = started.elapsed();
    let mut latencies = poller.await?;
    latencies.sort();
    let total = records.load(Ordering::Relaxed);
    let peak = peak_rss_kib(pid).unwrap_or(0);
    let grown = dir_bytes(&data).saturating_sub(start_bytes);
    child.start_kill()?;
    let _ = child.wait().await;

    let per_million = if total == 0 {
        0.0
    } else {
        grown as f64 / total as f64 * 1e6 / (1024.0 * 1024.0)
    };
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| agents × batch | {} × {} log records (gzip, batch ids) |",
        args.agents, args.batch
    );
    println!(
        "| releases | {} services × {} versions |",
        args.services, args.versions
    );
    let target = if args.rate > 0 {
        format!("{} records/s", args.rate)
    } else {
        "unpaced".to_owned()
    };
    println!("| target rate | {target} |");
    println!(
        "| records ingested | {total} in {:.1} s |",
        elapsed.as_secs_f64()
    );
    println!(
        "| ingest rate | {:.0} records/s |",
        total as f64 / elapsed.as_secs_f64()
    );
    println!("| failed exports | {} |", failures.load(Ordering::Relaxed));
    println!(
        "| health API latency | p50 {:.1} ms, p99 {:.1} ms ({} polls) |",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.len()
    );
    println!("| collector peak RSS | {:.0} MiB |", peak as f64 / 1024.0);
    println!(
        "| data dir growth | {:.1} MiB ({per_million:.1} MiB per million records) |",
        grown as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}
