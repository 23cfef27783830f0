//! Helpers for tests that operate an agent like production does: custom flags, OTLP
//! requests with known records, `kill -9`, restarts on the same data directory, and its
//! `/metrics` and `/readyz` endpoints.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, Result};
use bellwether_proto::otlp::common::{any_value::Value, AnyValue};
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_testkit::http;
use bellwether_testkit::process::Supervised;
use prost::Message;

use crate::{clean_command, AgentProcess, Identity};

/// Starts an agent with its OTLP receivers and admin endpoint on free ports, no stdin,
/// exporting to `collector_url`, plus `extra` flags.
pub fn start_agent(
    identity: &Identity,
    collector_url: &str,
    data_dir: &Path,
    extra: &[&str],
) -> Result<AgentProcess> {
    let mut cmd = clean_command("bellwether-agent")?;
    cmd.env("BELLWETHER_SERVICE", identity.service)
        .env("BELLWETHER_VERSION", identity.version)
        .env("BELLWETHER_ENVIRONMENT", identity.environment)
        .env("BELLWETHER_COMMIT", identity.commit)
        .env("BELLWETHER_DEPLOY_ID", identity.deploy_id)
        .env("BELLWETHER_INSTANCE_ID", "e2e-instance-1")
        .args(["--collector", collector_url])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--admin-addr", "127.0.0.1:0"])
        .args(["--otlp-grpc-addr", "127.0.0.1:0"])
        .args(["--otlp-http-addr", "127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut process = Supervised::spawn(cmd)?;
    let listeners = process.wait_for_listeners(&["otlp-grpc", "otlp-http", "admin"])?;
    Ok(AgentProcess { process, listeners })
}

/// Kills the agent with SIGKILL (no shutdown sequence at all) and waits for it to be gone.
pub fn kill_9(agent: AgentProcess) {
    // Dropping a supervised child sends SIGKILL and reaps it.
    drop(agent);
}

/// An OTLP logs request with `records` records whose bodies are `<tag>-<i>` padded to
/// `body_bytes`.
pub fn logs_request(tag: &str, records: usize, body_bytes: usize) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: (0..records)
                    .map(|i| {
                        let mut body = format!("INFO {tag}-{i} ");
                        if body.len() < body_bytes {
                            body.push_str(&"x".repeat(body_bytes - body.len()));
                        }
                        LogRecord {
                            severity_number: 9,
                            body: Some(AnyValue {
                                value: Some(Value::StringValue(body)),
                            }),
                            ..LogRecord::default()
                        }
                    })
                    .collect(),
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

/// POSTs a protobuf OTLP logs request to the agent's HTTP receiver; the HTTP status, or
/// an error when no answer came (connection refused or reset, as when the agent dies).
pub async fn post_logs(otlp_http: SocketAddr, request: &ExportLogsServiceRequest) -> Result<u16> {
    let response = http::request(
        "POST",
        &format!("http://{otlp_http}/v1/logs"),
        &[("content-type", "application/x-protobuf")],
        request.encode_to_vec(),
    )
    .await?;
    Ok(response.status)
}

/// `GET url` → (status, body text).
pub async fn http_get_text(url: &str) -> Result<(u16, String)> {
    let response = http::get(url).await?;
    Ok((response.status, response.text()))
}

/// The agent's `/metrics`, as `series → value` where series is the name with its labels
/// exactly as rendered (e.g. `bellwether_agent_records_dropped_total{reason="corrupt"}`).
pub async fn agent_metrics(agent: &AgentProcess) -> Result<HashMap<String, f64>> {
    let admin = agent
        .listeners
        .get("admin")
        .context("agent has no admin listener")?;
    let (status, text) = http_get_text(&format!("http://{admin}/metrics")).await?;
    anyhow::ensure!(status == 200, "/metrics answered {status}: {text}");
    Ok(parse_metrics(&text))
}

/// Parses Prometheus text format samples.
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Sum of every series of the metric `name` (any labels).
pub fn metric_sum(metrics: &HashMap<String, f64>, name: &str) -> f64 {
    metrics
        .iter()
        .filter(|(series, _)| {
            series.as_str() == name
                || series
                    .strip_prefix(name)
                    .is_some_and(|r| r.starts_with('{'))
        })
        .map(|(_, v)| v)
        .sum()
}
