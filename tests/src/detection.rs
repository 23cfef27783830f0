//! Helpers for verdict tests: a collector started with a config file (small detection
//! durations), raw OTLP log traffic with exact release identity per request, and
//! deployments recorded with an explicit start time.

use std::path::Path;
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bellwether_proto::otlp::common::{any_value, AnyValue, KeyValue};
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::resource::Resource;

use crate::{clean_command, http_post_json, Collector, Supervised};

/// OTLP severity numbers.
pub const SEVERITY_INFO: i32 = 9;
pub const SEVERITY_ERROR: i32 = 17;

/// Starts `bellwether serve --config <file>` on free loopback ports, the file holding
/// `config` (TOML) and written next to `data_dir`.
pub fn start_collector_with_config(data_dir: &Path, config: &str) -> Result<Collector> {
    start_collector_with_config_env(data_dir, config, &[])
}

/// [`start_collector_with_config`] with extra environment variables for the collector
/// (secrets that the config names with `*_env`).
pub fn start_collector_with_config_env(
    data_dir: &Path,
    config: &str,
    env: &[(&str, &str)],
) -> Result<Collector> {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "collector".to_owned());
    let config_path = data_dir.with_file_name(format!("{name}.toml"));
    std::fs::write(&config_path, config)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let mut cmd = clean_command("bellwether")?;
    cmd.envs(env.iter().copied());
    cmd.arg("serve")
        .arg("--config")
        .arg(&config_path)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--otlp-grpc-addr", "127.0.0.1:0"])
        .args(["--otlp-http-addr", "127.0.0.1:0"])
        .args(["--http-addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut process = Supervised::spawn(cmd)?;
    let found = process.wait_for_listeners(&["otlp-grpc", "otlp-http", "http"])?;
    Ok(Collector {
        otlp_grpc: found["otlp-grpc"],
        otlp_http: found["otlp-http"],
        http: found["http"],
        process,
    })
}

/// The collector's count buckets (its `store::BUCKET_MS`).
const BUCKET_MS: i64 = 10_000;

/// Now, rounded down to the start of the collector's 10 s bucket. A baseline laid out
/// back from it fills each of its buckets whole, so its dispersion, and with it the
/// exposure a verdict needs, no longer depend on where in a bucket the test started
/// (from some starting points a baseline's first bucket held a sliver of traffic and
/// one error, which tripled the exposure needed).
pub fn bucket_aligned_now_ms() -> i64 {
    now_ms() / BUCKET_MS * BUCKET_MS
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A string attribute.
pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

/// The resource of one instance of one release.
pub fn release_resource(
    service: &str,
    version: &str,
    environment: &str,
    instance: &str,
) -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", service),
            kv("service.version", version),
            kv("deployment.environment.name", environment),
            kv("service.instance.id", instance),
        ],
        ..Resource::default()
    }
}

/// A log record at `unix_ms`; an error when `severity` is [`SEVERITY_ERROR`], with
/// `exception` = (type, message) as attributes when given.
pub fn log_record(
    body: &str,
    severity: i32,
    exception: Option<(&str, &str)>,
    unix_ms: i64,
) -> LogRecord {
    let mut attributes = Vec::new();
    if let Some((kind, message)) = exception {
        attributes.push(kv("exception.type", kind));
        attributes.push(kv("exception.message", message));
    }
    LogRecord {
        time_unix_nano: u64::try_from(unix_ms).unwrap_or(0) * 1_000_000,
        severity_number: severity,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.to_owned())),
        }),
        attributes,
        ..LogRecord::default()
    }
}

/// Sends `records` under `resource` over OTLP/gRPC, in requests of at most 2 000.
pub async fn export_logs(
    grpc_url: &str,
    resource: &Resource,
    records: Vec<LogRecord>,
) -> Result<()> {
    let mut client = LogsServiceClient::connect(grpc_url.to_owned()).await?;
    for chunk in records.chunks(2_000) {
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(resource.clone()),
                scope_logs: vec![ScopeLogs {
                    log_records: chunk.to_vec(),
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        };
        client.export(request).await?;
    }
    Ok(())
}

/// Records a deployment that started at `started_at_unix_ms`.
pub async fn record_deployment(
    collector: &Collector,
    service: &str,
    environment: &str,
    version: &str,
    started_at_unix_ms: i64,
) -> Result<()> {
    let body = serde_json::json!({
        "service": service,
        "environment": environment,
        "version": version,
        "started_at_unix_ms": started_at_unix_ms,
    });
    let (status, answer) =
        http_post_json(&format!("{}/api/v1/deployments", collector.url()), &body).await?;
    if status != 201 {
        bail!("recording {service} {version} answered {status}: {answer}");
    }
    Ok(())
}
