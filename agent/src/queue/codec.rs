//! On-disk form of one queued batch.
//!
//! ```text
//! magic "BWQ2" | kind u8 | encoding u8 | records u32 | enqueued_unix_ms u64 | id_len u16
//!              | id | payload_len u32 | payload | crc32 u32
//! ```
//!
//! The payload is the protobuf export request, gzip-compressed when `encoding` says so:
//! it is compressed once, when queued, and goes on the wire as it is stored. Integers are
//! little-endian; the CRC32 covers every byte before it, so a damaged id, count or payload
//! is detected before the batch is sent anywhere. Entries written before the encoding
//! byte existed (magic "BWQ1", no encoding byte, never compressed) still decode.

use std::io::{Read as _, Write as _};

use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::metrics_service::ExportMetricsServiceRequest;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;
use prost::Message;

use crate::batch::{encode_request, Batch, Compression, EncodedBatch, Kind, Payload};

const MAGIC: &[u8; 4] = b"BWQ2";
const MAGIC_V1: &[u8; 4] = b"BWQ1";
/// Bytes around the id and payload: magic, kind, encoding, records, time, id length,
/// payload length, checksum.
const OVERHEAD: usize = 4 + 1 + 1 + 4 + 8 + 2 + 4 + 4;

const KIND_LOGS: u8 = 1;
const KIND_SPANS: u8 = 2;
const KIND_METRICS: u8 = 3;

const ENCODING_NONE: u8 = 0;
const ENCODING_GZIP: u8 = 1;

/// Largest payload a queued entry may claim once decompressed (a batch is bounded far
/// below this); a damaged or hostile entry cannot make decoding allocate more.
const MAX_DECOMPRESSED: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("entry truncated")]
    Truncated,
    #[error("bad magic")]
    Magic,
    #[error("checksum mismatch")]
    Checksum,
    #[error("unknown batch kind {0}")]
    Kind(u8),
    #[error("unknown payload encoding {0}")]
    Encoding(u8),
    #[error("batch id is not utf-8")]
    Id,
    #[error("payload does not decode: {0}")]
    Payload(String),
}

/// The fixed-size facts about an entry, readable without decoding the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub records: u32,
    pub enqueued_unix_ms: u64,
}

/// Encodes a batch; `id` is the batch id it will carry on every send. With
/// [`Compression::Gzip`] the payload is stored gzip-compressed (at the fastest level:
/// the agent's CPU matters more than the last percent of size).
pub fn encode(
    id: &str,
    records: u32,
    enqueued_unix_ms: u64,
    payload: &Payload,
    compression: Compression,
) -> Vec<u8> {
    let (kind, body) = match payload {
        Payload::Logs(request) => (KIND_LOGS, request.encode_to_vec()),
        Payload::EncodedLogs(items) => (KIND_LOGS, encode_request(items)),
        Payload::Spans(request) => (KIND_SPANS, request.encode_to_vec()),
        Payload::Metrics(request) => (KIND_METRICS, request.encode_to_vec()),
    };
    let (encoding, body) = match compression {
        Compression::None => (ENCODING_NONE, body),
        Compression::Gzip => match gzip(&body) {
            Ok(compressed) => (ENCODING_GZIP, compressed),
            // Writing into memory does not fail; should it, the batch is stored as it is.
            Err(_) => (ENCODING_NONE, body),
        },
    };
    // Ids are built at most 256 bytes long; cut defensively so the length fits.
    let id = &id.as_bytes()[..id.len().min(u16::MAX as usize)];
    let mut out = Vec::with_capacity(OVERHEAD + id.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.push(kind);
    out.push(encoding);
    out.extend_from_slice(&records.to_le_bytes());
    out.extend_from_slice(&enqueued_unix_ms.to_le_bytes());
    out.extend_from_slice(&(id.len() as u16).to_le_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(bytes)?;
    encoder.finish()
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    gunzip_at_most(bytes, MAX_DECOMPRESSED)
}

fn gunzip_at_most(bytes: &[u8], limit: u64) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(limit as usize));
    flate2::read::GzDecoder::new(bytes)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Payload(format!("gzip: {e}")))?;
    if out.len() as u64 > limit {
        return Err(DecodeError::Payload(
            "decompresses past the limit".to_owned(),
        ));
    }
    Ok(out)
}

/// Checks the checksum and reads the header, without decoding the payload.
pub fn header(bytes: &[u8]) -> Result<Header, DecodeError> {
    Ok(split(bytes)?.header)
}

/// Decodes a whole entry back into a batch (decompressing its payload).
pub fn decode(bytes: &[u8]) -> Result<(Header, Batch), DecodeError> {
    let parts = split(bytes)?;
    let plain;
    let body = match parts.encoding {
        Compression::None => parts.payload,
        Compression::Gzip => {
            plain = gunzip(parts.payload)?;
            plain.as_slice()
        }
    };
    let payload = match parts.kind {
        Kind::Logs => Payload::Logs(
            ExportLogsServiceRequest::decode(body)
                .map_err(|e| DecodeError::Payload(e.to_string()))?,
        ),
        Kind::Spans => Payload::Spans(
            ExportTraceServiceRequest::decode(body)
                .map_err(|e| DecodeError::Payload(e.to_string()))?,
        ),
        Kind::Metrics => Payload::Metrics(
            ExportMetricsServiceRequest::decode(body)
                .map_err(|e| DecodeError::Payload(e.to_string()))?,
        ),
    };
    let batch = Batch {
        id: parts.id.to_owned(),
        records: parts.header.records as usize,
        payload,
    };
    Ok((parts.header, batch))
}

/// Reads an entry without decoding its payload: the exporter sends the stored bytes as
/// they are (compressed or not). The checksum covers them, so a damaged payload is found
/// here too.
pub fn decode_encoded(bytes: &[u8]) -> Result<(Header, EncodedBatch), DecodeError> {
    let parts = split(bytes)?;
    let batch = EncodedBatch {
        id: parts.id.to_owned(),
        records: parts.header.records as usize,
        kind: parts.kind,
        compression: parts.encoding,
        body: bytes::Bytes::copy_from_slice(parts.payload),
    };
    Ok((parts.header, batch))
}

struct Parts<'a> {
    header: Header,
    kind: Kind,
    encoding: Compression,
    id: &'a str,
    payload: &'a [u8],
}

fn split(bytes: &[u8]) -> Result<Parts<'_>, DecodeError> {
    if bytes.len() < OVERHEAD - 1 {
        return Err(DecodeError::Truncated);
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(DecodeError::Checksum);
    }
    let mut reader = Reader(body);
    let magic = reader.take(4)?;
    let versioned = if magic == MAGIC {
        true
    } else if magic == MAGIC_V1 {
        false
    } else {
        return Err(DecodeError::Magic);
    };
    let kind = match reader.take(1)?[0] {
        KIND_LOGS => Kind::Logs,
        KIND_SPANS => Kind::Spans,
        KIND_METRICS => Kind::Metrics,
        other => return Err(DecodeError::Kind(other)),
    };
    let encoding = if versioned {
        match reader.take(1)?[0] {
            ENCODING_NONE => Compression::None,
            ENCODING_GZIP => Compression::Gzip,
            other => return Err(DecodeError::Encoding(other)),
        }
    } else {
        Compression::None
    };
    let records = u32::from_le_bytes(reader.array()?);
    let enqueued_unix_ms = u64::from_le_bytes(reader.array()?);
    let id_len = u16::from_le_bytes(reader.array()?) as usize;
    let id = std::str::from_utf8(reader.take(id_len)?).map_err(|_| DecodeError::Id)?;
    let payload_len = u32::from_le_bytes(reader.array()?) as usize;
    let payload = reader.take(payload_len)?;
    if !reader.0.is_empty() {
        return Err(DecodeError::Truncated);
    }
    Ok(Parts {
        header: Header {
            records,
            enqueued_unix_ms,
        },
        kind,
        encoding,
        id,
        payload,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
    use bellwether_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};
    use proptest::prelude::*;

    use super::*;

    fn logs(n: usize) -> Payload {
        Payload::Logs(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: (0..n)
                        .map(|i| LogRecord {
                            time_unix_nano: i as u64 + 1,
                            ..LogRecord::default()
                        })
                        .collect(),
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        })
    }

    #[test]
    fn round_trips_logs_spans_and_metrics() {
        let bytes = encode("pod:q:7", 3, 1234, &logs(3), Compression::Gzip);
        let (header, batch) = decode(&bytes).expect("decodes");
        assert_eq!(
            header,
            Header {
                records: 3,
                enqueued_unix_ms: 1234
            }
        );
        assert_eq!(batch.id, "pod:q:7");
        assert_eq!(batch.records, 3);
        assert_eq!(batch.payload, logs(3));

        let spans = Payload::Spans(ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default(); 2],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        });
        let (_, batch) = decode(&encode("x", 2, 0, &spans, Compression::Gzip)).expect("decodes");
        assert_eq!(batch.payload, spans);

        use bellwether_proto::otlp::metrics::{Metric, ResourceMetrics, ScopeMetrics};
        let metrics = Payload::Metrics(ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "http.server.request.duration".into(),
                        ..Metric::default()
                    }],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        });
        let bytes = encode("m", 1, 0, &metrics, Compression::None);
        assert_eq!(bytes[4], KIND_METRICS);
        let (_, batch) = decode(&bytes).expect("decodes");
        assert_eq!(batch.payload, metrics);
    }

    #[test]
    fn encoded_form_carries_the_request_bytes() {
        let Payload::Logs(expected) = logs(3) else {
            unreachable!("logs")
        };
        let bytes = encode("pod:q:7", 3, 1234, &logs(3), Compression::None);
        let (header, batch) = decode_encoded(&bytes).expect("decodes");
        assert_eq!(header.records, 3);
        assert_eq!((batch.id.as_str(), batch.records), ("pod:q:7", 3));
        assert_eq!(
            (batch.kind, batch.compression),
            (Kind::Logs, Compression::None)
        );
        assert_eq!(batch.body.as_ref(), expected.encode_to_vec().as_slice());
        let mut damaged = bytes.clone();
        damaged[40] ^= 1;
        assert_eq!(decode_encoded(&damaged).err(), Some(DecodeError::Checksum));

        // Compressed: the stored body is the gzip of the request.
        let bytes = encode("pod:q:7", 3, 1234, &logs(3), Compression::Gzip);
        let (_, batch) = decode_encoded(&bytes).expect("decodes");
        assert_eq!(batch.compression, Compression::Gzip);
        assert_eq!(&batch.body[..2], &[0x1f, 0x8b], "gzip magic");
        assert_eq!(
            gunzip(&batch.body).expect("gunzips"),
            expected.encode_to_vec()
        );
    }

    #[test]
    fn compression_shrinks_repetitive_batches() {
        let plain = encode("i:q:1", 500, 0, &logs(500), Compression::None);
        let gzipped = encode("i:q:1", 500, 0, &logs(500), Compression::Gzip);
        assert!(
            gzipped.len() * 3 < plain.len(),
            "{} vs {}",
            gzipped.len(),
            plain.len()
        );
        let (_, batch) = decode(&gzipped).expect("decodes");
        assert_eq!(batch.payload, logs(500));
    }

    #[test]
    fn entries_of_the_first_format_still_decode() {
        let Payload::Logs(request) = logs(2) else {
            unreachable!("logs")
        };
        let body = request.encode_to_vec();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC_V1);
        bytes.push(KIND_LOGS);
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(&99u64.to_le_bytes());
        bytes.extend_from_slice(&3u16.to_le_bytes());
        bytes.extend_from_slice(b"a:1");
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&body);
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let (header, batch) = decode(&bytes).expect("decodes");
        assert_eq!((header.records, header.enqueued_unix_ms), (2, 99));
        assert_eq!((batch.id.as_str(), batch.payload), ("a:1", logs(2)));
        let (_, encoded) = decode_encoded(&bytes).expect("decodes");
        assert_eq!(encoded.compression, Compression::None);
    }

    #[test]
    fn a_gzip_bomb_is_refused() {
        let zeros = vec![0u8; (1 << 20) + 1];
        let body = gzip(&zeros).expect("compresses");
        assert!(matches!(
            gunzip_at_most(&body, 1 << 20),
            Err(DecodeError::Payload(_))
        ));
        assert_eq!(
            gunzip_at_most(&body[..], 2 << 20).map(|v| v.len()),
            Ok(zeros.len())
        );
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let bytes = encode("pod:q:7", 3, 1234, &logs(3), Compression::Gzip);
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x40;
            assert!(decode(&damaged).is_err(), "flip at {i} went unnoticed");
        }
        assert_eq!(decode(&bytes[..10]).err(), Some(DecodeError::Truncated));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
            let _ = header(&bytes);
        }
    }
}
