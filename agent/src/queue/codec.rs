//! On-disk form of one queued batch.
//!
//! ```text
//! magic "BWQ1" | kind u8 | records u32 | enqueued_unix_ms u64 | id_len u16 | id
//!              | payload_len u32 | payload (protobuf export request) | crc32 u32
//! ```
//!
//! Integers are little-endian; the CRC32 covers every byte before it, so a damaged id,
//! count or payload is detected before the batch is sent anywhere.

use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;
use prost::Message;

use crate::pipeline::{Batch, EncodedBatch, Kind, Payload};

const MAGIC: &[u8; 4] = b"BWQ1";
/// Bytes around the id and payload: magic, kind, records, time, id length, payload
/// length, checksum.
const OVERHEAD: usize = 4 + 1 + 4 + 8 + 2 + 4 + 4;

const KIND_LOGS: u8 = 1;
const KIND_SPANS: u8 = 2;

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

/// Encodes a batch; `id` is the batch id it will carry on every send.
pub fn encode(id: &str, records: u32, enqueued_unix_ms: u64, payload: &Payload) -> Vec<u8> {
    let (kind, body_len) = match payload {
        Payload::Logs(request) => (KIND_LOGS, request.encoded_len()),
        Payload::Spans(request) => (KIND_SPANS, request.encoded_len()),
    };
    // Ids are built at most 256 bytes long; cut defensively so the length fits.
    let id = &id.as_bytes()[..id.len().min(u16::MAX as usize)];
    let mut out = Vec::with_capacity(OVERHEAD + id.len() + body_len);
    out.extend_from_slice(MAGIC);
    out.push(kind);
    out.extend_from_slice(&records.to_le_bytes());
    out.extend_from_slice(&enqueued_unix_ms.to_le_bytes());
    out.extend_from_slice(&(id.len() as u16).to_le_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes());
    match payload {
        Payload::Logs(request) => request.encode_raw(&mut out),
        Payload::Spans(request) => request.encode_raw(&mut out),
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks the checksum and reads the header, without decoding the payload.
pub fn header(bytes: &[u8]) -> Result<Header, DecodeError> {
    Ok(split(bytes)?.header)
}

/// Decodes a whole entry back into a batch.
pub fn decode(bytes: &[u8]) -> Result<(Header, Batch), DecodeError> {
    let parts = split(bytes)?;
    let payload = match parts.kind {
        KIND_LOGS => Payload::Logs(
            ExportLogsServiceRequest::decode(parts.payload)
                .map_err(|e| DecodeError::Payload(e.to_string()))?,
        ),
        KIND_SPANS => Payload::Spans(
            ExportTraceServiceRequest::decode(parts.payload)
                .map_err(|e| DecodeError::Payload(e.to_string()))?,
        ),
        other => return Err(DecodeError::Kind(other)),
    };
    let batch = Batch {
        id: parts.id.to_owned(),
        records: parts.header.records as usize,
        payload,
    };
    Ok((parts.header, batch))
}

/// Reads an entry without decoding its payload: the exporter sends the protobuf bytes
/// as they were queued. The checksum covers them, so a damaged payload is found here too.
pub fn decode_encoded(bytes: &[u8]) -> Result<(Header, EncodedBatch), DecodeError> {
    let parts = split(bytes)?;
    let kind = match parts.kind {
        KIND_LOGS => Kind::Logs,
        KIND_SPANS => Kind::Spans,
        other => return Err(DecodeError::Kind(other)),
    };
    let batch = EncodedBatch {
        id: parts.id.to_owned(),
        records: parts.header.records as usize,
        kind,
        body: bytes::Bytes::copy_from_slice(parts.payload),
    };
    Ok((parts.header, batch))
}

struct Parts<'a> {
    header: Header,
    kind: u8,
    id: &'a str,
    payload: &'a [u8],
}

fn split(bytes: &[u8]) -> Result<Parts<'_>, DecodeError> {
    if bytes.len() < OVERHEAD {
        return Err(DecodeError::Truncated);
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(DecodeError::Checksum);
    }
    let mut reader = Reader(body);
    if reader.take(4)? != MAGIC {
        return Err(DecodeError::Magic);
    }
    let kind = reader.take(1)?[0];
    if kind != KIND_LOGS && kind != KIND_SPANS {
        return Err(DecodeError::Kind(kind));
    }
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
    fn round_trips_logs_and_spans() {
        let bytes = encode("pod:q:7", 3, 1234, &logs(3));
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
        let (_, batch) = decode(&encode("x", 2, 0, &spans)).expect("decodes");
        assert_eq!(batch.payload, spans);
    }

    #[test]
    fn encoded_form_carries_the_request_bytes() {
        let bytes = encode("pod:q:7", 3, 1234, &logs(3));
        let (header, batch) = decode_encoded(&bytes).expect("decodes");
        assert_eq!(header.records, 3);
        assert_eq!((batch.id.as_str(), batch.records), ("pod:q:7", 3));
        assert_eq!(batch.kind, Kind::Logs);
        let Payload::Logs(expected) = logs(3) else {
            unreachable!("logs")
        };
        assert_eq!(batch.body.as_ref(), expected.encode_to_vec().as_slice());
        let mut damaged = bytes.clone();
        damaged[40] ^= 1;
        assert_eq!(decode_encoded(&damaged).err(), Some(DecodeError::Checksum));
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let bytes = encode("pod:q:7", 3, 1234, &logs(3));
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
