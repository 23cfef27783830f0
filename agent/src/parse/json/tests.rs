use bellwether_proto::otlp::common::any_value::Value;
use proptest::prelude::*;

use super::*;
use crate::otlp::string_value;

/// The JSON parser as first written (into a `serde_json::Value` map, then flattened): the
/// model the borrowed parser must agree with.
mod reference {
    use bellwether_proto::otlp::common::{
        any_value::Value, AnyValue, ArrayValue, KeyValue, KeyValueList,
    };
    use bellwether_proto::otlp::logs::LogRecord;
    use serde_json::Map;

    use super::super::{
        severity, time, BODY_KEYS, LEVEL_KEYS, SPAN_ID_KEYS, TIME_KEYS, TRACE_ID_KEYS,
    };
    use crate::otlp::kv;

    pub fn parse(line: &str, record: &mut LogRecord) -> bool {
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
}

/// [`parse`] with the caller's body fallback, as `parse_text` does it.
fn parsed(line: &str) -> Option<LogRecord> {
    let mut record = LogRecord::default();
    if !parse(line, &mut record) {
        return None;
    }
    if record.body.is_none() {
        record.body = Some(string_value(line));
    }
    Some(record)
}

fn expected(line: &str) -> Option<LogRecord> {
    let mut record = LogRecord::default();
    reference::parse(line, &mut record).then_some(record)
}

fn keys(record: &LogRecord) -> Vec<&str> {
    record.attributes.iter().map(|kv| kv.key.as_str()).collect()
}

fn attr<'a>(record: &'a LogRecord, key: &str) -> Option<&'a Value> {
    record
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

#[test]
fn known_members_follow_the_key_lists() {
    let lists: [&[&str]; 5] = [
        &BODY_KEYS,
        &LEVEL_KEYS,
        &TIME_KEYS,
        &TRACE_ID_KEYS,
        &SPAN_ID_KEYS,
    ];
    for (list, keys) in lists.iter().enumerate() {
        for (rank, key) in keys.iter().enumerate() {
            let object = Object::from_members(vec![
                (Cow::Borrowed("other"), Json::Null),
                (Cow::Borrowed(*key), Json::Bool(true)),
                (Cow::Borrowed("Msg"), Json::Null),
            ]);
            let index = object.0.iter().position(|(k, _)| k == key);
            let mut want = Known::default();
            match list {
                0 => want.body[rank] = index,
                1 => want.level[rank] = index,
                2 => want.time[rank] = index,
                3 => want.trace_id[rank] = index,
                _ => want.span_id[rank] = index,
            }
            assert_eq!(Known::find(&object), want, "{key}");
        }
    }
}

#[test]
fn typical_line_matches_the_reference_in_order() {
    let line = r#"{"time":"2026-11-26T12:00:01.305Z","level":"info","msg":"handled request 5 for customer c-5","path":"/api/v1/orders/5","status":200,"duration_ms":5,"user":{"id":"u-5"}}"#;
    let record = parsed(line).expect("object");
    assert_eq!(record, expected(line).expect("object"));
    assert_eq!(keys(&record), ["duration_ms", "path", "status", "user.id"]);
}

#[test]
fn escaped_strings_and_keys_are_unescaped() {
    let line = r#"{"msg":"a \"quoted\"\n\u00e9 \ud83d\ude00","k\u0065y":"tab\there","n\\":{"x\/y":"\u0041"}}"#;
    let record = parsed(line).expect("object");
    assert_eq!(record, expected(line).expect("object"));
    assert_eq!(
        crate::otlp::as_str(record.body.as_ref()),
        Some("a \"quoted\"\né 😀")
    );
    assert_eq!(
        attr(&record, "key"),
        Some(&Value::StringValue("tab\there".into()))
    );
    assert_eq!(
        attr(&record, "n\\.x/y"),
        Some(&Value::StringValue("A".into()))
    );
}

#[test]
fn duplicate_keys_keep_the_last_value_in_key_order() {
    let line = r#"{"b":1,"a":{"y":1,"x":2,"y":3},"msg":"first","b":{"c":true},"msg":"second","a":null,"a":{"z":0,"y":5}}"#;
    let record = parsed(line).expect("object");
    assert_eq!(record, expected(line).expect("object"));
    assert_eq!(crate::otlp::as_str(record.body.as_ref()), Some("second"));
    assert_eq!(keys(&record), ["a.y", "a.z", "b.c"]);
    assert_eq!(attr(&record, "a.y"), Some(&Value::IntValue(5)));

    // A rejected level stays an attribute; the accepted one of a later key is used.
    let line = r#"{"level":"chatty","severity":"warn","level":"loud"}"#;
    let record = parsed(line).expect("object");
    assert_eq!(record, expected(line).expect("object"));
    assert_eq!(record.severity_text, "warn");
    assert_eq!(
        attr(&record, "level"),
        Some(&Value::StringValue("loud".into()))
    );
}

#[test]
fn structured_bodies_and_numbers_match_the_reference() {
    for line in [
        r#"{"body":{"z":null,"a":[1,{"b":2}],"a":"dup"}}"#,
        r#"{"msg":null,"log":"l"}"#,
        r#"{"msg":["x",null,1.5]}"#,
        r#"{"big":18446744073709551615,"neg":-9223372036854775808,"f":1e300,"z":-0,"e":2E-3}"#,
        r#"{"time":-5,"ts":1700000000.5,"level":30.0,"lvl":50}"#,
        r#"{"trace_id":"00000000000000000000000000000000","traceId":" 0102030405060708090a0b0c0d0e0f10 "}"#,
        r#"{"span_id":"010203040506070","spanId":"0102030405060708"}"#,
        r#"{}"#,
        r#"  {"a":{}}  "#,
    ] {
        assert_eq!(parsed(line), expected(line), "{line}");
        assert!(parsed(line).is_some(), "{line}");
    }
}

#[test]
fn non_objects_and_broken_json_are_rejected_like_the_reference() {
    for line in [
        "[1,2]",
        "\"text\"",
        "{broken",
        r#"{"a":1} trailing"#,
        r#"{"a":1,}"#,
        r#"{"a":"\ud800"}"#,
        r#"{"a":"ctrl	char"}"#,
        r#"{"a":1e400}"#,
        r#"{"a":01}"#,
        r#"{'a':1}"#,
        "{\"a\":\"\u{0}\"}",
    ] {
        assert_eq!(parsed(line), None, "{line}");
        assert_eq!(expected(line), None, "{line}");
    }
}

#[test]
fn nesting_is_bounded_like_the_reference() {
    for depth in [1, 50, 126, 127, 128, 129, 5_000] {
        let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        assert_eq!(parsed(&objects), expected(&objects), "objects {depth}");
        let arrays = format!(r#"{{"a":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth));
        assert_eq!(parsed(&arrays), expected(&arrays), "arrays {depth}");
    }
    let deep = format!("{}1{}", r#"{"a":"#.repeat(127), "}".repeat(127));
    let record = parsed(&deep).expect("within serde_json's limit");
    assert_eq!(keys(&record), [vec!["a"; 127].join(".").as_str()]);
    let too_deep = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
    assert_eq!(parsed(&too_deep), None);
}

/// What serde_json reads from `line` into the borrowed tree.
fn serde_object(line: &str) -> Option<Object<'_>> {
    serde_json::from_str::<TopLevel<'_>>(line)
        .ok()
        .map(|TopLevel(object)| object)
}

#[test]
fn fast_reader_takes_plain_lines_as_serde_json_reads_them() {
    for line in [
        r#"{"time":"2026-11-26T12:00:01.305Z","level":"info","msg":"handled request 5","path":"/api/v1/orders/5","status":200,"duration_ms":5,"user":{"id":"u-5"}}"#,
        " \t{ \"a\" :\r\n[ 1 , -2,{},[],\"\",true,false,null] , \"b\":{\"c\":{}} }\n ",
        r#"{}"#,
        "{\"n\":999999999999999999,\"m\":-999999999999999999,\"z\":0,\"é\":\"ü\u{7f}\"}",
        r#"{"a":1,"a":{"b":2},"msg":"x","msg":"y"}"#,
    ] {
        let fast = fast::object(line);
        assert!(fast.is_some(), "{line}");
        assert_eq!(fast, serde_object(line), "{line}");
    }
}

#[test]
fn fast_reader_leaves_everything_else_to_serde_json() {
    let deep = format!("{}1{}", r#"{"a":"#.repeat(40), "}".repeat(40));
    for line in [
        r#"{"a":"esc\"aped"}"#,
        r#"{"a\u0062":1}"#,
        r#"{"a":1.5}"#,
        r#"{"a":1e3}"#,
        r#"{"a":-0}"#,
        r#"{"a":1000000000000000000}"#,
        r#"{"a":01}"#,
        r#"{"a":-}"#,
        "{\"a\":\"tab\there\"}",
        r#"{"a":1,}"#,
        r#"{"a":[1,]}"#,
        r#"{"a":1} x"#,
        r#"{"a":tru}"#,
        r#"{"a":truex}"#,
        r#"{"a" 1}"#,
        r#"[1]"#,
        r#"{"a":1"#,
        deep.as_str(),
    ] {
        assert_eq!(fast::object(line), None, "{line}");
    }
    assert!(serde_object(&deep).is_some());
}

/// JSON text (not a `serde_json::Value`, so keys can repeat) over the keys the parser
/// treats specially.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        (0u32..100).prop_map(|n| format!("{n}.0")),
        Just("1700000000000".to_owned()),
        Just("1700000000.25".to_owned()),
        prop::sample::select(vec![
            r#""info""#,
            r#"" WARN ""#,
            r#""50""#,
            r#""chatty""#,
            r#""2023-11-14T22:13:20Z""#,
            r#""1700000000""#,
            r#""yesterday""#,
            r#""0102030405060708090a0b0c0d0e0f10""#,
            r#""0102030405060708""#,
            r#""0000000000000000""#,
            r#""a \"b\" \\ \/ \b\f\n\r\t \u00e9 \ud83d\ude00""#,
            r#""\ud800""#,
            r#""java.lang.Error: x\n\tat a.B.c(B.java:1)""#,
            r#""""#,
        ])
        .prop_map(str::to_owned),
        "[a-z0-9 é.]{0,8}".prop_map(|s| format!("\"{s}\"")),
    ];
    let key = prop::sample::select(vec![
        "msg",
        "message",
        "body",
        "log",
        "level",
        "severity",
        "lvl",
        "time",
        "timestamp",
        "ts",
        "@timestamp",
        "trace_id",
        "traceId",
        "span_id",
        "spanId",
        "stack",
        "a",
        "a.b",
        "b",
        "A",
        "é",
        "k\\u0065y",
        "key",
        "",
    ]);
    let value = leaf.prop_recursive(4, 40, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5)
                .prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((key.clone(), inner), 0..5).prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    });
    value.prop_map(|v| format!("{{\"x\":{v}}}")).boxed()
}

proptest! {
    #[test]
    fn string_stop_finds_the_first_quote_backslash_or_control_byte(
        bytes in prop::collection::vec(
            prop_oneof![
                4 => 0x20u8..=0xff,
                1 => prop::sample::select(vec![b'"', b'\\', 0, 0x1f, b'\n', 0x21, 0x5d, 0x7f, 0x80]),
            ],
            0..40,
        ),
    ) {
        let naive = bytes.iter().position(|b| matches!(b, b'"' | b'\\' | 0..=0x1f));
        prop_assert_eq!(fast::string_stop(&bytes), naive);
    }

    #[test]
    fn agrees_with_the_reference_on_generated_objects(
        text in json_text(),
        top in prop::collection::vec(
            (
                prop::sample::select(vec!["msg", "level", "lvl", "time", "ts", "trace_id", "span_id", "user", "a", "a.b"]),
                json_text(),
            ),
            0..6,
        ),
    ) {
        // The generated object, and the same members spread over the top level.
        prop_assert_eq!(parsed(&text), expected(&text));
        let members: Vec<String> = top
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .chain(std::iter::once(text[1..text.len() - 1].to_owned()))
            .collect();
        let line = format!("{{{}}}", members.join(","));
        prop_assert_eq!(parsed(&line), expected(&line));
        for text in [text.as_str(), line.as_str()] {
            if let Some(fast) = fast::object(text) {
                prop_assert_eq!(Some(fast), serde_object(text));
            }
        }
    }

    #[test]
    fn agrees_with_the_reference_on_damaged_json(
        text in json_text(),
        cut in any::<prop::sample::Index>(),
        insert in prop::sample::select(vec!["", "\"", ",", "}", "]", ":", "\\", "{", "1", " "]),
    ) {
        let mut at = cut.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let damaged = format!("{}{insert}{}", &text[..at], &text[at..]);
        prop_assert_eq!(parsed(&damaged), expected(&damaged));
        let truncated = &text[..at];
        prop_assert_eq!(parsed(truncated), expected(truncated));
        for text in [damaged.as_str(), truncated] {
            if let Some(fast) = fast::object(text) {
                prop_assert_eq!(Some(fast), serde_object(text));
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics_and_agrees(line in "\\{\\PC{0,80}") {
        prop_assert_eq!(parsed(&line), expected(&line));
        if let Some(fast) = fast::object(&line) {
            prop_assert_eq!(Some(fast), serde_object(&line));
        }
    }
}

mod loggers;
