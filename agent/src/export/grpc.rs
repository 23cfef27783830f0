//! The OTLP/gRPC client towards the collector.
//!
//! Batches are queued as encoded export requests, gzip-compressed or not; [`RawCodec`] puts
//! those bytes on the wire as they are (no decode, re-encode or re-compression) and
//! decodes only the small response. A compressed body is marked as such in its gRPC
//! frame by [`precompressed`], which sits between the client and the channel.

use std::time::Duration;

use bellwether_proto::otlp::logs_service::ExportLogsServiceResponse;
use bellwether_proto::otlp::metrics_service::ExportMetricsServiceResponse;
use bellwether_proto::otlp::trace_service::ExportTraceServiceResponse;
use bellwether_proto::BATCH_ID_HEADER;
use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use prost::Message;
use tonic::client::Grpc;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Status;

use super::credentials::Credentials;
use super::{Accepted, Transport};
use crate::batch::{Compression, EncodedBatch, Kind};

/// Largest message the client will send or accept.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

const LOGS_EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const TRACES_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const METRICS_EXPORT: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

#[derive(Debug, thiserror::Error)]
pub enum InvalidCollectorUrl {
    #[error("invalid collector url {url}: {source}")]
    Url {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("--ca-file and --client-cert need an https:// collector url, got {url}")]
    TlsNeedsHttps { url: String },
    #[error(
        "invalid TLS settings for the collector (--ca-file, --client-cert, --client-key): {source}"
    )]
    Tls { source: tonic::transport::Error },
    #[error("the token cannot be sent as gRPC metadata")]
    Token,
}

/// OTLP/gRPC export over one lazily connected channel: an unreachable collector does not
/// stop start-up, it makes exports fail (and be retried).
#[derive(Debug, Clone)]
pub struct GrpcTransport {
    grpc: Grpc<precompressed::MarkCompressed<Channel>>,
    timeout: Duration,
    /// `Bearer <token>`, marked sensitive so `Debug` does not show it.
    authorization: Option<MetadataValue<Ascii>>,
}

impl GrpcTransport {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, InvalidCollectorUrl> {
        Self::with_credentials(url, timeout, &Credentials::default())
    }

    /// An `https://` url uses TLS: the CA from `credentials` (else the Mozilla roots) and
    /// its client certificate, if any. The token, if any, goes with every export.
    pub fn with_credentials(
        url: &str,
        timeout: Duration,
        credentials: &Credentials,
    ) -> Result<Self, InvalidCollectorUrl> {
        let mut endpoint =
            Endpoint::from_shared(url.to_owned()).map_err(|source| InvalidCollectorUrl::Url {
                url: url.to_owned(),
                source,
            })?;
        let https = endpoint
            .uri()
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("https"));
        if https {
            let tls = &credentials.tls;
            let mut config = match &tls.ca_pem {
                Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
                None => ClientTlsConfig::new().with_webpki_roots(),
            };
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|source| InvalidCollectorUrl::Tls { source })?;
        } else if credentials.tls.is_set() {
            return Err(InvalidCollectorUrl::TlsNeedsHttps {
                url: url.to_owned(),
            });
        }
        let authorization = credentials
            .token
            .as_ref()
            .map(|token| {
                let mut value = MetadataValue::try_from(token.header_value())
                    .map_err(|_| InvalidCollectorUrl::Token)?;
                value.set_sensitive(true);
                Ok(value)
            })
            .transpose()?;
        let channel = endpoint
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect_lazy();
        let grpc = Grpc::new(precompressed::MarkCompressed::new(channel))
            .accept_compressed(CompressionEncoding::Gzip)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Self {
            grpc,
            timeout,
            authorization,
        })
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
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        request.set_timeout(self.timeout);
        if batch.compression == Compression::Gzip {
            request.extensions_mut().insert(precompressed::Gzip);
        }
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
                Kind::Metrics => {
                    let response: ExportMetricsServiceResponse =
                        self.call(METRICS_EXPORT, batch).await?;
                    // Rejected data points do not map to whole metrics: a partial
                    // success is logged, not subtracted.
                    Ok(response
                        .partial_success
                        .map_or_else(Accepted::default, |p| Accepted {
                            rejected: 0,
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

/// Marking request bodies that were compressed before they reached the client.
mod precompressed {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http_body_util::BodyExt;
    use tonic::body::Body;

    /// Request extension: the message is gzip-compressed already.
    #[derive(Debug, Clone, Copy)]
    pub struct Gzip;

    type BoxError = Box<dyn std::error::Error + Send + Sync>;

    /// Wraps the channel: for a request carrying [`Gzip`], sets the compressed flag of its
    /// gRPC frame and adds `grpc-encoding: gzip`; other requests pass unchanged.
    #[derive(Debug, Clone)]
    pub struct MarkCompressed<S> {
        inner: S,
    }

    impl<S> MarkCompressed<S> {
        pub fn new(inner: S) -> Self {
            Self { inner }
        }
    }

    impl<S, B> tower::Service<http::Request<Body>> for MarkCompressed<S>
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
    {
        type Response = http::Response<B>;
        type Error = BoxError;
        type Future =
            Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.inner.poll_ready(cx).map_err(Into::into)
        }

        fn call(&mut self, request: http::Request<Body>) -> Self::Future {
            if request.extensions().get::<Gzip>().is_none() {
                let call = self.inner.call(request);
                return Box::pin(async move { call.await.map_err(Into::into) });
            }
            // The service polled ready is the one to call; a fresh clone takes its place.
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            Box::pin(async move {
                let (mut parts, body) = request.into_parts();
                let mut framed = body.collect().await?.to_bytes().to_vec();
                // One message: a 5-byte prefix (flag, length) and the compressed bytes.
                match framed.first_mut() {
                    Some(flag) if *flag == 0 => *flag = 1,
                    _ => return Err("unexpected gRPC request framing".into()),
                }
                parts
                    .headers
                    .insert("grpc-encoding", http::HeaderValue::from_static("gzip"));
                let request = http::Request::from_parts(
                    parts,
                    Body::new(http_body_util::Full::new(bytes::Bytes::from(framed))),
                );
                inner.call(request).await.map_err(Into::into)
            })
        }
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

    fn credentials(token: Option<&str>, ca: Option<&[u8]>) -> Credentials {
        Credentials {
            token: token.map(|t| t.parse().unwrap_or_else(|e| match e {})),
            tls: crate::export::credentials::ClientTls {
                ca_pem: ca.map(<[u8]>::to_vec),
                identity: None,
            },
        }
    }

    #[tokio::test]
    async fn token_is_kept_out_of_debug_output() {
        let transport = GrpcTransport::with_credentials(
            "http://127.0.0.1:4317",
            Duration::from_secs(1),
            &credentials(Some("very-secret-token-1"), None),
        )
        .expect("valid");
        assert!(transport.authorization.is_some());
        assert!(!format!("{transport:?}").contains("very-secret-token-1"));
    }

    #[tokio::test]
    async fn tls_settings_need_https() {
        let err = GrpcTransport::with_credentials(
            "http://127.0.0.1:4317",
            Duration::from_secs(1),
            &credentials(None, Some(b"pem")),
        )
        .expect_err("tls over http");
        assert!(matches!(err, InvalidCollectorUrl::TlsNeedsHttps { .. }));
        GrpcTransport::with_credentials(
            "https://127.0.0.1:4317",
            Duration::from_secs(1),
            &Credentials::default(),
        )
        .expect("https with the built-in roots");
    }
}
