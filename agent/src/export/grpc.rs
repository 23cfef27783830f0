//! The OTLP/gRPC client towards the collector.

use std::time::Duration;

use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_proto::otlp::trace_service::trace_service_client::TraceServiceClient;
use bellwether_proto::BATCH_ID_HEADER;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use super::{Accepted, Transport};
use crate::pipeline::{Batch, Payload};

/// Largest message the client will send or accept.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("invalid collector url {url}: {source}")]
pub struct InvalidCollectorUrl {
    url: String,
    source: tonic::transport::Error,
}

/// Gzip-compressed OTLP/gRPC export over one lazily connected channel: an unreachable
/// collector does not stop start-up, it makes exports fail (and be retried).
#[derive(Debug, Clone)]
pub struct GrpcTransport {
    logs: LogsServiceClient<Channel>,
    traces: TraceServiceClient<Channel>,
    timeout: Duration,
}

impl GrpcTransport {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, InvalidCollectorUrl> {
        let channel = Endpoint::from_shared(url.to_owned())
            .map_err(|source| InvalidCollectorUrl {
                url: url.to_owned(),
                source,
            })?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self {
            logs: LogsServiceClient::new(channel.clone())
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip)
                .max_encoding_message_size(MAX_MESSAGE_BYTES)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            traces: TraceServiceClient::new(channel)
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip)
                .max_encoding_message_size(MAX_MESSAGE_BYTES)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            timeout,
        })
    }
}

impl Transport for GrpcTransport {
    async fn export(&mut self, batch: &Batch) -> Result<Accepted, Status> {
        let batch_id = MetadataValue::try_from(batch.id.as_str())
            .map_err(|_| Status::invalid_argument("batch id is not valid metadata"))?;
        let call = async {
            match &batch.payload {
                Payload::Logs(request) => {
                    let mut request = tonic::Request::new(request.clone());
                    request.metadata_mut().insert(BATCH_ID_HEADER, batch_id);
                    request.set_timeout(self.timeout);
                    let response = self.logs.export(request).await?.into_inner();
                    Ok(response
                        .partial_success
                        .map_or_else(Accepted::default, |p| Accepted {
                            rejected: u64::try_from(p.rejected_log_records).unwrap_or(0),
                            message: p.error_message,
                        }))
                }
                Payload::Spans(request) => {
                    let mut request = tonic::Request::new(request.clone());
                    request.metadata_mut().insert(BATCH_ID_HEADER, batch_id);
                    request.set_timeout(self.timeout);
                    let response = self.traces.export(request).await?.into_inner();
                    Ok(response
                        .partial_success
                        .map_or_else(Accepted::default, |p| Accepted {
                            rejected: u64::try_from(p.rejected_spans).unwrap_or(0),
                            message: p.error_message,
                        }))
                }
            }
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("export timed out")))
    }
}
