use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use http::Request;
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::*;
use crate::pipeline;
use crate::sources::testing::{self, TestPipeline};
use crate::stats::Stats;

/// A receiver in front of a real pipeline and queue; `rx` yields what was queued.
fn setup() -> (Router, mpsc::Receiver<Telemetry>, Arc<Stats>, TestPipeline) {
    let stats = Arc::new(Stats::default());
    let (sender, rx, guard) = testing::pipeline(1 << 24, stats.clone());
    (router(sender), rx, stats, guard)
}

async fn post(
    router: Router,
    path: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, String) {
    let mut request = Request::post(path).header(CONTENT_TYPE, content_type);
    if let Some(encoding) = encoding {
        request = request.header(CONTENT_ENCODING, encoding);
    }
    let response = router
        .oneshot(request.body(Body::from(body)).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn one_log_request() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(); 2],
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("in memory");
    encoder.finish().expect("in memory")
}

#[tokio::test]
async fn json_logs_are_enqueued() {
    let (router, mut rx, stats, _pipeline) = setup();
    let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":17,"body":{"stringValue":"boom"},"traceId":"0102030405060708090a0b0c0d0e0f10"}]}]}]}"#;
    let (status, text) = post(router, "/v1/logs", "application/json", None, body.to_vec()).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "{}"));
    let Some(Telemetry::Logs(logs)) = rx.recv().await else {
        panic!("logs expected");
    };
    let record = &logs[0].scope_logs[0].log_records[0];
    assert_eq!(record.severity_number, 17);
    assert_eq!(record.trace_id.len(), 16);
    assert_eq!(stats.snapshot().received.otlp_http.log_records, 1);
}

#[tokio::test]
async fn gzip_protobuf_traces_are_enqueued() {
    use bellwether_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};
    let (router, mut rx, _stats, _pipeline) = setup();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); 3],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    let (status, _) = post(
        router,
        "/v1/traces",
        "application/x-protobuf",
        Some("gzip"),
        gzip(&request.encode_to_vec()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Queued as sent, with the identity stamped on the resource.
    let Some(Telemetry::Spans(spans)) = rx.recv().await else {
        panic!("spans expected");
    };
    assert_eq!(spans[0].scope_spans, request.resource_spans[0].scope_spans);
}

#[tokio::test]
async fn protobuf_logs_with_charset_parameter() {
    let (router, mut rx, _stats, _pipeline) = setup();
    let (status, _) = post(
        router,
        "/v1/logs",
        "application/x-protobuf; charset=binary",
        None,
        one_log_request().encode_to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(matches!(rx.recv().await, Some(Telemetry::Logs(l)) if l.len() == 1));
}

#[tokio::test]
async fn malformed_bodies_are_400_with_a_message() {
    let (router, _rx, _stats, _pipeline) = setup();
    let (status, text) = post(
        router.clone(),
        "/v1/logs",
        "application/json",
        None,
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.starts_with("malformed request"), "{text}");

    let (status, _) = post(
        router.clone(),
        "/v1/logs",
        "application/x-protobuf",
        None,
        vec![0xff, 0xff, 0xff],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, text) = post(
        router,
        "/v1/logs",
        "application/json",
        Some("gzip"),
        b"not gzip".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("gzip"), "{text}");
}

#[tokio::test]
async fn unknown_content_type_or_encoding_is_415() {
    let (router, _rx, _stats, _pipeline) = setup();
    let (status, text) = post(
        router.clone(),
        "/v1/logs",
        "text/plain",
        None,
        b"hi".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(text.contains("text/plain"), "{text}");
    let (status, _) = post(
        router,
        "/v1/logs",
        "application/json",
        Some("br"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let (router, _rx, _stats, _pipeline) = setup();
    let big = vec![b' '; MAX_REQUEST_BYTES + 1];
    let (status, _) = post(router.clone(), "/v1/logs", "application/json", None, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Small on the wire, too large once decompressed.
    let bomb = gzip(&vec![b' '; MAX_REQUEST_BYTES + 1]);
    assert!(bomb.len() < 1024 * 1024);
    let (status, _) = post(router, "/v1/logs", "application/json", Some("gzip"), bomb).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn shutting_down_is_503() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stats = Arc::new(Stats::default());
    let (queue, _) =
        crate::queue::Queue::open(dir.path(), "i", 1 << 20, stats.clone()).expect("queue opens");
    let (sender, submissions) = pipeline::channel(1, queue, stats);
    // The pipeline task is gone, as during shutdown.
    drop(submissions);
    let router = router(sender);
    let (status, _) = post(
        router,
        "/v1/logs",
        "application/x-protobuf",
        None,
        one_log_request().encode_to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
