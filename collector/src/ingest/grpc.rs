//! OTLP/gRPC receiver: `LogsService/Export`, `TraceService/Export` and
//! `MetricsService/Export`.
//!
//! The generated OTLP servers decode with a codec that reports malformed protobuf as
//! INTERNAL; OTLP (and our contract) calls it INVALID_ARGUMENT, which tells the sender
//! not to retry. So these servers take the raw message bytes from tonic (which still does
//! framing, gzip and the size limit) and decode them here.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bellwether_proto::otlp::logs_service::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use bellwether_proto::otlp::metrics_service::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use bellwether_proto::otlp::trace_service::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use bytes::{Buf, Bytes};
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::Status;

use super::wire::DecodeRequest;
use super::{parse_batch_id, Ingestor};
use crate::error::Error;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One OTLP signal's export service.
pub trait Signal: Send + Sync + 'static {
    /// Fully qualified gRPC service name.
    const SERVICE: &'static str;
    type Request: DecodeRequest + Send + 'static;
    type Response: Message + Default + Send + 'static;
    fn ingest(
        ingestor: Ingestor,
        request: Self::Request,
        batch_id: Option<String>,
    ) -> BoxFuture<Result<(), Error>>;
}

/// `opentelemetry.proto.collector.logs.v1.LogsService`.
pub struct Logs;
/// `opentelemetry.proto.collector.trace.v1.TraceService`.
pub struct Traces;
/// `opentelemetry.proto.collector.metrics.v1.MetricsService`.
pub struct Metrics;

impl Signal for Metrics {
    const SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;
    fn ingest(
        ingestor: Ingestor,
        request: Self::Request,
        batch_id: Option<String>,
    ) -> BoxFuture<Result<(), Error>> {
        Box::pin(async move { ingestor.metrics(request, batch_id).await.map(drop) })
    }
}

impl Signal for Logs {
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;
    fn ingest(
        ingestor: Ingestor,
        request: Self::Request,
        batch_id: Option<String>,
    ) -> BoxFuture<Result<(), Error>> {
        Box::pin(async move { ingestor.logs(request, batch_id).await.map(drop) })
    }
}

impl Signal for Traces {
    const SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;
    fn ingest(
        ingestor: Ingestor,
        request: Self::Request,
        batch_id: Option<String>,
    ) -> BoxFuture<Result<(), Error>> {
        Box::pin(async move { ingestor.traces(request, batch_id).await.map(drop) })
    }
}

/// A tonic service serving `<S::SERVICE>/Export`.
pub struct ExportServer<S> {
    ingestor: Ingestor,
    signal: PhantomData<fn() -> S>,
}

impl<S> ExportServer<S> {
    pub fn new(ingestor: Ingestor) -> Self {
        Self {
            ingestor,
            signal: PhantomData,
        }
    }
}

impl<S> Clone for ExportServer<S> {
    fn clone(&self) -> Self {
        Self::new(self.ingestor.clone())
    }
}

impl<S: Signal> NamedService for ExportServer<S> {
    const NAME: &'static str = S::SERVICE;
}

impl<S, B> Service<http::Request<B>> for ExportServer<S>
where
    S: Signal,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let is_export = request
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|path| path.strip_prefix(S::SERVICE))
            == Some("/Export");
        if !is_export {
            return Box::pin(async { Ok(Status::unimplemented("unknown method").into_http()) });
        }
        let method = ExportMethod::<S> {
            ingestor: self.ingestor.clone(),
            signal: PhantomData,
        };
        let limit = self.ingestor.limits().max_request_bytes;
        Box::pin(async move {
            let mut grpc = Grpc::new(RawCodec::<S::Response>(PhantomData))
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit);
            let response = grpc.unary(method, request).await;
            // tonic refuses an oversize message itself, answering OUT_OF_RANGE at once.
            let code = response.headers().get("grpc-status").map(|v| v.as_bytes());
            if code == Some(b"11") {
                bellwether_model::limit::hit(bellwether_model::limit::Limit::RequestBytes, 1);
            }
            Ok(response)
        })
    }
}

struct ExportMethod<S> {
    ingestor: Ingestor,
    signal: PhantomData<fn() -> S>,
}

impl<S: Signal> UnaryService<Bytes> for ExportMethod<S> {
    type Response = S::Response;
    type Future = BoxFuture<Result<tonic::Response<S::Response>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let ingestor = self.ingestor.clone();
        Box::pin(async move {
            let batch_id = parse_batch_id(
                request
                    .metadata()
                    .get(bellwether_proto::BATCH_ID_HEADER)
                    .map(|v| v.as_bytes()),
            )?;
            let message = S::Request::decode_request(&request.into_inner())
                .map_err(|e| Error::invalid(format!("malformed OTLP protobuf message: {e}")))?;
            S::ingest(ingestor, message, batch_id).await?;
            // An empty response (no partial_success) means every record was accepted.
            Ok(tonic::Response::new(S::Response::default()))
        })
    }
}

/// Decodes nothing (hands over the message bytes), encodes protobuf responses.
struct RawCodec<R>(PhantomData<fn() -> R>);

impl<R: Message + Send + 'static> Codec for RawCodec<R> {
    type Encode = R;
    type Decode = Bytes;
    type Encoder = RawCodec<R>;
    type Decoder = RawCodec<R>;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec(PhantomData)
    }
}

impl<R: Message> Encoder for RawCodec<R> {
    type Item = R;
    type Error = Status;

    fn encode(&mut self, item: R, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding response: {e}")))
    }
}

impl<R> Decoder for RawCodec<R> {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
