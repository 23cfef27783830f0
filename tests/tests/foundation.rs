//! End-to-end: real `bellwether serve` and `bellwether-agent` processes on loopback.
//!
//! Telemetry enters the agent three ways (stdin lines, the OpenTelemetry SDK's OTLP/gRPC
//! exporter, a raw OTLP/JSON request), is tagged with the release identity, shipped to the
//! collector, and must show up there with exact counts — also after a collector restart.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use bellwether_e2e::{http_post_json, run_cli, AgentProcess, Collector, Identity};
use bellwether_testkit::eventually;
use bellwether_testkit::process::STARTUP_TIMEOUT;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{LogExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use serde_json::{json, Value};

const CHECKOUT: Identity = Identity {
    service: "checkout",
    version: "1.4.2",
    environment: "staging",
    commit: "9fceb02d0ae598e95dc970b74767f19372d61af8",
    deploy_id: "deploy-77",
};

/// Sends `logs` log records (`error_logs` of them at ERROR) and `spans` server spans
/// (`error_spans` of them failed) through the OpenTelemetry SDK's OTLP/gRPC exporters.
/// The app calls itself "legacy-name": the agent's identity must win.
async fn export_with_sdk(
    endpoint: String,
    logs: usize,
    error_logs: usize,
    spans: usize,
    error_spans: usize,
) -> Result<()> {
    // The SDK's exporters block on shutdown, so drive them off the async workers.
    tokio::task::spawn_blocking(move || -> Result<()> {
        let resource = Resource::builder().with_service_name("legacy-name").build();
        let log_exporter = LogExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()?;
        let logger_provider = SdkLoggerProvider::builder()
            .with_resource(resource.clone())
            .with_batch_exporter(log_exporter)
            .build();
        let logger = logger_provider.logger("e2e");
        for i in 0..logs {
            let mut record = logger.create_log_record();
            if i < error_logs {
                record.set_severity_number(Severity::Error);
                record.set_severity_text("ERROR");
                record.set_body(AnyValue::from(format!("charge failed for order {i}")));
            } else {
                record.set_severity_number(Severity::Info);
                record.set_severity_text("INFO");
                record.set_body(AnyValue::from(format!("order {i} placed")));
            }
            logger.emit(record);
        }
        logger_provider.shutdown()?;

        let span_exporter = SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?;
        let tracer_provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(span_exporter)
            .build();
        let tracer = tracer_provider.tracer("e2e");
        for i in 0..spans {
            let mut span = tracer
                .span_builder("POST /checkout")
                .with_kind(SpanKind::Server)
                .start(&tracer);
            if i < error_spans {
                span.set_status(Status::error("upstream timeout"));
            }
            span.end();
        }
        tracer_provider.shutdown()?;
        Ok(())
    })
    .await?
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

fn totals(release: &Value) -> (u64, u64, u64, u64) {
    let t = &release["totals"];
    let n = |k: &str| t[k].as_u64().unwrap_or(u64::MAX);
    (
        n("log_records"),
        n("error_logs"),
        n("spans"),
        n("error_spans"),
    )
}

async fn checkout_stats(collector: &Collector) -> Result<Value> {
    collector
        .get("/api/v1/releases/checkout/1.4.2/stats?environment=staging")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_tags_stdin_and_otlp_and_collector_counts_survive_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector_dir = dir.path().join("collector");
    let collector = Collector::start(&collector_dir)?;
    let mut agent = AgentProcess::start(
        &CHECKOUT,
        &collector.grpc_url(),
        &dir.path().join("agent"),
        true,
    )?;

    // 1. The OpenTelemetry SDK exporting to the agent's OTLP/gRPC receiver.
    let agent_grpc = format!("http://{}", agent.listeners["otlp-grpc"]);
    export_with_sdk(agent_grpc, 6, 2, 5, 2).await?;

    // 2. A raw OTLP/JSON request to the agent's OTLP/HTTP receiver.
    let body = json!({
        "resourceLogs": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "legacy-name"}}
            ]},
            "scopeLogs": [{
                "scope": {"name": "raw-json"},
                "logRecords": [{
                    "timeUnixNano": now_nanos().to_string(),
                    "severityNumber": 17,
                    "severityText": "ERROR",
                    "body": {"stringValue": "payment declined"},
                    "traceId": "5b8efff798038103d269b633813fc60c",
                    "spanId": "eee19b7ec3c1b174"
                }]
            }]
        }]
    });
    let url = format!("http://{}/v1/logs", agent.listeners["otlp-http"]);
    let (status, answer) = http_post_json(&url, &body).await?;
    assert_eq!(status, 200, "agent OTLP/HTTP answered {answer}");

    // 3. Log lines on stdin: JSON keeps its level, plain text is judged by its first token.
    agent.write_lines(&[
        r#"{"level":"info","msg":"cart loaded","items":3}"#,
        r#"{"level":"error","msg":"card declined","code":"do_not_honor"}"#,
        r#"{"severity":"WARN","message":"slow upstream"}"#,
        "ERROR payment gateway unreachable",
        "started worker pool with 8 threads",
    ])?;
    agent.process.close_stdin();
    let status = agent.process.wait_exit(STARTUP_TIMEOUT)?;
    assert!(
        status.success(),
        "agent exited with {status}:\n{}",
        agent.process.stderr_text()
    );

    // OTLP logs 6 (2 errors) + JSON 1 (1 error) + stdin 5 (2 errors); spans 5 (2 errors).
    let expected = (12, 5, 5, 2);
    let stats = checkout_stats(&collector).await?;
    let release = &stats["release"];
    assert_eq!(totals(release), expected, "stats: {stats:#}");
    assert_eq!(release["service"], "checkout");
    assert_eq!(release["environment"], "staging");
    assert_eq!(release["version"], "1.4.2");
    assert_eq!(release["commit"], CHECKOUT.commit);
    assert_eq!(release["deploy_id"], CHECKOUT.deploy_id);
    assert_eq!(release["source"], "detected");
    let buckets = stats["buckets"].as_array().context("buckets")?;
    let bucketed: u64 = buckets
        .iter()
        .map(|b| b["log_records"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(bucketed, 12, "buckets must add up to the totals: {stats:#}");

    // The app's own service name did not become a release of its own.
    let legacy = collector
        .get("/api/v1/releases?service=legacy-name")
        .await?;
    assert_eq!(legacy["releases"], json!([]), "{legacy:#}");

    // Restart on the same data dir: everything is still there.
    let mut collector = collector;
    let status = collector.process.terminate()?;
    assert!(status.success(), "collector exited with {status}");
    let collector = Collector::start(&collector_dir)?;
    let stats = checkout_stats(&collector).await?;
    assert_eq!(
        totals(&stats["release"]),
        expected,
        "after restart: {stats:#}"
    );
    assert_eq!(stats["release"]["commit"], CHECKOUT.commit);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_and_detected_deployments_appear_in_release_history() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = Collector::start(&dir.path().join("collector"))?;
    let url = collector.url();

    let (status, stdout, stderr) = run_cli(&[
        "deploy",
        "--service",
        "web",
        "--environment",
        "prod",
        "--version",
        "2.0.0",
        "--commit",
        "c0ffee0",
        "--deploy-id",
        "pipeline-123",
        "--notes",
        "first cut",
        "--url",
        &url,
    ])?;
    assert!(status.success(), "deploy failed: {stdout}{stderr}");
    assert!(stdout.contains("2.0.0"), "deploy output: {stdout}");

    // A version nobody announced reports in through an agent.
    let web_next = Identity {
        service: "web",
        version: "2.1.0",
        environment: "prod",
        commit: "d00dfeed",
        deploy_id: "auto-1",
    };
    let mut agent = AgentProcess::start(
        &web_next,
        &collector.grpc_url(),
        &dir.path().join("a"),
        false,
    )?;
    agent.write_lines(&["INFO serving on :8080", "ERROR template missing"])?;
    agent.process.close_stdin();
    let status = agent.process.wait_exit(STARTUP_TIMEOUT)?;
    assert!(status.success(), "{}", agent.process.stderr_text());

    let history = collector
        .get("/api/v1/releases?service=web&environment=prod")
        .await?;
    let releases = history["releases"].as_array().context("releases")?;
    let versions: Vec<&str> = releases
        .iter()
        .filter_map(|r| r["version"].as_str())
        .collect();
    assert_eq!(versions, ["2.1.0", "2.0.0"], "newest first: {history:#}");
    assert_eq!(releases[0]["source"], "detected");
    assert_eq!(releases[0]["commit"], "d00dfeed");
    assert_eq!(totals(&releases[0]), (2, 1, 0, 0));
    assert_eq!(releases[1]["source"], "recorded");
    assert_eq!(releases[1]["commit"], "c0ffee0");
    assert_eq!(releases[1]["deploy_id"], "pipeline-123");
    assert_eq!(releases[1]["notes"], "first cut");
    assert_eq!(totals(&releases[1]), (0, 0, 0, 0));

    let (status, stdout, stderr) = run_cli(&["releases", "--service", "web", "--url", &url])?;
    assert!(status.success(), "releases failed: {stderr}");
    assert!(
        stdout.contains("2.1.0") && stdout.contains("2.0.0"),
        "{stdout}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_keeps_data_until_an_unreachable_collector_comes_up() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Reserve a port, release it, and start the collector there only later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let grpc_addr = format!("127.0.0.1:{port}");
    let identity = Identity {
        service: "batch-job",
        version: "7",
        environment: "prod",
        commit: "abc",
        deploy_id: "nightly",
    };
    let mut agent = AgentProcess::start(
        &identity,
        &format!("http://{grpc_addr}"),
        &dir.path().join("agent"),
        false,
    )?;
    let lines: Vec<String> = (0..50).map(|i| format!("WARN retrying item {i}")).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    agent.write_lines(&lines)?;
    // Let the agent fail to export at least once before the collector exists.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    agent.process.close_stdin();

    let collector = Collector::start_on(&dir.path().join("collector"), &grpc_addr)?;
    let status = agent.process.wait_exit(Duration::from_secs(60))?;
    let log = agent.process.stderr_text();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("export failed, retrying"),
        "the first export must have failed against the missing collector:\n{log}"
    );
    let stats = collector
        .get("/api/v1/releases/batch-job/7/stats?environment=prod")
        .await?;
    assert_eq!(totals(&stats["release"]), (50, 0, 0, 0), "{stats:#}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_rejects_bad_input_with_clear_errors() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = Collector::start(&dir.path().join("collector"))?;

    let (status, body) = http_post_json(
        &format!("{}/api/v1/deployments", collector.url()),
        &json!({"service": "web", "environment": "prod", "version": "1", "colour": "blue"}),
    )
    .await?;
    assert_eq!(status, 400, "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("colour"),
        "error must name the field: {body}"
    );

    let (status, body) = http_post_json(
        &format!("http://{}/v1/logs", collector.otlp_http),
        &json!({"resourceLogs": "not a list"}),
    )
    .await?;
    assert_eq!(status, 400, "{body}");

    // Still serving after bad input.
    let health = eventually(Duration::from_secs(5), || async {
        Ok(Some(collector.get("/healthz").await?))
    })
    .await?;
    assert_eq!(health["status"], "ok");
    Ok(())
}

#[test]
fn agent_without_identity_exits_with_one_line_naming_the_setting() -> Result<()> {
    let mut cmd = bellwether_e2e::clean_command("bellwether-agent")?;
    let output = cmd
        .args([
            "--stdin",
            "--otlp-grpc-addr",
            "off",
            "--otlp-http-addr",
            "off",
        ])
        .args(["--admin-addr", "off"])
        .env("BELLWETHER_VERSION", "1.0.0")
        .stdin(std::process::Stdio::null())
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(
        lines[0].contains("--service") && lines[0].contains("BELLWETHER_SERVICE"),
        "{stderr}"
    );
    Ok(())
}
