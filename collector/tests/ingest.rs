//! OTLP ingest end to end over loopback: gRPC and HTTP in, HTTP API out.

mod common;

use std::io::Write;
use std::marker::PhantomData;

use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_proto::otlp::logs_service::ExportLogsServiceResponse;
use bellwether_proto::otlp::trace_service::trace_service_client::TraceServiceClient;
use bytes::{Buf, BufMut, Bytes};
use common::*;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};

fn with_batch_id<T>(
    message: T,
    id: &str,
) -> Result<tonic::Request<T>, Box<dyn std::error::Error + Send + Sync>> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(bellwether_proto::BATCH_ID_HEADER, id.parse()?);
    Ok(request)
}

#[tokio::test]
async fn grpc_logs_and_spans_are_counted_per_bucket() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let channel = tonic::transport::Endpoint::from_shared(server.grpc_url())?
        .connect()
        .await?;
    let mut logs_client =
        LogsServiceClient::new(channel.clone()).send_compressed(CompressionEncoding::Gzip);
    let mut trace_client =
        TraceServiceClient::new(channel).send_compressed(CompressionEncoding::Gzip);

    let now = now_ns();
    let res = resource("checkout", "1.4.2", "production", &[]);
    let answer = logs_client
        .export(with_batch_id(logs(res.clone(), 10, 3, now), "i-1:boot:1")?)
        .await?
        .into_inner();
    assert_eq!(answer, ExportLogsServiceResponse::default());
    // A record 20 s older lands in an earlier bucket.
    logs_client
        .export(logs(res.clone(), 2, 0, now - 20_000_000_000))
        .await?;
    trace_client
        .export(with_batch_id(spans(res, 5, 2, now), "i-1:boot:2")?)
        .await?;

    let entry = release_entry(server.http, "checkout", "1.4.2").await?;
    assert_eq!(entry["environment"], "production");
    assert_eq!(entry["source"], "detected");
    assert_eq!(entry["totals"]["log_records"], 12);
    assert_eq!(entry["totals"]["error_logs"], 3);
    assert_eq!(entry["totals"]["spans"], 5);
    assert_eq!(entry["totals"]["error_spans"], 2);

    let stats = get(server.http, "/api/v1/releases/checkout/1.4.2/stats").await?;
    assert_eq!(stats.status, 200, "{}", stats.text());
    let stats = stats.json();
    assert_eq!(stats["bucket_seconds"], 10);
    assert_eq!(stats["release"]["totals"]["log_records"], 12);
    let buckets = stats["buckets"].as_array().cloned().unwrap_or_default();
    assert!(buckets.len() >= 2, "{stats}");
    let starts: Vec<i64> = buckets
        .iter()
        .filter_map(|b| b["start_unix_ms"].as_i64())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {starts:?}"
    );
    assert!(
        starts.iter().all(|s| s % 10_000 == 0),
        "aligned: {starts:?}"
    );
    let last = &buckets[buckets.len() - 1];
    assert_eq!(last["log_records"], 10);
    assert_eq!(last["error_logs"], 3);
    assert_eq!(last["spans"], 5);
    assert_eq!(buckets[0]["log_records"], 2);

    server.stop().await
}

#[tokio::test]
async fn a_repeated_batch_id_is_counted_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let mut client = LogsServiceClient::connect(server.grpc_url()).await?;
    let request = logs(resource("api", "7", "prod", &[]), 4, 1, now_ns());
    for _ in 0..3 {
        client
            .export(with_batch_id(request.clone(), "agent-a:1:42")?)
            .await?;
    }
    // Over HTTP with the same id: also a no-op.
    let response = request_bytes(
        &server,
        "/v1/logs",
        "application/x-protobuf",
        Some("agent-a:1:42"),
        request.encode_to_vec(),
        false,
    )
    .await?;
    assert_eq!(response.status, 200, "{}", response.text());
    let entry = release_entry(server.http, "api", "7").await?;
    assert_eq!(entry["totals"]["log_records"], 4);

    client
        .export(with_batch_id(request, "agent-a:1:43")?)
        .await?;
    let entry = release_entry(server.http, "api", "7").await?;
    assert_eq!(entry["totals"]["log_records"], 8);
    assert_eq!(entry["totals"]["error_logs"], 2);
    server.stop().await
}

async fn request_bytes(
    server: &TestServer,
    path: &str,
    content_type: &str,
    batch_id: Option<&str>,
    body: Vec<u8>,
    gzip: bool,
) -> Result<HttpResponse, Box<dyn std::error::Error + Send + Sync>> {
    let mut headers = vec![("content-type", content_type)];
    if let Some(id) = batch_id {
        headers.push((bellwether_proto::BATCH_ID_HEADER, id));
    }
    let body = if gzip {
        headers.push(("content-encoding", "gzip"));
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&body)?;
        encoder.finish()?
    } else {
        body
    };
    request("POST", server.otlp_http, path, &headers, body).await
}

#[tokio::test]
async fn otlp_json_over_http_is_accepted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let now = now_ns();
    // Shaped as the OTLP/JSON spec shows it: camelCase keys, 64-bit ints as strings,
    // hex trace/span ids, enums as integers.
    let logs_body = serde_json::json!({
        "resourceLogs": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "web"}},
                {"key": "service.version", "value": {"stringValue": "2.0.0"}},
                {"key": "deployment.environment", "value": {"stringValue": "staging"}},
                {"key": "service.instance.id", "value": {"intValue": "7"}}
            ]},
            "scopeLogs": [{
                "scope": {"name": "app", "version": "1"},
                "logRecords": [
                    {"timeUnixNano": now.to_string(), "observedTimeUnixNano": now.to_string(),
                     "severityNumber": 17, "severityText": "ERROR",
                     "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                     "body": {"stringValue": "payment failed"},
                     "attributes": [{"key": "retries", "value": {"intValue": 3}}]},
                    {"timeUnixNano": now.to_string(), "severityNumber": 9, "severityText": "INFO",
                     "body": {"stringValue": "ok"}},
                    {"observedTimeUnixNano": now.to_string(), "severityText": "fatal"}
                ]
            }]
        }]
    });
    let response = request_bytes(
        &server,
        "/v1/logs",
        "application/json",
        Some("json-1"),
        serde_json::to_vec(&logs_body)?,
        false,
    )
    .await?;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json(), serde_json::json!({}));

    let traces_body = serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "web"}},
                {"key": "service.version", "value": {"stringValue": "2.0.0"}},
                {"key": "deployment.environment", "value": {"stringValue": "staging"}}
            ]},
            "scopeSpans": [{
                "spans": [
                    {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                     "parentSpanId": "", "name": "GET /pay", "kind": 2,
                     "startTimeUnixNano": (now - 1_000_000).to_string(), "endTimeUnixNano": now.to_string(),
                     "status": {"code": 2, "message": "boom"}},
                    {"traceId": "5b8efff798038103d269b633813fc60d", "spanId": "eee19b7ec3c1b175",
                     "name": "GET /", "kind": 2,
                     "startTimeUnixNano": now.to_string(), "endTimeUnixNano": now.to_string(),
                     "status": {}}
                ]
            }]
        }]
    });
    let response = request_bytes(
        &server,
        "/v1/traces",
        "application/json; charset=utf-8",
        None,
        serde_json::to_vec(&traces_body)?,
        true,
    )
    .await?;
    assert_eq!(response.status, 200, "{}", response.text());

    let entry = release_entry(server.http, "web", "2.0.0").await?;
    assert_eq!(entry["environment"], "staging");
    assert_eq!(entry["totals"]["log_records"], 3);
    assert_eq!(entry["totals"]["error_logs"], 2);
    assert_eq!(entry["totals"]["spans"], 2);
    assert_eq!(entry["totals"]["error_spans"], 1);
    server.stop().await
}

#[tokio::test]
async fn protobuf_over_http_with_gzip_is_accepted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let request = spans(resource("api", "3", "prod", &[]), 6, 1, now_ns());
    let response = request_bytes(
        &server,
        "/v1/traces",
        "application/x-protobuf",
        None,
        request.encode_to_vec(),
        true,
    )
    .await?;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.body.is_empty());
    let entry = release_entry(server.http, "api", "3").await?;
    assert_eq!(entry["totals"]["spans"], 6);
    assert_eq!(entry["totals"]["error_spans"], 1);
    server.stop().await
}

/// Sends arbitrary bytes as a gRPC message.
#[derive(Default)]
struct RawBytesCodec(PhantomData<()>);

impl Codec for RawBytesCodec {
    type Encode = Bytes;
    type Decode = ExportLogsServiceResponse;
    type Encoder = Self;
    type Decoder = Self;
    fn encoder(&mut self) -> Self {
        Self::default()
    }
    fn decoder(&mut self) -> Self {
        Self::default()
    }
}

impl Encoder for RawBytesCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawBytesCodec {
    type Item = ExportLogsServiceResponse;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportLogsServiceResponse::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

#[tokio::test]
async fn malformed_requests_are_rejected_as_invalid() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    // Field 1 (resource_logs), length-delimited, claims 100 bytes but has 2.
    let garbage = Bytes::from_static(&[0x0a, 0x64, 0x01, 0x02]);

    let channel = tonic::transport::Endpoint::from_shared(server.grpc_url())?
        .connect()
        .await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let status = grpc
        .unary(
            tonic::Request::new(garbage.clone()),
            http::uri::PathAndQuery::from_static(
                "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            ),
            RawBytesCodec::default(),
        )
        .await
        .err()
        .ok_or("malformed gRPC request was accepted")?;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("malformed"), "{status:?}");

    let response = request_bytes(
        &server,
        "/v1/logs",
        "application/x-protobuf",
        None,
        garbage.to_vec(),
        false,
    )
    .await?;
    assert_eq!(response.status, 400);
    assert!(
        response.text().contains("malformed OTLP protobuf"),
        "{}",
        response.text()
    );

    let response = request_bytes(
        &server,
        "/v1/traces",
        "application/json",
        None,
        b"{\"resourceSpans\": 5}".to_vec(),
        false,
    )
    .await?;
    assert_eq!(response.status, 400);
    let json = response.json();
    assert_eq!(json["code"], 3, "{json}");
    assert!(
        json["message"]
            .as_str()
            .unwrap_or("")
            .contains("malformed OTLP/JSON"),
        "{json}"
    );

    let response = request_bytes(
        &server,
        "/v1/logs",
        "application/x-protobuf",
        None,
        b"not gzip".to_vec(),
        false,
    )
    .await?;
    assert_eq!(response.status, 400, "not protobuf either");
    let response = request(
        "POST",
        server.otlp_http,
        "/v1/logs",
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "gzip"),
        ],
        b"not gzip".to_vec(),
    )
    .await?;
    assert_eq!(response.status, 400);
    assert!(response.text().contains("gzip"), "{}", response.text());

    let response = request_bytes(
        &server,
        "/v1/logs",
        "text/plain",
        None,
        b"hello".to_vec(),
        false,
    )
    .await?;
    assert_eq!(response.status, 415);

    let too_big = vec![0u8; 16 * 1024 * 1024 + 1];
    let response = request_bytes(
        &server,
        "/v1/logs",
        "application/x-protobuf",
        None,
        too_big,
        false,
    )
    .await?;
    assert_eq!(response.status, 413);

    // Nothing was counted.
    let releases = get(server.http, "/api/v1/releases").await?.json();
    assert_eq!(releases["releases"], serde_json::json!([]), "{releases}");
    server.stop().await
}

#[tokio::test]
async fn records_without_identity_count_under_unknown() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let mut client = LogsServiceClient::connect(server.grpc_url()).await?;
    let mut request = logs(resource("x", "y", "z", &[]), 2, 2, 0);
    request.resource_logs[0].resource = None;
    client.export(request).await?;
    let stats = get(
        server.http,
        "/api/v1/releases/unknown/unknown/stats?environment=unknown",
    )
    .await?;
    assert_eq!(stats.status, 200, "{}", stats.text());
    assert_eq!(stats.json()["release"]["totals"]["error_logs"], 2);
    server.stop().await
}

#[tokio::test]
async fn grpc_accepts_messages_above_the_default_4_mib() -> TestResult {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let mut client = LogsServiceClient::connect(server.grpc_url()).await?;
    let mut request = logs(resource("big", "1", "prod", &[]), 3, 0, now_ns());
    for record in &mut request.resource_logs[0].scope_logs[0].log_records {
        record.severity_text = "x".repeat(2 * 1024 * 1024);
    }
    assert!(request.encoded_len() > 6 * 1024 * 1024);
    client.export(request).await?;
    let entry = release_entry(server.http, "big", "1").await?;
    assert_eq!(entry["totals"]["log_records"], 3);
    server.stop().await
}
