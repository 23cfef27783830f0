//! Protobuf decoding of OTLP export requests, as the receivers take them in.
//!
//! Logs are decoded by hand at the request, resource, scope and record levels. Every byte
//! is checked as prost checks it (field wire types, lengths, UTF-8 of strings, nesting
//! depth), but a record that is neither an error nor a feature-flag evaluation keeps only
//! its times and severity: that is
//! all [`summarize`](super::summarize) reads of it, and copying its body and attributes
//! into strings was most of the cost of a request. Error records, resources and scopes
//! are decoded by prost in full. Traces are decoded by prost.

use std::fmt;

use bellwether_proto::otlp::common::InstrumentationScope;
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::resource::Resource;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;
use prost::encoding::{decode_key, decode_varint, WireType};
use prost::Message;

use super::summarize::is_error_log;

/// How deep messages may nest, counted as prost counts.
const RECURSION_LIMIT: u32 = 100;

/// Why a request could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

impl From<prost::DecodeError> for WireError {
    fn from(e: prost::DecodeError) -> Self {
        WireError(e.to_string())
    }
}

fn error(what: &str) -> WireError {
    WireError(format!("failed to decode Protobuf message: {what}"))
}

type Result<T> = std::result::Result<T, WireError>;

/// An OTLP export request decoded from protobuf the way the receivers need it.
pub trait DecodeRequest: Sized {
    fn decode_request(bytes: &[u8]) -> Result<Self>;
}

impl DecodeRequest for ExportLogsServiceRequest {
    fn decode_request(bytes: &[u8]) -> Result<Self> {
        decode_logs(bytes)
    }
}

impl DecodeRequest for bellwether_proto::otlp::metrics_service::ExportMetricsServiceRequest {
    fn decode_request(bytes: &[u8]) -> Result<Self> {
        Ok(prost::Message::decode(bytes)?)
    }
}

impl DecodeRequest for ExportTraceServiceRequest {
    fn decode_request(bytes: &[u8]) -> Result<Self> {
        Ok(ExportTraceServiceRequest::decode(bytes)?)
    }
}

/// Decodes a logs export request; records that are not errors keep only their times,
/// severity number and (when the number is unset) severity text. Fails exactly where
/// prost would.
pub fn decode_logs(bytes: &[u8]) -> Result<ExportLogsServiceRequest> {
    let mut request = ExportLogsServiceRequest::default();
    let mut fields = Fields(bytes);
    while let Some((tag, wire)) = fields.next_key()? {
        match tag {
            1 => {
                let body = fields.message(wire)?;
                let depth = enter(RECURSION_LIMIT)?;
                request.resource_logs.push(resource_logs(body, depth)?);
            }
            _ => fields.skip(wire, tag, RECURSION_LIMIT)?,
        }
    }
    Ok(request)
}

fn resource_logs(bytes: &[u8], depth: u32) -> Result<ResourceLogs> {
    let (resource, scope_logs, schema_url) =
        container::<Resource, _>(bytes, depth, &RESOURCE, scope_logs)?;
    Ok(ResourceLogs {
        resource,
        scope_logs,
        schema_url,
    })
}

fn scope_logs(bytes: &[u8], depth: u32) -> Result<ScopeLogs> {
    let (scope, log_records, schema_url) =
        container::<InstrumentationScope, _>(bytes, depth, &SCOPE, log_record)?;
    Ok(ScopeLogs {
        scope,
        log_records,
        schema_url,
    })
}

/// `ResourceLogs` and `ScopeLogs` alike: field 1 a message (the resource, the scope) of
/// `schema`, checked at its depth, then decoded by prost; field 2 the repeated children
/// `child` decodes; field 3 a schema url.
fn container<M: Message + Default, C>(
    bytes: &[u8],
    depth: u32,
    schema: &Schema,
    child: fn(&[u8], u32) -> Result<C>,
) -> Result<(Option<M>, Vec<C>, String)> {
    let (mut head, mut children, mut schema_url) = (None, Vec::new(), String::new());
    let mut fields = Fields(bytes);
    while let Some((tag, wire)) = fields.next_key()? {
        match tag {
            1 => {
                let body = fields.message(wire)?;
                // prost starts counting depth afresh in `merge`: the check counts it
                // from here, as a decoding of the whole request would.
                check(body, enter(depth)?, schema)?;
                head.get_or_insert_with(M::default).merge(body)?;
            }
            2 => {
                let body = fields.message(wire)?;
                children.push(child(body, enter(depth)?)?);
            }
            3 => fields.string(wire)?.clone_into(&mut schema_url),
            _ => fields.skip(wire, tag, depth)?,
        }
    }
    Ok((head, children, schema_url))
}

/// The attribute whose presence makes a record a feature-flag evaluation, which
/// [`summarize`](super::summarize) reads in full (attributes and trace id).
const FLAG_KEY: &str = "feature_flag.key";

/// Whether the `KeyValue` message `bytes` has the key [`FLAG_KEY`].
fn is_flag_key(bytes: &[u8], depth: u32) -> Result<bool> {
    let mut fields = Fields(bytes);
    while let Some((tag, wire)) = fields.next_key()? {
        if tag == 1 {
            return Ok(fields.string(wire)? == FLAG_KEY);
        }
        fields.skip(wire, tag, depth)?;
    }
    Ok(false)
}

/// Checks the whole record; an error record or a flag evaluation is then decoded in
/// full, any other keeps its times and severity.
fn log_record(bytes: &[u8], depth: u32) -> Result<LogRecord> {
    let mut slim = LogRecord::default();
    let mut severity_text = "";
    let mut flag = false;
    let mut fields = Fields(bytes);
    while let Some((tag, wire)) = fields.next_key()? {
        match tag {
            1 => slim.time_unix_nano = fields.fixed64(wire)?,
            11 => slim.observed_time_unix_nano = fields.fixed64(wire)?,
            // An enum is an int32 on the wire; prost keeps the low 32 bits.
            2 => slim.severity_number = fields.varint(wire)? as i32,
            3 => severity_text = fields.string(wire)?,
            5 => check(fields.message(wire)?, enter(depth)?, &ANY_VALUE)?,
            6 => {
                let attribute = fields.message(wire)?;
                check(attribute, enter(depth)?, &KEY_VALUE)?;
                flag = flag || is_flag_key(attribute, enter(depth)?)?;
            }
            7 => {
                fields.varint(wire)?;
            }
            8 => {
                fields.fixed32(wire)?;
            }
            9 | 10 => {
                fields.message(wire)?;
            }
            12 => {
                fields.string(wire)?;
            }
            _ => fields.skip(wire, tag, depth)?,
        }
    }
    if slim.severity_number == 0 {
        slim.severity_text = severity_text.to_owned();
    }
    if flag || is_error_log(&slim) {
        return Ok(LogRecord::decode(bytes)?);
    }
    Ok(slim)
}

/// What a field of a message holds, as far as checking it goes.
#[derive(Clone, Copy)]
enum Field {
    String,
    Varint,
    Fixed64,
    Bytes,
    /// A message, one level deeper.
    Message(&'static Schema),
}

/// The fields of a message that are checked; any other is skipped as unknown.
struct Schema(&'static [(u32, Field)]);

/// `opentelemetry.proto.resource.v1.Resource`.
static RESOURCE: Schema = Schema(&[
    (1, Field::Message(&KEY_VALUE)),
    (2, Field::Varint),
    (3, Field::Message(&ENTITY_REF)),
]);
/// `opentelemetry.proto.common.v1.EntityRef`.
static ENTITY_REF: Schema = Schema(&[
    (1, Field::String),
    (2, Field::String),
    (3, Field::String),
    (4, Field::String),
]);
/// `opentelemetry.proto.common.v1.InstrumentationScope`.
static SCOPE: Schema = Schema(&[
    (1, Field::String),
    (2, Field::String),
    (3, Field::Message(&KEY_VALUE)),
    (4, Field::Varint),
]);
/// `opentelemetry.proto.common.v1.AnyValue`.
static ANY_VALUE: Schema = Schema(&[
    (1, Field::String),
    (2, Field::Varint),
    (3, Field::Varint),
    (4, Field::Fixed64),
    (5, Field::Message(&ARRAY_VALUE)),
    (6, Field::Message(&KEY_VALUE_LIST)),
    (7, Field::Bytes),
    (8, Field::Varint),
]);
/// `opentelemetry.proto.common.v1.ArrayValue`.
static ARRAY_VALUE: Schema = Schema(&[(1, Field::Message(&ANY_VALUE))]);
/// `opentelemetry.proto.common.v1.KeyValueList`.
static KEY_VALUE_LIST: Schema = Schema(&[(1, Field::Message(&KEY_VALUE))]);
/// `opentelemetry.proto.common.v1.KeyValue`.
static KEY_VALUE: Schema = Schema(&[
    (1, Field::String),
    (2, Field::Message(&ANY_VALUE)),
    (3, Field::Varint),
]);

/// Checks a message of `schema` whose fields are at `depth`, keeping nothing.
fn check(bytes: &[u8], depth: u32, schema: &Schema) -> Result<()> {
    let mut fields = Fields(bytes);
    while let Some((tag, wire)) = fields.next_key()? {
        let field = schema.0.iter().find(|(t, _)| *t == tag).map(|(_, f)| *f);
        match field {
            Some(Field::String) => {
                fields.string(wire)?;
            }
            Some(Field::Varint) => {
                fields.varint(wire)?;
            }
            Some(Field::Fixed64) => {
                fields.fixed64(wire)?;
            }
            Some(Field::Bytes) => {
                fields.message(wire)?;
            }
            Some(Field::Message(inner)) => check(fields.message(wire)?, enter(depth)?, inner)?,
            None => fields.skip(wire, tag, depth)?,
        }
    }
    Ok(())
}

/// The depth left inside a nested message, or an error past the limit.
fn enter(depth: u32) -> Result<u32> {
    depth
        .checked_sub(1)
        .ok_or_else(|| error("recursion limit reached"))
}

/// The fields of one message, read front to back.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn next_key(&mut self) -> Result<Option<(u32, WireType)>> {
        if self.0.is_empty() {
            return Ok(None);
        }
        Ok(Some(decode_key(&mut self.0)?))
    }

    fn expect(wire: WireType, expected: WireType) -> Result<()> {
        if wire == expected {
            Ok(())
        } else {
            Err(error(&format!(
                "invalid wire type: {wire:?} (expected {expected:?})"
            )))
        }
    }

    fn varint(&mut self, wire: WireType) -> Result<u64> {
        Self::expect(wire, WireType::Varint)?;
        Ok(decode_varint(&mut self.0)?)
    }

    fn fixed64(&mut self, wire: WireType) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.fixed(wire, WireType::SixtyFourBit)?,
        ))
    }

    fn fixed32(&mut self, wire: WireType) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.fixed(wire, WireType::ThirtyTwoBit)?,
        ))
    }

    /// The `N` bytes of a fixed-width field.
    fn fixed<const N: usize>(&mut self, wire: WireType, expected: WireType) -> Result<[u8; N]> {
        Self::expect(wire, expected)?;
        self.take()
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let (bytes, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or_else(|| error("buffer underflow"))?;
        self.0 = rest;
        Ok(*bytes)
    }

    /// A length-delimited field: a message, bytes or a string before its UTF-8 check.
    fn message(&mut self, wire: WireType) -> Result<&'a [u8]> {
        Self::expect(wire, WireType::LengthDelimited)?;
        let len = decode_varint(&mut self.0)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= self.0.len())
            .ok_or_else(|| error("buffer underflow"))?;
        let (body, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(body)
    }

    fn string(&mut self, wire: WireType) -> Result<&'a str> {
        std::str::from_utf8(self.message(wire)?)
            .map_err(|_| error("invalid string value: data is not UTF-8 encoded"))
    }

    /// Skips an unknown field of a message whose fields are at `depth`, as prost does:
    /// not at all at depth 0, and groups one level deeper.
    fn skip(&mut self, wire: WireType, tag: u32, depth: u32) -> Result<()> {
        if depth == 0 {
            return Err(error("recursion limit reached"));
        }
        match wire {
            WireType::Varint => {
                decode_varint(&mut self.0)?;
            }
            WireType::SixtyFourBit => {
                self.take::<8>()?;
            }
            WireType::ThirtyTwoBit => {
                self.take::<4>()?;
            }
            WireType::LengthDelimited => {
                self.message(wire)?;
            }
            WireType::StartGroup => loop {
                let (inner, inner_wire) =
                    self.next_key()?.ok_or_else(|| error("buffer underflow"))?;
                if inner_wire == WireType::EndGroup {
                    if inner != tag {
                        return Err(error("unexpected end group tag"));
                    }
                    break;
                }
                self.skip(inner_wire, inner, depth - 1)?;
            },
            WireType::EndGroup => return Err(error("unexpected end group tag")),
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
