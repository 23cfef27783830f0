use bellwether_proto::otlp::common::{any_value::Value, AnyValue};
use proptest::prelude::*;

use super::*;
use crate::otlp::as_str;

const NOW: u64 = 1_800_000_000_000_000_000;
const T: u64 = 1_700_000_000_000_000_000; // 2023-11-14T22:13:20Z

fn parse(line: &str) -> LogRecord {
    parse_line(line.as_bytes(), false, NOW).expect("non-blank line")
}

fn body(record: &LogRecord) -> &str {
    as_str(record.body.as_ref()).expect("string body")
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
fn plain_text_line() {
    let record = parse("something happened\r\n");
    assert_eq!(body(&record), "something happened");
    assert_eq!(record.severity_number, 0);
    assert_eq!(record.time_unix_nano, NOW);
    assert_eq!(record.observed_time_unix_nano, NOW);
    assert!(record.attributes.is_empty());
}

#[test]
fn plain_text_severity_forms() {
    let cases = [
        ("ERROR db down", 17, "ERROR"),
        ("err: db down", 17, "err"),
        ("[WARN] slow", 13, "WARN"),
        ("Warning: slow", 13, "Warning"),
        ("info started", 9, "info"),
        ("DEBUG x", 5, "DEBUG"),
        ("trace x", 1, "trace"),
        ("FATAL: boom", 21, "FATAL"),
        ("[critical] boom", 21, "critical"),
    ];
    for (line, number, text) in cases {
        let record = parse(line);
        assert_eq!(record.severity_number, number, "{line}");
        assert_eq!(record.severity_text, text, "{line}");
        assert_eq!(body(&record), line);
    }
}

#[test]
fn plain_text_severity_after_timestamp() {
    let record = parse("2023-11-14T22:13:20Z ERROR payment failed");
    assert_eq!(record.severity_number, 17);
    assert_eq!(record.time_unix_nano, T);

    let record = parse("[2023-11-14T22:13:20.5Z] [warn] slow");
    assert_eq!(record.severity_number, 13);
    assert_eq!(record.time_unix_nano, T + 500_000_000);

    let record = parse("2023-11-14 22:13:20,250 INFO ready");
    assert_eq!(record.severity_number, 9);
    assert_eq!(record.time_unix_nano, T + 250_000_000);
}

#[test]
fn severity_word_later_in_line_is_ignored() {
    let record = parse("user typed ERROR in the form");
    assert_eq!(record.severity_number, 0);
    assert_eq!(record.severity_text, "");
}

#[test]
fn json_line_fields() {
    let record = parse(
        r#"{"level":"error","msg":"charge failed","time":"2023-11-14T22:13:20Z","user":{"id":42,"tier":"gold"},"retry":true,"ratio":0.5,"tags":["a","b"],"none":null,"trace_id":"0102030405060708090a0b0c0d0e0f10","span_id":"0102030405060708"}"#,
    );
    assert_eq!(body(&record), "charge failed");
    assert_eq!(record.severity_number, 17);
    assert_eq!(record.severity_text, "error");
    assert_eq!(record.time_unix_nano, T);
    assert_eq!(record.trace_id, (1..=16).collect::<Vec<u8>>());
    assert_eq!(record.span_id, (1..=8).collect::<Vec<u8>>());
    assert_eq!(attr(&record, "user.id"), Some(&Value::IntValue(42)));
    assert_eq!(
        attr(&record, "user.tier"),
        Some(&Value::StringValue("gold".into()))
    );
    assert_eq!(attr(&record, "retry"), Some(&Value::BoolValue(true)));
    assert_eq!(attr(&record, "ratio"), Some(&Value::DoubleValue(0.5)));
    assert!(matches!(attr(&record, "tags"), Some(Value::ArrayValue(a)) if a.values.len() == 2));
    for consumed in ["level", "msg", "time", "trace_id", "span_id", "none"] {
        assert!(attr(&record, consumed).is_none(), "{consumed} kept");
    }
}

#[test]
fn json_body_key_order_and_fallback() {
    let record = parse(r#"{"message":"m","log":"l"}"#);
    assert_eq!(body(&record), "m");
    assert_eq!(attr(&record, "log"), Some(&Value::StringValue("l".into())));

    let line = r#"{"event":"login","severity":"WARNING"}"#;
    let record = parse(line);
    assert_eq!(body(&record), line);
    assert_eq!(record.severity_number, 13);
    assert_eq!(
        attr(&record, "event"),
        Some(&Value::StringValue("login".into()))
    );
}

#[test]
fn json_numeric_levels_and_times() {
    let record = parse(r#"{"level":50,"msg":"x","time":1700000000000}"#);
    assert_eq!(record.severity_number, 17);
    assert_eq!(record.time_unix_nano, T);

    let record = parse(r#"{"lvl":"debug","msg":"x","ts":1700000000.5}"#);
    assert_eq!(record.severity_number, 5);
    assert_eq!(record.time_unix_nano, T + 500_000_000);

    let record = parse(r#"{"level":"info","msg":"x","@timestamp":"1700000000"}"#);
    assert_eq!(record.time_unix_nano, T);
}

#[test]
fn json_unusable_fields_stay_attributes() {
    let record = parse(r#"{"msg":"x","level":"chatty","time":"yesterday","trace_id":"zz"}"#);
    assert_eq!(record.severity_number, 0);
    assert_eq!(record.time_unix_nano, NOW);
    assert!(record.trace_id.is_empty());
    assert_eq!(
        attr(&record, "level"),
        Some(&Value::StringValue("chatty".into()))
    );
    assert_eq!(
        attr(&record, "time"),
        Some(&Value::StringValue("yesterday".into()))
    );
    assert_eq!(
        attr(&record, "trace_id"),
        Some(&Value::StringValue("zz".into()))
    );
}

#[test]
fn json_structured_body_and_non_object_json() {
    let record = parse(r#"{"body":{"k":"v"}}"#);
    assert!(matches!(
        record.body,
        Some(AnyValue {
            value: Some(Value::KvlistValue(_))
        })
    ));
    let record = parse(r#"["not", "an", "object"]"#);
    assert_eq!(body(&record), r#"["not", "an", "object"]"#);
    let record = parse("{broken json");
    assert_eq!(body(&record), "{broken json");
}

#[test]
fn blank_lines_are_skipped() {
    assert!(parse_line(b"", false, NOW).is_none());
    assert!(parse_line(b"  \t\r\n", false, NOW).is_none());
}

#[test]
fn invalid_utf8_is_replaced() {
    let record = parse_line(b"bad \xff\xfe bytes", false, NOW).expect("record");
    assert_eq!(body(&record), "bad \u{FFFD}\u{FFFD} bytes");
}

#[test]
fn invalid_utf8_in_structured_lines_is_replaced() {
    let record = parse_line(b"{\"a\":\"x\xffy\",\"level\":\"warn\"}", false, NOW).expect("record");
    assert_eq!(record.severity_number, 13);
    assert_eq!(
        attr(&record, "a"),
        Some(&Value::StringValue("x\u{FFFD}y".into()))
    );
    assert_eq!(body(&record), "{\"a\":\"x\u{FFFD}y\",\"level\":\"warn\"}");

    let record = parse_line(b"level=info k=\xfe", false, NOW).expect("record");
    assert_eq!(record.severity_number, 9);
    assert_eq!(
        attr(&record, "k"),
        Some(&Value::StringValue("\u{FFFD}".into()))
    );
    assert_eq!(body(&record), "level=info k=\u{FFFD}");
}

#[test]
fn invalid_utf8_cut_at_the_limit_stays_within_it() {
    // The limit falls inside `é`; the partial character becomes U+FFFD, which does not
    // fit either.
    let record = parse_line_with_limit("abcé".as_bytes(), false, NOW, 4).expect("record");
    assert_eq!(body(&record), "abc");
    assert_eq!(attr(&record, TRUNCATED_ATTR), Some(&Value::BoolValue(true)));
    let record = parse_line_with_limit("abé".as_bytes(), false, NOW, 5).expect("record");
    assert_eq!(body(&record), "abé");
    assert!(attr(&record, TRUNCATED_ATTR).is_none());
}

#[test]
fn go_log_dates_and_split_date_time() {
    let record = parse("2023/11/14 22:13:20.5 ERROR payment failed");
    assert_eq!(record.time_unix_nano, T + 500_000_000);
    assert_eq!(record.severity_number, 17);

    let record = parse("[2023-11-14 22:13:20] WARN slow");
    assert_eq!(record.time_unix_nano, T);
    assert_eq!(record.severity_number, 13);

    // A valid date with a clock that is not one keeps the observed time.
    let record = parse("2023-11-14 teatime INFO x");
    assert_eq!(record.time_unix_nano, NOW);
    assert_eq!(record.severity_number, 9);

    // Not a date: the first token is the severity candidate.
    let record = parse("2023/13/14 22:13:20 ERROR x");
    assert_eq!(record.time_unix_nano, NOW);
    assert_eq!(record.severity_number, 0);
}

#[test]
fn logfmt_without_message_keeps_the_line_as_body() {
    let line = "level=error order=42 reason=\"no stock\"";
    let record = parse(line);
    assert_eq!(body(&record), line);
    assert_eq!(record.severity_number, 17);
    assert_eq!(
        attr(&record, "reason"),
        Some(&Value::StringValue("no stock".into()))
    );
}

#[test]
fn long_lines_are_truncated_and_marked() {
    let line = vec![b'a'; MAX_LINE_BYTES + 10];
    let record = parse_line(&line, false, NOW).expect("record");
    assert_eq!(body(&record).len(), MAX_LINE_BYTES);
    assert_eq!(attr(&record, TRUNCATED_ATTR), Some(&Value::BoolValue(true)));

    let exact = vec![b'a'; MAX_LINE_BYTES];
    let record = parse_line(&exact, false, NOW).expect("record");
    assert!(attr(&record, TRUNCATED_ATTR).is_none());

    let record = parse_line(b"short", true, NOW).expect("record");
    assert_eq!(attr(&record, TRUNCATED_ATTR), Some(&Value::BoolValue(true)));
}

#[test]
fn truncated_json_is_kept_as_text() {
    let record = parse_line(br#"{"msg":"hello"}"#, true, NOW).expect("record");
    assert_eq!(body(&record), r#"{"msg":"hello"}"#);
}

fn strings_within(value: &AnyValue, limit: usize) -> bool {
    match &value.value {
        Some(Value::StringValue(s)) => s.len() <= limit,
        Some(Value::ArrayValue(a)) => a.values.iter().all(|v| strings_within(v, limit)),
        Some(Value::KvlistValue(l)) => l
            .values
            .iter()
            .all(|kv| kv.value.as_ref().is_none_or(|v| strings_within(v, limit))),
        _ => true,
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_respect_limit(
        raw in proptest::collection::vec(any::<u8>(), 0..600),
        limit in 0usize..300,
        overflowed in any::<bool>(),
    ) {
        let record = parse_line_with_limit(&raw, overflowed, NOW, limit);
        let stripped_len = raw.strip_suffix(b"\n").unwrap_or(&raw);
        let stripped_len = stripped_len.strip_suffix(b"\r").unwrap_or(stripped_len).len();
        if let Some(record) = record {
            let body = record.body.as_ref().expect("body always set");
            prop_assert!(strings_within(body, limit));
            for kv in &record.attributes {
                prop_assert!(kv.value.as_ref().is_none_or(|v| strings_within(v, limit)));
            }
            let marked = record.attributes.iter().any(|kv| kv.key == TRUNCATED_ATTR);
            prop_assert_eq!(marked, overflowed || stripped_len > limit || body_was_cut(&raw, limit));
            prop_assert_eq!(record.observed_time_unix_nano, NOW);
            prop_assert!(record.time_unix_nano != 0);
        }
    }

    #[test]
    fn arbitrary_text_lines_never_panic(line in "\\PC{0,200}") {
        let _ = parse_line(line.as_bytes(), false, NOW);
    }
}

/// Whether UTF-8 repair alone pushed the text past the limit.
fn body_was_cut(raw: &[u8], limit: usize) -> bool {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    String::from_utf8_lossy(&raw[..raw.len().min(limit)]).len() > limit
}
