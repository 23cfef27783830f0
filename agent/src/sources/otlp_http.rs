//! OTLP/HTTP receiver: `POST /v1/logs`, `POST /v1/traces` and `POST /v1/metrics` with a protobuf or JSON
//! body, optionally gzip-compressed.

use std::future::Future;
use std::io::Read;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;
use bellwether_proto::otlp::logs_service::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use bellwether_proto::otlp::metrics_service::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use bellwether_proto::otlp::trace_service::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use prost::Message;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;

use super::{ReceiveError, ENQUEUE_WAIT, MAX_REQUEST_BYTES};
use crate::pipeline::{PipelineSender, Telemetry};
use crate::stats::Source;

/// Body encodings OTLP/HTTP defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// The receiver's routes.
pub fn router(pipeline: PipelineSender) -> Router {
    Router::new()
        .route("/v1/logs", post(logs))
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        // Slightly above the limit so an over-long body reaches our own check and
        // message; axum still answers 413 for anything far larger.
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES + 1))
        .with_state(pipeline)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests and returns.
pub async fn serve(
    listener: TcpListener,
    pipeline: PipelineSender,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // No Nagle, as for gRPC: an answer must not wait for the client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(pipeline))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn logs(State(pipeline): State<PipelineSender>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let (request, format) = decode::<ExportLogsServiceRequest>(&headers, &body)?;
        submit(&pipeline, Telemetry::Logs(request.resource_logs)).await?;
        Ok::<_, ReceiveError>(format)
    }
    .await;
    respond(result, ExportLogsServiceResponse::default())
}

async fn traces(
    State(pipeline): State<PipelineSender>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let (request, format) = decode::<ExportTraceServiceRequest>(&headers, &body)?;
        submit(&pipeline, Telemetry::Spans(request.resource_spans)).await?;
        Ok::<_, ReceiveError>(format)
    }
    .await;
    respond(result, ExportTraceServiceResponse::default())
}

async fn metrics(
    State(pipeline): State<PipelineSender>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let (request, format) = decode::<ExportMetricsServiceRequest>(&headers, &body)?;
        submit(&pipeline, Telemetry::Metrics(request.resource_metrics)).await?;
        Ok::<_, ReceiveError>(format)
    }
    .await;
    respond(result, ExportMetricsServiceResponse::default())
}

async fn submit(pipeline: &PipelineSender, telemetry: Telemetry) -> Result<(), ReceiveError> {
    Ok(pipeline
        .submit(Source::OtlpHttp, telemetry, Some(ENQUEUE_WAIT))
        .await?)
}

fn respond<T: Message + serde::Serialize>(
    result: Result<Format, ReceiveError>,
    success: T,
) -> Response {
    match result {
        Ok(Format::Protobuf) => (
            [(CONTENT_TYPE, Format::Protobuf.content_type())],
            success.encode_to_vec(),
        )
            .into_response(),
        // An empty success is `{}` in OTLP/JSON.
        Ok(Format::Json) => ([(CONTENT_TYPE, Format::Json.content_type())], "{}").into_response(),
        Err(error) => {
            let mut response = (error.http_status(), error.to_string()).into_response();
            if error.http_status() == StatusCode::TOO_MANY_REQUESTS {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from_static("1"));
            }
            response
        }
    }
}

fn decode<T: Message + Default + DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(T, Format), ReceiveError> {
    let format = content_format(headers)?;
    if body.len() > MAX_REQUEST_BYTES {
        return Err(ReceiveError::TooLarge);
    }
    let encoding = headers
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let decompressed;
    let body = match encoding.as_deref() {
        None | Some("") | Some("identity") => body,
        Some("gzip") => {
            decompressed = gunzip(body)?;
            decompressed.as_slice()
        }
        Some(other) => return Err(ReceiveError::UnsupportedEncoding(other.to_owned())),
    };
    let message = match format {
        Format::Protobuf => T::decode(body).map_err(|e| ReceiveError::Malformed(e.to_string()))?,
        Format::Json => {
            serde_json::from_slice(body).map_err(|e| ReceiveError::Malformed(e.to_string()))?
        }
    };
    Ok((message, format))
}

fn content_format(headers: &HeaderMap) -> Result<Format, ReceiveError> {
    let raw = headers
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        _ => Err(ReceiveError::UnsupportedContentType(raw)),
    }
}

/// Decompresses at most [`MAX_REQUEST_BYTES`], so a small bomb cannot exhaust memory.
fn gunzip(body: &[u8]) -> Result<Vec<u8>, ReceiveError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(MAX_REQUEST_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ReceiveError::Malformed(format!("invalid gzip body: {e}")))?;
    if out.len() > MAX_REQUEST_BYTES {
        return Err(ReceiveError::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
