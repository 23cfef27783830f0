use std::path::PathBuf;

use bellwether_proto::otlp::common::any_value::Value;
use proptest::prelude::*;
use serde_json::Value as Json;

use super::*;
use crate::parse::exception::{MESSAGE_ATTR, STACKTRACE_ATTR, TYPE_ATTR};
use crate::parse::severity::Level;

const NOW: u64 = 1_800_000_000_000_000_000;

fn attr<'a>(record: &'a LogRecord, key: &str) -> Option<&'a str> {
    record
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(
            |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => Some(s.as_str()),
                _ => None,
            },
        )
}

fn body(record: &LogRecord) -> &str {
    as_str(record.body.as_ref()).unwrap_or("")
}

/// Runs text through an assembler line by line, as a source does.
fn assemble(text: &[u8]) -> Vec<LogRecord> {
    let mut assembler = LineAssembler::default();
    let mut out = Vec::new();
    let mut lines = text.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if lines.peek().is_none() && line.is_empty() {
            break;
        }
        assembler.push(line, false, NOW, &mut out);
    }
    assembler.flush(NOW, &mut out);
    out
}

fn level_number(name: &str) -> i32 {
    match name {
        "TRACE" => Level::Trace.number(),
        "DEBUG" => Level::Debug.number(),
        "INFO" => Level::Info.number(),
        "WARN" => Level::Warn.number(),
        "ERROR" => Level::Error.number(),
        "FATAL" => Level::Fatal.number(),
        other => panic!("unknown level {other} in expected.json"),
    }
}

#[test]
fn real_runtime_output_becomes_the_expected_records() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../stacktrace/tests/fixtures/stacktraces");
    let expected: Json = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected.json")).expect("read expected.json"),
    )
    .expect("expected.json is JSON");
    let mut checked = 0;
    for (file, wanted) in expected.as_object().expect("object of files") {
        if file.starts_with('_') {
            continue;
        }
        let text = std::fs::read(dir.join(file)).expect("read fixture");
        let records = assemble(&text);
        let wanted = wanted.as_array().expect("list of records");
        let bodies: Vec<&str> = records.iter().map(body).collect();
        assert_eq!(records.len(), wanted.len(), "{file}: {bodies:#?}");
        for (n, (record, want)) in records.iter().zip(wanted).enumerate() {
            let at = format!("{file} record {n}: {record:#?}");
            if let Some(level) = want.get("severity").and_then(Json::as_str) {
                let number = level_number(level);
                assert!(
                    (number..number + 4).contains(&record.severity_number),
                    "{at}: severity {level}"
                );
            }
            if let Some(level) = want.get("severity_at_least").and_then(Json::as_str) {
                assert!(
                    record.severity_number >= level_number(level),
                    "{at}: severity at least {level}"
                );
            }
            if let Some(needle) = want.get("body_contains").and_then(Json::as_str) {
                assert!(body(record).contains(needle), "{at}: body has {needle:?}");
            }
            match want.get("exception_type").and_then(Json::as_str) {
                Some(kind) => {
                    assert_eq!(attr(record, TYPE_ATTR), Some(kind), "{at}");
                    assert!(attr(record, STACKTRACE_ATTR).is_some(), "{at}");
                }
                None => assert_eq!(attr(record, TYPE_ATTR), None, "{at}"),
            }
            if let Some(message) = want.get("exception_message").and_then(Json::as_str) {
                assert_eq!(attr(record, MESSAGE_ATTR), Some(message), "{at}");
            }
            if let Some(part) = want
                .get("exception_message_contains")
                .and_then(Json::as_str)
            {
                assert!(
                    attr(record, MESSAGE_ATTR).is_some_and(|m| m.contains(part)),
                    "{at}: message has {part:?}"
                );
            }
            if let Some(part) = want.get("stacktrace_contains").and_then(Json::as_str) {
                assert!(
                    attr(record, STACKTRACE_ATTR).is_some_and(|m| m.contains(part)),
                    "{at}: stacktrace has {part:?}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} records checked");
}

#[test]
fn logfmt_line_with_a_trace_under_it() {
    let text = b"time=2023-11-14T22:13:20Z level=warn msg=\"charge failed\" order=7\n\
java.lang.IllegalStateException: cart empty\n\
\tat com.shop.Checkout.main(Checkout.java:33)\n\
level=info msg=next\n";
    let records = assemble(text);
    assert_eq!(records.len(), 2, "{records:#?}");
    let first = &records[0];
    assert_eq!(first.severity_number, Level::Warn.number());
    assert_eq!(first.time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(attr(first, "order"), Some("7"));
    assert!(body(first).starts_with("charge failed\njava.lang.IllegalStateException"));
    assert_eq!(
        attr(first, TYPE_ATTR),
        Some("java.lang.IllegalStateException")
    );
    assert_eq!(attr(first, MESSAGE_ATTR), Some("cart empty"));
    assert_eq!(body(&records[1]), "next");
}

#[test]
fn json_stack_field_becomes_exception_attributes() {
    let line =
        br#"{"msg":"boom","stack_trace":"java.lang.RuntimeException: bad\n\tat a.B.c(B.java:1)"}"#;
    let records = assemble(line);
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(
        record.severity_number,
        Level::Error.number(),
        "unstamped trace"
    );
    assert_eq!(attr(record, TYPE_ATTR), Some("java.lang.RuntimeException"));
    assert_eq!(attr(record, MESSAGE_ATTR), Some("bad"));
    assert!(attr(record, "stack_trace").is_none(), "moved, not copied");
    assert!(attr(record, STACKTRACE_ATTR).is_some_and(|s| s.contains("B.java:1")));
}

#[test]
fn over_long_line_ends_the_open_record_and_is_flagged() {
    let mut assembler = LineAssembler::default();
    let mut out = Vec::new();
    assembler.push(b"ERROR first", false, NOW, &mut out);
    assert!(out.is_empty() && assembler.has_pending());
    assembler.push(&[b'x'; 100], true, NOW, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(body(&out[0]), "ERROR first");
    assert!(out[1].attributes.iter().any(|kv| kv.key == TRUNCATED_ATTR));
    assert_eq!(assembler.counts().truncated, 1);
    assembler.push(b"\xff\xfe bad", false, NOW, &mut out);
    assert_eq!(assembler.counts().invalid_utf8, 1);
    assert_eq!(assembler.counts().lines, 3);
}

#[test]
fn record_cut_at_the_line_cap_is_flagged() {
    let mut assembler = LineAssembler::new(JoinerConfig {
        max_lines: 3,
        max_bytes: 1 << 20,
    });
    let mut out = Vec::new();
    assembler.push(b"java.lang.Error: x", false, NOW, &mut out);
    for _ in 0..10 {
        assembler.push(b"\tat a.B.c(B.java:1)", false, NOW, &mut out);
    }
    assembler.push(b"INFO after", false, NOW, &mut out);
    assembler.flush(NOW, &mut out);
    assert_eq!(out.len(), 2, "{out:#?}");
    assert!(out[0].attributes.iter().any(|kv| kv.key == TRUNCATED_ATTR));
    assert_eq!(body(&out[0]).lines().count(), 3);
    assert_eq!(body(&out[1]), "INFO after");
}

proptest! {
    #[test]
    fn arbitrary_lines_never_panic_and_respect_caps(
        lines in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>().prop_filter("one line", |b| *b != b'\n'), 0..200),
                Just(b"\tat a.B.c(B.java:1)".to_vec()),
                Just(b"Traceback (most recent call last):".to_vec()),
                Just(b"  File \"x.py\", line 1, in f".to_vec()),
                Just(b"panic: boom".to_vec()),
                Just(b"goroutine 1 [running]:".to_vec()),
                Just(b"level=error msg=\"x".to_vec()),
                Just(b"java.lang.Error: x".to_vec()),
                Just(Vec::new()),
            ],
            0..60,
        ),
        max_lines in 1usize..8,
        max_bytes in 1usize..400,
    ) {
        let mut assembler = LineAssembler::new(JoinerConfig { max_lines, max_bytes });
        let mut out = Vec::new();
        for line in &lines {
            assembler.push(line, false, NOW, &mut out);
        }
        assembler.flush(NOW, &mut out);
        prop_assert!(!assembler.has_pending());
        prop_assert!(out.len() <= lines.len());
        for record in &out {
            let text = body(record);
            // A structured first line's message may differ from its raw text, but the
            // rest of the record obeys the caps.
            prop_assert!(text.lines().count() <= max_lines.max(1) + 1, "{text:?}");
            prop_assert!(text.len() <= max_bytes.max(1) * 4 + 4 * 200, "{}", text.len());
        }
        prop_assert_eq!(assembler.counts().lines, lines.len() as u64);
    }
}
