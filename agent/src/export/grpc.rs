//! The OTLP/gRPC client towards the collector.
//!
//! Batches are queued as encoded export requests; [`RawCodec`] puts those bytes on the
//! wire as they are (no decode and re-encode) and decodes only the small response.

use std::str::FromStr;
use std::time::Duration;

use bellwether_proto::otlp::logs_service::ExportLogsServiceResponse;
use bellwether_proto::otlp::trace_service::ExportTraceServiceResponse;
use bellwether_proto::BATCH_ID_HEADER;
use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use prost::Message;
use tonic::client::Grpc;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use super::{Accepted, Transport};
use crate::pipeline::{EncodedBatch, Kind};

/// Largest message the client will send or accept.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

const LOGS_EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const TRACES_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

#[derive(Debug, thiserror::Error)]
#[error("invalid collector url {url}: {source}")]
pub struct InvalidCollectorUrl {
    url: String,
    source: tonic::transport::Error,
}

/// Compression of export requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

impl FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gzip" => Ok(Compression::Gzip),
            "none" => Ok(Compression::None),
            other => Err(format!("expected `gzip` or `none`, got {other:?}")),
        }
    }
}

/// OTLP/gRPC export over one lazily connected channel: an unreachable collector does not
/// stop start-up, it makes exports fail (and be retried).
#[derive(Debug, Clone)]
pub struct GrpcTransport {
    grpc: Grpc<Channel>,
    timeout: Duration,
}

impl GrpcTransport {
    /// Gzip-compressed requests.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, InvalidCollectorUrl> {
        Self::with_compression(url, timeout, Compression::Gzip)
    }

    pub fn with_compression(
        url: &str,
        timeout: Duration,
        compression: Compression,
    ) -> Result<Self, InvalidCollectorUrl> {
        let channel = Endpoint::from_shared(url.to_owned())
            .map_err(|source| InvalidCollectorUrl {
                url: url.to_owned(),
                source,
            })?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect_lazy();
        let mut grpc = Grpc::new(channel)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        if compression == Compression::Gzip {
            grpc = grpc.send_compressed(CompressionEncoding::Gzip);
        }
        Ok(Self { grpc, timeout })
    }

    async fn call<R: Message + Default + Send + 'static>(
        &mut self,
        path: &'static str,
        batch: &EncodedBatch,
    ) -> Result<R, Status> {
        let batch_id = MetadataValue::try_from(batch.id.as_str())
            .map_err(|_| Status::invalid_argument("batch id is not valid metadata"))?;
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unknown(format!("service was not ready: {e}")))?;
        let mut request = tonic::Request::new(batch.body.clone());
        request.metadata_mut().insert(BATCH_ID_HEADER, batch_id);
        request.set_timeout(self.timeout);
        let codec = RawCodec::<R>(std::marker::PhantomData);
        let response = self
            .grpc
            .unary(request, PathAndQuery::from_static(path), codec)
            .await?;
        Ok(response.into_inner())
    }
}

impl Transport for GrpcTransport {
    async fn export(&mut self, batch: &EncodedBatch) -> Result<Accepted, Status> {
        let timeout = self.timeout;
        let call = async {
            match batch.kind {
                Kind::Logs => {
                    let response: ExportLogsServiceResponse = self.call(LOGS_EXPORT, batch).await?;
                    Ok(response
                        .partial_success
                        .map_or_else(Accepted::default, |p| Accepted {
                            rejected: u64::try_from(p.rejected_log_records).unwrap_or(0),
                            message: p.error_message,
                        }))
                }
                Kind::Spans => {
                    let response: ExportTraceServiceResponse =
                        self.call(TRACES_EXPORT, batch).await?;
                    Ok(response
                        .partial_success
                        .map_or_else(Accepted::default, |p| Accepted {
                            rejected: u64::try_from(p.rejected_spans).unwrap_or(0),
                            message: p.error_message,
                        }))
                }
            }
        };
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("export timed out")))
    }
}

/// Sends already encoded request bytes; decodes the response as `R`.
struct RawCodec<R>(std::marker::PhantomData<R>);

impl<R: Message + Default + Send + 'static> Codec for RawCodec<R> {
    type Encode = Bytes;
    type Decode = R;
    type Encoder = RawEncoder;
    type Decoder = MessageDecoder<R>;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        MessageDecoder(std::marker::PhantomData)
    }
}

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

struct MessageDecoder<R>(std::marker::PhantomData<R>);

impl<R: Message + Default> Decoder for MessageDecoder<R> {
    type Item = R;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<R>, Status> {
        let message = R::decode(src.copy_to_bytes(src.remaining()))
            .map_err(|e| Status::internal(format!("cannot decode the response: {e}")))?;
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_values() {
        assert_eq!("gzip".parse::<Compression>(), Ok(Compression::Gzip));
        assert_eq!("None".parse::<Compression>(), Ok(Compression::None));
        assert!("zstd".parse::<Compression>().is_err());
    }
}
