//! JSON-object lines.

use bellwether_proto::otlp::common::{
    any_value::Value, AnyValue, ArrayValue, KeyValue, KeyValueList,
};
use bellwether_proto::otlp::logs::LogRecord;
use serde_json::Map;

use super::{severity, time};
use crate::otlp::kv;

const BODY_KEYS: [&str; 4] = ["message", "msg", "body", "log"];
const LEVEL_KEYS: [&str; 3] = ["level", "severity", "lvl"];
const TIME_KEYS: [&str; 4] = ["time", "timestamp", "ts", "@timestamp"];
const TRACE_ID_KEYS: [&str; 2] = ["trace_id", "traceId"];
const SPAN_ID_KEYS: [&str; 2] = ["span_id", "spanId"];

/// Fills `record` from a JSON object line; `false` when the line is not a JSON object.
/// Fields used for the body, severity, time and ids are not repeated as attributes.
pub(super) fn parse(line: &str, record: &mut LogRecord) -> bool {
    let Ok(mut object) = serde_json::from_str::<Map<String, serde_json::Value>>(line) else {
        return false;
    };

    let body = BODY_KEYS.iter().find_map(|key| object.remove(*key));
    record.body = Some(match body {
        Some(serde_json::Value::String(text)) => AnyValue {
            value: Some(Value::StringValue(text)),
        },
        Some(other) => to_any_value(other),
        None => AnyValue {
            value: Some(Value::StringValue(line.to_owned())),
        },
    });

    if let Some(sev) = take_first(&mut object, &LEVEL_KEYS, |v| match v {
        serde_json::Value::String(text) => severity::from_field_text(text),
        serde_json::Value::Number(n) => n.as_i64().and_then(severity::from_field_number),
        _ => None,
    }) {
        record.severity_number = sev.number;
        record.severity_text = sev.text;
    }

    if let Some(nanos) = take_first(&mut object, &TIME_KEYS, |v| match v {
        serde_json::Value::String(text) => time::parse_timestamp_text(text),
        serde_json::Value::Number(n) => n
            .as_u64()
            .and_then(time::from_unix_integer)
            .or_else(|| n.as_f64().and_then(time::from_unix_float)),
        _ => None,
    }) {
        record.time_unix_nano = nanos;
    }

    if let Some(id) = take_first(&mut object, &TRACE_ID_KEYS, |v| hex_id(v, 16)) {
        record.trace_id = id;
    }
    if let Some(id) = take_first(&mut object, &SPAN_ID_KEYS, |v| hex_id(v, 8)) {
        record.span_id = id;
    }

    for (key, value) in object {
        flatten(key, value, &mut record.attributes);
    }
    true
}

/// Removes and converts the first of `keys` whose value `convert` accepts; values it
/// rejects stay in the object and so are kept as attributes.
fn take_first<T>(
    object: &mut Map<String, serde_json::Value>,
    keys: &[&str],
    convert: impl Fn(&serde_json::Value) -> Option<T>,
) -> Option<T> {
    for key in keys {
        if let Some(converted) = object.get(*key).and_then(&convert) {
            object.remove(*key);
            return Some(converted);
        }
    }
    None
}

/// A non-zero id of `len` bytes written in hex.
fn hex_id(value: &serde_json::Value, len: usize) -> Option<Vec<u8>> {
    let text = value.as_str()?.trim();
    if text.len() != len * 2 || !text.is_ascii() {
        return None;
    }
    let bytes = (0..len)
        .map(|i| u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    bytes.iter().any(|b| *b != 0).then_some(bytes)
}

fn flatten(key: String, value: serde_json::Value, out: &mut Vec<KeyValue>) {
    match value {
        serde_json::Value::Null => {}
        serde_json::Value::Object(map) => {
            for (child, value) in map {
                flatten(format!("{key}.{child}"), value, out);
            }
        }
        other => out.push(kv(key, to_value(other))),
    }
}

fn to_any_value(value: serde_json::Value) -> AnyValue {
    AnyValue {
        value: Some(to_value(value)),
    }
}

fn to_value(value: serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::StringValue(String::new()),
        serde_json::Value::Bool(b) => Value::BoolValue(b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::IntValue)
            .or_else(|| n.as_f64().map(Value::DoubleValue))
            .unwrap_or_else(|| Value::StringValue(n.to_string())),
        serde_json::Value::String(s) => Value::StringValue(s),
        serde_json::Value::Array(items) => Value::ArrayValue(ArrayValue {
            values: items.into_iter().map(to_any_value).collect(),
        }),
        serde_json::Value::Object(map) => Value::KvlistValue(KeyValueList {
            values: map
                .into_iter()
                .map(|(k, v)| KeyValue {
                    key: k,
                    value: Some(to_any_value(v)),
                    ..KeyValue::default()
                })
                .collect(),
        }),
    }
}
