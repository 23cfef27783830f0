//! Small helpers over the OTLP types shared by the sources, the tagger and the exporter.

use bellwether_proto::otlp::common::{any_value::Value, AnyValue, KeyValue};
use bellwether_proto::otlp::logs::ResourceLogs;
use bellwether_proto::otlp::trace::ResourceSpans;

/// A string-valued attribute.
pub fn string_kv(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(value.into()))
}

/// An attribute with any value.
pub fn kv(key: impl Into<String>, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// A string body or attribute value.
pub fn string_value(value: impl Into<String>) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(value.into())),
    }
}

/// The string form of a value when it is a string.
pub fn as_str(value: Option<&AnyValue>) -> Option<&str> {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// Number of log records in a set of resource logs.
pub fn log_record_count(resource_logs: &[ResourceLogs]) -> usize {
    resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

/// Number of spans in a set of resource spans.
pub fn span_count(resource_spans: &[ResourceSpans]) -> usize {
    resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
