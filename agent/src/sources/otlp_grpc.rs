//! OTLP/gRPC receiver (the generated `opentelemetry-proto` servers): logs, traces and
//! metrics.

use std::future::Future;

use bellwether_proto::otlp::logs_service::logs_service_server::{LogsService, LogsServiceServer};
use bellwether_proto::otlp::logs_service::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use bellwether_proto::otlp::metrics_service::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use bellwether_proto::otlp::metrics_service::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use bellwether_proto::otlp::trace_service::trace_service_server::{
    TraceService, TraceServiceServer,
};
use bellwether_proto::otlp::trace_service::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::{ReceiveError, ENQUEUE_WAIT, MAX_REQUEST_BYTES};
use crate::pipeline::{PipelineSender, Telemetry};
use crate::stats::Source;

#[derive(Debug, Clone)]
struct Receiver {
    pipeline: PipelineSender,
}

impl Receiver {
    async fn submit(&self, telemetry: Telemetry) -> Result<(), Status> {
        self.pipeline
            .submit(Source::OtlpGrpc, telemetry, Some(ENQUEUE_WAIT))
            .await
            .map_err(|e| ReceiveError::from(e).grpc_status())
    }
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.submit(Telemetry::Logs(request.into_inner().resource_logs))
            .await?;
        Ok(Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.submit(Telemetry::Spans(request.into_inner().resource_spans))
            .await?;
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.submit(Telemetry::Metrics(request.into_inner().resource_metrics))
            .await?;
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// Serves until `shutdown` resolves, then finishes in-flight requests and returns.
pub async fn serve(
    listener: TcpListener,
    pipeline: PipelineSender,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let receiver = Receiver { pipeline };
    let logs = LogsServiceServer::new(receiver.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    let traces = TraceServiceServer::new(receiver.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    let metrics = MetricsServiceServer::new(receiver)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_REQUEST_BYTES);
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(
            malformed_is_invalid_argument,
        ))
        .add_service(logs)
        .add_service(traces)
        .add_service(metrics)
        // No Nagle: an answer's last small frame must not wait for the client's delayed
        // ACK (40 ms on Linux), which made every export take that long.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}

/// tonic reports undecodable requests as INTERNAL (the gRPC library convention); to a
/// client that status reads as "the agent is broken, retry", so malformed input is
/// answered with INVALID_ARGUMENT instead, which OTLP clients do not retry.
fn malformed_is_invalid_argument<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let internal = headers
        .get(Status::GRPC_STATUS)
        .is_some_and(|v| v.as_bytes() == b"13");
    let malformed = headers
        .get(Status::GRPC_MESSAGE)
        .and_then(|v| v.to_str().ok())
        // The message is percent-encoded on the wire.
        .map(|m| m.replace("%20", " "))
        .is_some_and(|m| m.starts_with("failed to decode") || m.starts_with("Error decompressing"));
    if internal && malformed {
        headers.insert(Status::GRPC_STATUS, http::HeaderValue::from_static("3"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_failures_become_invalid_argument() {
        use prost::Message;
        let decode = ExportLogsServiceRequest::decode(&b"\xff\xff\xff"[..])
            .expect_err("garbage does not decode");
        let status = Status::internal(decode.to_string());
        let response = malformed_is_invalid_argument(status.into_http::<()>());
        assert_eq!(response.headers()[Status::GRPC_STATUS], "3");

        let other = Status::internal("disk on fire").into_http::<()>();
        let response = malformed_is_invalid_argument(other);
        assert_eq!(response.headers()[Status::GRPC_STATUS], "13");
    }
}
