//! The batch format shared by the pipeline, the queue and the exporter: what a batch
//! holds ([`Payload`]), its wire form ([`EncodedBatch`]: the encoded export request,
//! [`Compression`] as stored) and the encoding of log records as the pipeline batches
//! them ([`EncodedLogs`], framed into a request by [`encode_request`]).
//!
//! - `encoded.rs`: log records held as protobuf bytes, and the request framing around them.
//! - `resource.rs`: [`ResourceBatch`], resource-level containers of records that can be
//!   sized and split at record granularity.
//!
//! It sits below every module that moves batches and names none of them: the pipeline
//! cuts batches, the queue stores them, the exporter sends them.

mod encoded;
mod resource;

use std::str::FromStr;

use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::metrics_service::ExportMetricsServiceRequest;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;

pub use encoded::{attribute_field, encode_request, EncodedLogs};
pub use resource::ResourceBatch;

/// One export unit, ready for the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `<instance-id>:<queue-id>:<sequence>`, fixed when the batch is queued; every
    /// re-send, after a restart too, carries the same id.
    pub id: String,
    /// Log records plus spans in the payload.
    pub records: usize,
    pub payload: Payload,
}

/// What a batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Logs,
    Spans,
    Metrics,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Logs => "logs",
            Kind::Spans => "spans",
            Kind::Metrics => "metrics",
        }
    }
}

/// A queued batch in its wire form: the protobuf export request, encoded (and compressed)
/// once when it was queued and sent as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedBatch {
    /// As [`Batch::id`].
    pub id: String,
    pub records: usize,
    pub kind: Kind,
    /// How `body` is compressed.
    pub compression: Compression,
    /// `ExportLogsServiceRequest` or `ExportTraceServiceRequest`, encoded, then compressed
    /// as `compression` says.
    pub body: bytes::Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Logs(ExportLogsServiceRequest),
    /// Logs as the pipeline batches them: records already encoded.
    EncodedLogs(Vec<EncodedLogs>),
    Spans(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

impl Payload {
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Logs(_) | Payload::EncodedLogs(_) => "logs",
            Payload::Spans(_) => "spans",
            Payload::Metrics(_) => "metrics",
        }
    }
}

/// Compression of queued batches, and so of export requests: batches are compressed once,
/// when they are queued.
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
