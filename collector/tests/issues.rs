//! Errors → fingerprints → issues end to end: OTLP/gRPC in (logs with Java and Python
//! stack traces, spans with exception events), the issues API out, across releases and a
//! restart.

mod common;

use bellwether_proto::otlp::common::{any_value, AnyValue};
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::resource::Resource;
use bellwether_proto::otlp::trace::span::{Event, SpanKind};
use bellwether_proto::otlp::trace::{status, ResourceSpans, ScopeSpans, Span, Status};
use bellwether_proto::otlp::trace_service::trace_service_client::TraceServiceClient;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;
use common::*;
use serde_json::{json, Value};
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

const MINUTE_NS: u64 = 60 * 1_000_000_000;

fn fixture(name: &str) -> Result<String, std::io::Error> {
    let path = format!(
        "{}/../stacktrace/tests/fixtures/stacktraces/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path)
}

fn instance_resource(version: &str, instance: &str) -> Resource {
    resource(
        "shop",
        version,
        "prod",
        &[("service.instance.id", instance)],
    )
}

fn error_log(body: &str, trace: u8, time_ns: u64) -> LogRecord {
    LogRecord {
        time_unix_nano: time_ns,
        severity_number: 17,
        severity_text: "ERROR".into(),
        trace_id: vec![trace; 16],
        span_id: vec![trace; 8],
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.into())),
        }),
        ..LogRecord::default()
    }
}

fn log_request(resource: Resource, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

/// A failed server span of trace `trace` with an `exception` event carrying `stack`.
fn exception_span(stack: &str, trace: u8, time_ns: u64) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![0xab; 8],
        kind: SpanKind::Server as i32,
        name: "POST /checkout".into(),
        start_time_unix_nano: time_ns - 40_000_000,
        end_time_unix_nano: time_ns,
        status: Some(Status {
            code: status::StatusCode::Error as i32,
            message: "checkout failed".into(),
        }),
        events: vec![Event {
            name: "exception".into(),
            time_unix_nano: time_ns,
            attributes: vec![kv("exception.stacktrace", stack)],
            ..Event::default()
        }],
        ..Span::default()
    }
}

fn span_request(resource: Resource, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

struct Clients {
    logs: LogsServiceClient<Channel>,
    traces: TraceServiceClient<Channel>,
}

impl Clients {
    async fn connect(
        server: &TestServer,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let channel = tonic::transport::Endpoint::from_shared(server.grpc_url())?
            .connect()
            .await?;
        Ok(Self {
            logs: LogsServiceClient::new(channel.clone())
                .send_compressed(CompressionEncoding::Gzip),
            traces: TraceServiceClient::new(channel).send_compressed(CompressionEncoding::Gzip),
        })
    }
}

async fn deploy(server: &TestServer, version: &str, started_ns: u64) -> TestResult {
    let body = json!({
        "service": "shop",
        "environment": "prod",
        "version": version,
        "started_at_unix_ms": started_ns / 1_000_000,
    });
    let response = post_json(server.http, "/api/v1/deployments", &body).await?;
    assert_eq!(response.status, 201, "{}", response.text());
    Ok(())
}

async fn issues(
    server: &TestServer,
    version: &str,
) -> Result<Vec<Value>, Box<dyn std::error::Error + Send + Sync>> {
    let path = format!("/api/v1/releases/shop/{version}/issues?environment=prod");
    let response = get(server.http, &path).await?;
    assert_eq!(response.status, 200, "{}", response.text());
    let json = response.json();
    assert_eq!(
        json["release"],
        json!({"service": "shop", "environment": "prod", "version": version})
    );
    Ok(json["issues"].as_array().cloned().unwrap_or_default())
}

fn by_type<'a>(issues: &'a [Value], exception_type: &str) -> Option<&'a Value> {
    issues
        .iter()
        .find(|i| i["exception_type"] == exception_type)
}

fn summary(issues: &[Value]) -> Vec<(String, String, u64)> {
    issues
        .iter()
        .map(|i| {
            (
                i["exception_type"].as_str().unwrap_or("").to_owned(),
                i["status"].as_str().unwrap_or("").to_owned(),
                i["count"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test]
async fn issues_are_fingerprinted_classified_and_survive_a_restart() -> TestResult {
    let java = fixture("java-uncaught.txt")?;
    let python = fixture("python-uncaught.txt")?;
    let java_log = fixture("java-spring.log")?;
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let mut clients = Clients::connect(&server).await?;
    let now = now_ns();

    // v1, deployed 50 minutes ago: the Java NPE (span event) and the Python error (log).
    deploy(&server, "1", now - 50 * MINUTE_NS).await?;
    let t1 = now - 45 * MINUTE_NS;
    clients
        .traces
        .export(span_request(
            instance_resource("1", "pod-1"),
            vec![exception_span(&java, 1, t1)],
        ))
        .await?;
    clients
        .logs
        .export(log_request(
            instance_resource("1", "pod-1"),
            vec![error_log(&python, 2, t1)],
        ))
        .await?;

    // v2, 30 minutes ago: only the Python error.
    deploy(&server, "2", now - 30 * MINUTE_NS).await?;
    let t2 = now - 25 * MINUTE_NS;
    clients
        .logs
        .export(log_request(
            instance_resource("2", "pod-1"),
            vec![error_log(&python, 3, t2)],
        ))
        .await?;

    // v3, 10 minutes ago: the Java NPE is back (regressed), the Python error stays
    // (existing), and a Spring log's PaymentException is new.
    deploy(&server, "3", now - 10 * MINUTE_NS).await?;
    let t3 = now - 5 * MINUTE_NS;
    let spring_error = java_log
        .split("\n2026")
        .find(|chunk| chunk.contains("PaymentException"))
        .map(|chunk| format!("2026{chunk}"))
        .ok_or("no PaymentException in java-spring.log")?;
    clients
        .traces
        .export(span_request(
            instance_resource("3", "pod-1"),
            vec![
                exception_span(&java, 10, t3),
                exception_span(&java, 10, t3), // a retry within the same trace
                exception_span(&java, 11, t3),
            ],
        ))
        .await?;
    for (instance, trace) in [("pod-1", 20u8), ("pod-2", 21), ("pod-2", 22)] {
        clients
            .logs
            .export(log_request(
                instance_resource("3", instance),
                vec![error_log(&spring_error, trace, t3)],
            ))
            .await?;
    }
    // The same trace again in a later batch does not count either.
    clients
        .logs
        .export(log_request(
            instance_resource("3", "pod-2"),
            vec![error_log(&spring_error, 22, t3), error_log(&python, 30, t3)],
        ))
        .await?;

    let v3 = issues(&server, "3").await?;
    assert_eq!(
        summary(&v3),
        [
            (
                "com.shop.Checkout$PaymentException".to_owned(),
                "new".to_owned(),
                3
            ),
            (
                "java.lang.NullPointerException".to_owned(),
                "regressed".to_owned(),
                2
            ),
            (
                "shop.payments.PaymentError".to_owned(),
                "existing".to_owned(),
                1
            ),
        ]
    );
    let payment = by_type(&v3, "com.shop.Checkout$PaymentException").ok_or("payment")?;
    assert_eq!(
        payment["title"],
        "com.shop.Checkout$PaymentException: charge failed for order <int>"
    );
    assert_eq!(payment["instances"], 2);
    assert_eq!(payment["instance_ids"], json!(["pod-1", "pod-2"]));
    assert_eq!(payment["first_seen"]["version"], "3");
    let samples = payment["samples"].as_array().cloned().unwrap_or_default();
    assert_eq!(samples.len(), 3);
    assert_eq!(samples[0]["trace_id"], "14".repeat(16));
    assert_eq!(samples[0]["message"], "charge failed for order 981273");
    assert!(samples[0]["stack"]
        .as_str()
        .is_some_and(|s| s.contains("at com.shop.Checkout.charge")));

    let npe = by_type(&v3, "java.lang.NullPointerException").ok_or("npe")?;
    assert_eq!(npe["first_seen"]["version"], "1");
    assert!(npe["title"]
        .as_str()
        .is_some_and(|t| t.starts_with("java.lang.NullPointerException: Cannot invoke")));
    let npe_traces: Vec<&str> = npe["samples"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["trace_id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(npe_traces, ["0a".repeat(16), "0b".repeat(16)]);
    assert_eq!(npe["samples"][0]["span_id"], "ab".repeat(8));
    assert_eq!(npe["samples"][0]["stack"], java.trim());

    // The same fingerprints stand in every release: one NPE issue in v1 and v3.
    let v1 = issues(&server, "1").await?;
    assert_eq!(
        by_type(&v1, "java.lang.NullPointerException").map(|i| &i["fingerprint"]),
        Some(&npe["fingerprint"])
    );
    assert!(v1.iter().all(|i| i["status"] == "new"), "{v1:?}");

    // Counts: raw error spans and logs vs de-duplicated errors; server spans.
    let stats = get(
        server.http,
        "/api/v1/releases/shop/3/stats?environment=prod",
    )
    .await?;
    let totals = &stats.json()["release"]["totals"];
    assert_eq!(totals["error_spans"], 3);
    assert_eq!(totals["error_logs"], 5);
    assert_eq!(totals["errors"], 2 + 3 + 1);
    assert_eq!(totals["server_spans"], 3);

    // A restart keeps everything.
    server.stop().await?;
    let server = TestServer::start(dir.path()).await?;
    assert_eq!(issues(&server, "3").await?, v3);

    // v4 ships without the NPE; then v1 is deployed again and its NPE comes back: seen
    // before, absent from the previous release (v4) → regressed.
    let mut clients = Clients::connect(&server).await?;
    deploy(&server, "4", now - 3 * MINUTE_NS).await?;
    clients
        .logs
        .export(log_request(
            instance_resource("4", "pod-1"),
            vec![error_log("all good, just noisy", 40, now - 2 * MINUTE_NS)],
        ))
        .await?;
    deploy(&server, "1", now - MINUTE_NS).await?;
    clients
        .traces
        .export(span_request(
            instance_resource("1", "pod-3"),
            vec![exception_span(&java, 50, now)],
        ))
        .await?;
    let redeployed = issues(&server, "1").await?;
    let npe_again = by_type(&redeployed, "java.lang.NullPointerException").ok_or("npe")?;
    assert_eq!(npe_again["status"], "regressed");
    assert_eq!(npe_again["count"], 2);
    // The Python error of v1 did not come back with the re-deploy.
    let python_old = by_type(&redeployed, "shop.payments.PaymentError").ok_or("python")?;
    assert_eq!(python_old["status"], "existing");

    // Unknown releases and ambiguous environments answer like the stats endpoint.
    let missing = get(server.http, "/api/v1/releases/shop/9/issues").await?;
    assert_eq!(missing.status, 404);
    server.stop().await?;
    Ok(())
}
