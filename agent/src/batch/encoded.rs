//! Log records held in their protobuf form between tagging and the queue.
//!
//! A decoded `LogRecord` takes about five times its encoded size in memory, in a dozen
//! allocations. The pipeline encodes each record once, as soon as its resource is tagged,
//! and from then on batches, splits and sizes plain bytes: a batch's request is its
//! resources' and scopes' fields around the records' bytes, copied as they are.

use bellwether_proto::otlp::common::{InstrumentationScope, KeyValue};
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs};
use bellwether_proto::otlp::resource::Resource;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;

use super::ResourceBatch;

/// `ScopeLogs.log_records`.
const LOG_RECORDS: u32 = 2;
/// `LogRecord.attributes`.
const LOG_ATTRIBUTES: u32 = 6;

/// The log records of one resource and one scope, each encoded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EncodedLogs {
    pub resource: Option<Resource>,
    /// `ResourceLogs.schema_url`.
    pub schema_url: String,
    pub scope: Option<InstrumentationScope>,
    /// `ScopeLogs.schema_url`.
    pub scope_schema_url: String,
    /// Each record as a `ScopeLogs.log_records` field (key, length, message), in order.
    records: Vec<u8>,
    /// Where each record's field ends in `records`.
    ends: Vec<usize>,
}

impl EncodedLogs {
    /// One value for each scope of `item` that has records, which are encoded and
    /// dropped. `capacity` is a guess at the encoded size of all of them, shared out
    /// among the scopes.
    pub fn encode(item: ResourceLogs, capacity: usize) -> Vec<EncodedLogs> {
        let ResourceLogs {
            resource,
            scope_logs,
            schema_url,
        } = item;
        let capacity = capacity / scope_logs.len().max(1);
        let mut out: Vec<EncodedLogs> = Vec::with_capacity(scope_logs.len());
        for scope_logs in scope_logs {
            if scope_logs.log_records.is_empty() {
                continue;
            }
            let mut encoded = EncodedLogs::new(resource.clone(), scope_logs.scope, capacity);
            encoded.schema_url.clone_from(&schema_url);
            encoded.scope_schema_url = scope_logs.schema_url;
            encoded.ends.reserve_exact(scope_logs.log_records.len());
            for record in scope_logs.log_records {
                encoded.push(&record, &[]);
            }
            out.push(encoded);
        }
        out
    }

    /// No records yet, of `resource` and `scope`; room for `capacity` encoded bytes.
    pub fn new(
        resource: Option<Resource>,
        scope: Option<InstrumentationScope>,
        capacity: usize,
    ) -> Self {
        EncodedLogs {
            resource,
            scope,
            records: Vec::with_capacity(capacity),
            ..EncodedLogs::default()
        }
    }

    /// Appends `record` followed by `extra`: `LogRecord` fields already encoded (see
    /// [`attribute_field`]), as if the record held them after its own. The record can be
    /// dropped at once: only its bytes are kept.
    pub fn push(&mut self, record: &LogRecord, extra: &[u8]) {
        header(
            LOG_RECORDS,
            record.encoded_len() + extra.len(),
            &mut self.records,
        );
        record.encode_raw(&mut self.records);
        self.records.extend_from_slice(extra);
        self.ends.push(self.records.len());
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Size of the `ScopeLogs` message.
    fn scope_logs_len(&self) -> usize {
        self.scope
            .as_ref()
            .map_or(0, |s| field_len(1, s.encoded_len()))
            + self.records.len()
            + string_len(3, &self.scope_schema_url)
    }

    /// Writes this as a `ResourceLogs` message of `len` bytes (see
    /// [`ResourceBatch::batch_len`]), without its own key and length.
    fn encode_raw(&self, out: &mut Vec<u8>) {
        if let Some(resource) = &self.resource {
            header(1, resource.encoded_len(), out);
            resource.encode_raw(out);
        }
        header(2, self.scope_logs_len(), out);
        if let Some(scope) = &self.scope {
            header(1, scope.encoded_len(), out);
            scope.encode_raw(out);
        }
        out.extend_from_slice(&self.records);
        string_field(3, &self.scope_schema_url, out);
        string_field(3, &self.schema_url, out);
    }
}

impl ResourceBatch for EncodedLogs {
    fn count(&self) -> usize {
        self.len()
    }

    /// Size of the `ResourceLogs` message.
    fn batch_len(&self) -> usize {
        self.resource
            .as_ref()
            .map_or(0, |r| field_len(1, r.encoded_len()))
            + field_len(2, self.scope_logs_len())
            + string_len(3, &self.schema_url)
    }

    fn split_front(&mut self, n: usize) -> Self {
        let n = n.min(self.ends.len());
        let cut = n.checked_sub(1).map_or(0, |last| self.ends[last]);
        let rest = self.records.split_off(cut);
        let records = std::mem::replace(&mut self.records, rest);
        let rest_ends: Vec<usize> = self.ends[n..].iter().map(|end| end - cut).collect();
        let mut ends = std::mem::replace(&mut self.ends, rest_ends);
        ends.truncate(n);
        EncodedLogs {
            resource: self.resource.clone(),
            schema_url: self.schema_url.clone(),
            scope: self.scope.clone(),
            scope_schema_url: self.scope_schema_url.clone(),
            records,
            ends,
        }
    }

    fn resource_mut(&mut self) -> &mut Option<Resource> {
        &mut self.resource
    }

    fn shared_len(&self) -> usize {
        self.batch_len() - self.records.len()
    }
}

/// `attribute` as a `LogRecord.attributes` field, for [`EncodedLogs::push`]: a record
/// followed by it decodes as the record with `attribute` added last.
pub fn attribute_field(attribute: &KeyValue) -> Vec<u8> {
    let mut out = Vec::new();
    header(LOG_ATTRIBUTES, attribute.encoded_len(), &mut out);
    attribute.encode_raw(&mut out);
    out
}

/// `items` as an encoded `ExportLogsServiceRequest`, each as one `ResourceLogs`.
pub fn encode_request(items: &[EncodedLogs]) -> Vec<u8> {
    let lens: Vec<usize> = items.iter().map(ResourceBatch::batch_len).collect();
    let mut out = Vec::with_capacity(lens.iter().map(|len| field_len(1, *len)).sum());
    for (item, len) in items.iter().zip(lens) {
        header(1, len, &mut out);
        item.encode_raw(&mut out);
    }
    out
}

/// Size of a length-delimited field holding `len` bytes.
fn field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn header(tag: u32, len: usize, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

fn string_field(tag: u32, value: &str, out: &mut Vec<u8>) {
    if !value.is_empty() {
        header(tag, value.len(), out);
        out.extend_from_slice(value.as_bytes());
    }
}

fn string_len(tag: u32, value: &str) -> usize {
    if value.is_empty() {
        0
    } else {
        field_len(tag, value.len())
    }
}

#[cfg(test)]
#[path = "encoded_tests.rs"]
mod tests;
