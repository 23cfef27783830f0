//! OTLP requests as an instrumented service sends them: a resource carrying the release
//! identity (`service.name`, `service.version`, `deployment.environment.name`, and
//! `service.instance.id` for one instance), log records with severity and exception
//! attributes, server spans that took a given time, and whole logs or trace requests.

use anyhow::{Context, Result};
use bellwether_proto::otlp::common::{any_value, AnyValue, KeyValue};
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::resource::Resource;
use bellwether_proto::otlp::trace::span::SpanKind;
use bellwether_proto::otlp::trace::{status, ResourceSpans, ScopeSpans, Span, Status};
use bellwether_proto::otlp::trace_service::trace_service_client::TraceServiceClient;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;

/// OTLP severity numbers.
pub const SEVERITY_INFO: i32 = 9;
pub const SEVERITY_ERROR: i32 = 17;

/// Log records per request in [`export_logs`].
const EXPORT_CHUNK: usize = 2_000;

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

/// The resource of a release, plus `extra` string attributes.
pub fn resource(
    service: &str,
    version: &str,
    environment: &str,
    extra: &[(&str, &str)],
) -> Resource {
    let mut attributes = vec![
        kv("service.name", service),
        kv("service.version", version),
        kv("deployment.environment.name", environment),
    ];
    attributes.extend(extra.iter().map(|(k, v)| kv(k, v)));
    Resource {
        attributes,
        ..Resource::default()
    }
}

/// The resource of one instance of one release.
pub fn release_resource(
    service: &str,
    version: &str,
    environment: &str,
    instance: &str,
) -> Resource {
    resource(
        service,
        version,
        environment,
        &[("service.instance.id", instance)],
    )
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

/// One logs request: `records` under `resource`, in one scope.
pub fn logs_request(resource: Resource, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
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

/// `total` log records without a body, of which the first `errors` have severity ERROR.
pub fn logs(
    resource: Resource,
    total: usize,
    errors: usize,
    time_ns: u64,
) -> ExportLogsServiceRequest {
    let records = (0..total)
        .map(|i| LogRecord {
            time_unix_nano: time_ns,
            severity_number: if i < errors {
                SEVERITY_ERROR
            } else {
                SEVERITY_INFO
            },
            ..LogRecord::default()
        })
        .collect();
    logs_request(resource, records)
}

/// One request served: a root server span ending at `end_unix_ms` that took
/// `duration_ms`, failed or not. `n` makes its trace and span ids unique.
pub fn server_span(n: u64, end_unix_ms: i64, duration_ms: f64, failed: bool) -> Span {
    let end_ns = u64::try_from(end_unix_ms).unwrap_or(0) * 1_000_000;
    let duration_ns = (duration_ms * 1e6) as u64;
    Span {
        trace_id: [n.to_be_bytes(), [1; 8]].concat(),
        span_id: n.to_be_bytes().to_vec(),
        name: "GET /checkout".to_owned(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: end_ns.saturating_sub(duration_ns),
        end_time_unix_nano: end_ns,
        status: Some(Status {
            code: if failed {
                status::StatusCode::Error as i32
            } else {
                status::StatusCode::Ok as i32
            },
            ..Status::default()
        }),
        ..Span::default()
    }
}

/// `total` spans ending at `time_ns` after 1 ms, of which the first `errors` have status
/// ERROR (all under one trace and span id).
pub fn spans(
    resource: Resource,
    total: usize,
    errors: usize,
    time_ns: u64,
) -> ExportTraceServiceRequest {
    let spans = (0..total)
        .map(|i| Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            start_time_unix_nano: time_ns.saturating_sub(1_000_000),
            end_time_unix_nano: time_ns,
            status: Some(Status {
                code: if i < errors {
                    status::StatusCode::Error as i32
                } else {
                    status::StatusCode::Ok as i32
                },
                ..Status::default()
            }),
            ..Span::default()
        })
        .collect();
    spans_request(resource, spans)
}

/// A call made while serving request `n`: a CLIENT span, child of that request's
/// [`server_span`], that took `duration_ms`, with `attributes` naming what it called
/// (`peer.service`, ...).
pub fn client_span(
    n: u64,
    call: u8,
    end_unix_ms: i64,
    duration_ms: f64,
    attributes: &[(&str, &str)],
    failed: bool,
) -> Span {
    let mut span = server_span(n, end_unix_ms, duration_ms, failed);
    span.parent_span_id = std::mem::take(&mut span.span_id);
    span.span_id = [&n.to_be_bytes()[1..], &[call]].concat();
    span.name = "call".to_owned();
    span.kind = SpanKind::Client as i32;
    span.attributes = attributes.iter().map(|(k, v)| kv(k, v)).collect();
    span
}

/// A trace export of `spans` under `resource`.
pub fn spans_request(resource: Resource, spans: Vec<Span>) -> ExportTraceServiceRequest {
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

/// Sends `spans` under `resource` over OTLP/gRPC to `grpc_url`, in requests of at most
/// 2 000.
pub async fn export_spans(grpc_url: &str, resource: &Resource, spans: Vec<Span>) -> Result<()> {
    let mut client = TraceServiceClient::connect(grpc_url.to_owned())
        .await
        .with_context(|| format!("connecting to {grpc_url}"))?;
    for chunk in spans.chunks(EXPORT_CHUNK) {
        client
            .export(spans_request(resource.clone(), chunk.to_vec()))
            .await?;
    }
    Ok(())
}

/// Sends `records` under `resource` over OTLP/gRPC to `grpc_url` (`http://host:port`),
/// in requests of at most 2 000.
pub async fn export_logs(
    grpc_url: &str,
    resource: &Resource,
    records: Vec<LogRecord>,
) -> Result<()> {
    let mut client = LogsServiceClient::connect(grpc_url.to_owned())
        .await
        .with_context(|| format!("connecting to {grpc_url}"))?;
    for chunk in records.chunks(EXPORT_CHUNK) {
        client
            .export(logs_request(resource.clone(), chunk.to_vec()))
            .await?;
    }
    Ok(())
}
