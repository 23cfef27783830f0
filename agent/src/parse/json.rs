//! JSON-object lines.
//!
//! serde_json reads the line (so what counts as valid JSON, numbers, escapes and the
//! nesting limit are exactly serde_json's), but into a small tree that borrows its
//! strings from the line instead of a `serde_json::Value`: only escaped strings are
//! copied, and each string is copied once more at most, into the record. Lines of the
//! plainest shape are read by [`fast`] first, which gives up on anything else.
//!
//! Objects behave like `serde_json::Map`: keys in byte order, and a repeated key keeps
//! its last value.

mod fast;

use std::borrow::Cow;
use std::fmt;

use bellwether_proto::otlp::common::{
    any_value::Value, AnyValue, ArrayValue, KeyValue, KeyValueList,
};
use bellwether_proto::otlp::logs::LogRecord;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use super::{severity, time};
use crate::otlp::kv;

const BODY_KEYS: [&str; 6] = ["message", "msg", "body", "log", "@m", "@mt"];
const LEVEL_KEYS: [&str; 6] = ["level", "severity", "lvl", "levelname", "@l", "log.level"];
const TIME_KEYS: [&str; 5] = ["time", "timestamp", "ts", "@timestamp", "@t"];
const TRACE_ID_KEYS: [&str; 2] = ["trace_id", "traceId"];
const SPAN_ID_KEYS: [&str; 2] = ["span_id", "spanId"];

/// Fields a typical log line has; the top-level object starts with room for them.
const TYPICAL_FIELDS: usize = 8;

/// Fills `record` from a JSON object line; `false` when the line is not a JSON object.
/// Fields used for the body, severity, time and ids are not repeated as attributes.
/// Without a body field, `record.body` is left unset for the caller to fill with the
/// line itself.
pub(super) fn parse(line: &str, record: &mut LogRecord) -> bool {
    let mut object = match fast::object(line) {
        Some(object) => object,
        None => match serde_json::from_str::<TopLevel<'_>>(line) {
            Ok(TopLevel(object)) => object,
            Err(_) => return false,
        },
    };
    let known = Known::find(&object);

    if let Some(body) = known.body.iter().flatten().next() {
        record.body = Some(AnyValue {
            value: Some(to_value(object.take(*body))),
        });
    }

    if let Some(sev) = object.take_first(&known.level, |v| match v {
        Json::String(text) => severity::from_field_text(text),
        Json::Number(n) => n.as_i64().and_then(severity::from_field_number),
        _ => None,
    }) {
        record.severity_number = sev.number;
        record.severity_text = sev.text;
    }

    if let Some(nanos) = object.take_first(&known.time, |v| match v {
        Json::String(text) => time::parse_timestamp_text(text),
        Json::Number(n) => n
            .as_u64()
            .and_then(time::from_unix_integer)
            .or_else(|| n.as_f64().and_then(time::from_unix_float)),
        _ => None,
    }) {
        record.time_unix_nano = nanos;
    }

    if let Some(id) = object.take_first(&known.trace_id, |v| hex_id(v, 16)) {
        record.trace_id = id;
    }
    if let Some(id) = object.take_first(&known.span_id, |v| hex_id(v, 8)) {
        record.span_id = id;
    }

    // One more than the members: a source may add an attribute of its own (the exec
    // wrapper's stream), which would otherwise double the allocation.
    record.attributes.reserve_exact(object.0.len() + 1);
    for (key, value) in object.0 {
        flatten(key, value, &mut record.attributes);
    }
    true
}

/// Where the fields with a meaning of their own are among an object's members: for each
/// kind, the member index of each of its keys, in the order of the key lists above.
#[derive(Debug, Default, PartialEq)]
struct Known {
    body: [Option<usize>; BODY_KEYS.len()],
    level: [Option<usize>; LEVEL_KEYS.len()],
    time: [Option<usize>; TIME_KEYS.len()],
    trace_id: [Option<usize>; TRACE_ID_KEYS.len()],
    span_id: [Option<usize>; SPAN_ID_KEYS.len()],
}

impl Known {
    /// One pass over the keys; a `match` on them compiles to a few length and word
    /// compares, much cheaper than searching the object for each known key.
    fn find(object: &Object<'_>) -> Known {
        let mut known = Known::default();
        for (index, (key, _)) in object.0.iter().enumerate() {
            let slot = match &**key {
                "message" => &mut known.body[0],
                "msg" => &mut known.body[1],
                "body" => &mut known.body[2],
                "log" => &mut known.body[3],
                "@m" => &mut known.body[4],
                "@mt" => &mut known.body[5],
                "level" => &mut known.level[0],
                "severity" => &mut known.level[1],
                "lvl" => &mut known.level[2],
                "levelname" => &mut known.level[3],
                "@l" => &mut known.level[4],
                "log.level" => &mut known.level[5],
                "time" => &mut known.time[0],
                "timestamp" => &mut known.time[1],
                "ts" => &mut known.time[2],
                "@timestamp" => &mut known.time[3],
                "@t" => &mut known.time[4],
                "trace_id" => &mut known.trace_id[0],
                "traceId" => &mut known.trace_id[1],
                "span_id" => &mut known.span_id[0],
                "spanId" => &mut known.span_id[1],
                _ => continue,
            };
            *slot = Some(index);
        }
        known
    }
}

/// A parsed JSON value; strings borrow from the line unless they held escapes.
#[derive(Debug, Clone, PartialEq)]
enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// A JSON object's members, sorted by key, each key once (its last value).
#[derive(Debug, Clone, PartialEq, Default)]
struct Object<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Object<'a> {
    fn from_members(mut members: Vec<(Cow<'a, str>, Json<'a>)>) -> Self {
        // A stable sort keeps repeated keys in input order, so the last one is the
        // value to keep, as a map insert would.
        // Keys mostly differ in their first byte; comparing it first saves a call to
        // `memcmp` per comparison.
        members.sort_by(|(a, _), (b, _)| {
            a.as_bytes()
                .first()
                .cmp(&b.as_bytes().first())
                .then_with(|| a.cmp(b))
        });
        members.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        Object(members)
    }

    /// Takes the value of member `index`. The member stays behind as a null, which the
    /// attribute pass skips like any other null; no member is taken twice.
    fn take(&mut self, index: usize) -> Json<'a> {
        self.0.get_mut(index).map_or(Json::Null, |(_, value)| {
            std::mem::replace(value, Json::Null)
        })
    }

    /// Takes and converts the first of `members` (indexes, in order of preference) whose
    /// value `convert` accepts; values it rejects stay and so are kept as attributes.
    fn take_first<T>(
        &mut self,
        members: &[Option<usize>],
        convert: impl Fn(&Json<'a>) -> Option<T>,
    ) -> Option<T> {
        for index in members.iter().flatten() {
            if let Some((_, value)) = self.0.get_mut(*index) {
                if let Some(converted) = convert(value) {
                    *value = Json::Null;
                    return Some(converted);
                }
            }
        }
        None
    }
}

/// A non-zero id of `len` bytes written in hex.
fn hex_id(value: &Json<'_>, len: usize) -> Option<Vec<u8>> {
    let Json::String(text) = value else {
        return None;
    };
    let text = text.trim();
    if text.len() != len * 2 || !text.is_ascii() {
        return None;
    }
    let bytes = (0..len)
        .map(|i| u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    bytes.iter().any(|b| *b != 0).then_some(bytes)
}

/// Attributes of one member: nested objects become dotted keys, nulls are dropped.
fn flatten(key: Cow<'_, str>, value: Json<'_>, out: &mut Vec<KeyValue>) {
    match value {
        Json::Null => {}
        Json::Object(object) => {
            for (child, value) in object.0 {
                let mut nested = String::with_capacity(key.len() + 1 + child.len());
                nested.push_str(&key);
                nested.push('.');
                nested.push_str(&child);
                flatten(Cow::Owned(nested), value, out);
            }
        }
        other => out.push(kv(key.into_owned(), to_value(other))),
    }
}

fn to_any_value(value: Json<'_>) -> AnyValue {
    AnyValue {
        value: Some(to_value(value)),
    }
}

fn to_value(value: Json<'_>) -> Value {
    match value {
        Json::Null => Value::StringValue(String::new()),
        Json::Bool(b) => Value::BoolValue(b),
        Json::Number(n) => n
            .as_i64()
            .map(Value::IntValue)
            .or_else(|| n.as_f64().map(Value::DoubleValue))
            .unwrap_or_else(|| Value::StringValue(n.to_string())),
        Json::String(s) => Value::StringValue(s.into_owned()),
        Json::Array(items) => Value::ArrayValue(ArrayValue {
            values: items.into_iter().map(to_any_value).collect(),
        }),
        Json::Object(object) => Value::KvlistValue(KeyValueList {
            values: object
                .0
                .into_iter()
                .map(|(k, v)| KeyValue {
                    key: k.into_owned(),
                    value: Some(to_any_value(v)),
                    ..KeyValue::default()
                })
                .collect(),
        }),
    }
}

/// The line's object; anything else (an array, a string, …) fails to deserialize.
struct TopLevel<'a>(Object<'a>);

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(ObjectVisitor {
                capacity: TYPICAL_FIELDS,
            })
            .map(TopLevel)
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Ok(Number::from_f64(value).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Borrowed(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(value)))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        Deserialize::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        ObjectVisitor { capacity: 0 }
            .visit_map(map)
            .map(Json::Object)
    }
}

struct ObjectVisitor {
    capacity: usize,
}

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Object<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(self.capacity);
        while let Some(Key(key)) = map.next_key()? {
            let value = map.next_value()?;
            members.push((key, value));
        }
        Ok(Object::from_members(members))
    }
}

/// An object key, borrowed unless it held escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(value)))
    }
}

#[cfg(test)]
mod tests;
