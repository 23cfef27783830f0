//! OTLP/HTTP receiver: `POST /v1/logs`, `POST /v1/traces` and `POST /v1/metrics`,
//! binary protobuf or OTLP/JSON, optionally gzip-compressed. Failures answer with an OTLP `Status` message in the
//! request's own encoding.

use std::io::Read;

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::metrics_service::ExportMetricsServiceRequest;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use prost::Message;
use serde::de::DeserializeOwned;

use super::wire::DecodeRequest;
use super::{parse_batch_id, Ingestor};
use crate::error::Error;
use bellwether_model::limit::Limit;

pub fn router(ingestor: Ingestor) -> Router {
    let limit = ingestor.limits().max_request_bytes;
    Router::new()
        .route("/v1/logs", post(logs))
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        // Compressed bodies are limited here, decompressed ones in `decompress`.
        .layer(DefaultBodyLimit::max(limit))
        .with_state(ingestor)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// google.rpc.Status, the body of an OTLP/HTTP error response.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

async fn logs(
    State(ingestor): State<Ingestor>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let format = format_of(&headers);
    let limit = ingestor.limits().max_request_bytes;
    let result = async {
        let format = format?;
        let body = body.map_err(|r| rejected(r, limit))?;
        let (request, batch_id) =
            decode::<ExportLogsServiceRequest>(format, &headers, body, limit)?;
        ingestor.logs(request, batch_id).await
    };
    respond(format_or_json(&headers), result.await.map(drop))
}

async fn traces(
    State(ingestor): State<Ingestor>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let format = format_of(&headers);
    let limit = ingestor.limits().max_request_bytes;
    let result = async {
        let format = format?;
        let body = body.map_err(|r| rejected(r, limit))?;
        let (request, batch_id) =
            decode::<ExportTraceServiceRequest>(format, &headers, body, limit)?;
        ingestor.traces(request, batch_id).await
    };
    respond(format_or_json(&headers), result.await.map(drop))
}

async fn metrics(
    State(ingestor): State<Ingestor>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let format = format_of(&headers);
    let limit = ingestor.limits().max_request_bytes;
    let result = async {
        let format = format?;
        let body = body.map_err(|r| rejected(r, limit))?;
        let (request, batch_id) =
            decode::<ExportMetricsServiceRequest>(format, &headers, body, limit)?;
        ingestor.metrics(request, batch_id).await
    };
    respond(format_or_json(&headers), result.await.map(drop))
}

fn rejected(rejection: BytesRejection, limit: usize) -> Error {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        bellwether_model::limit::hit(Limit::RequestBytes, 1);
        Error::PayloadTooLarge { limit }
    } else {
        Error::invalid(format!("reading request body: {}", rejection.body_text()))
    }
}

fn format_of(headers: &HeaderMap) -> Result<Format, Error> {
    let raw = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        _ => Err(Error::UnsupportedMediaType(format!(
            "unsupported content type {raw:?}: use application/x-protobuf or application/json"
        ))),
    }
}

fn format_or_json(headers: &HeaderMap) -> Format {
    format_of(headers).unwrap_or(Format::Json)
}

fn decode<R>(
    format: Format,
    headers: &HeaderMap,
    body: Bytes,
    limit: usize,
) -> Result<(R, Option<String>), Error>
where
    R: DecodeRequest + DeserializeOwned,
{
    let batch_id = parse_batch_id(
        headers
            .get(bellwether_proto::BATCH_ID_HEADER)
            .map(HeaderValue::as_bytes),
    )?;
    let body = decompress(headers, body, limit)?;
    let request = match format {
        Format::Protobuf => R::decode_request(&body)
            .map_err(|e| Error::invalid(format!("malformed OTLP protobuf message: {e}")))?,
        Format::Json => serde_json::from_slice(&body)
            .map_err(|e| Error::invalid(format!("malformed OTLP/JSON message: {e}")))?,
    };
    Ok((request, batch_id))
}

fn decompress(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, Error> {
    let encoding = headers
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(body),
        Some("gzip") => {
            let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
            flate2::read::GzDecoder::new(body.as_ref())
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| Error::invalid(format!("invalid gzip body: {e}")))?;
            if out.len() > limit {
                bellwether_model::limit::hit(Limit::RequestBytes, 1);
                return Err(Error::PayloadTooLarge { limit });
            }
            Ok(Bytes::from(out))
        }
        Some(other) => Err(Error::UnsupportedMediaType(format!(
            "unsupported content encoding {other:?}: use gzip or none"
        ))),
    }
}

fn respond(format: Format, result: Result<(), Error>) -> Response {
    let retry_after = result.as_ref().err().and_then(Error::retry_after);
    let (status, body) = match result {
        // An empty Export*ServiceResponse: everything was accepted.
        Ok(()) => (
            StatusCode::OK,
            match format {
                Format::Protobuf => Vec::new(),
                Format::Json => b"{}".to_vec(),
            },
        ),
        Err(error) => {
            if error.http_status().is_server_error() {
                tracing::error!(error = %error, "otlp http request failed");
            }
            let status = RpcStatus {
                code: error.grpc_code() as i32,
                message: error.to_string(),
            };
            let body = match format {
                Format::Protobuf => status.encode_to_vec(),
                Format::Json => serde_json::to_vec(&status).unwrap_or_default(),
            };
            (error.http_status(), body)
        }
    };
    let mut response = (
        status,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
        .into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_answers_429_with_retry_after() {
        let response = respond(Format::Json, Err(Error::Overloaded("busy".into())));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers().get(RETRY_AFTER),
            Some(&HeaderValue::from_static("1"))
        );
        let response = respond(Format::Json, Err(Error::invalid("bad")));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get(RETRY_AFTER).is_none());
    }
}
