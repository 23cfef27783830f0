//! Runs the joiner and the parser over real runtime output (`tests/fixtures/stacktraces`)
//! and checks the records `expected.json` describes. Severity is the agent's line
//! parser's business and is not checked here.

use std::path::PathBuf;

use bellwether_stacktrace::{parse, Joiner, ParsedException};
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stacktraces")
}

fn join(text: &str) -> Vec<String> {
    let mut joiner = Joiner::default();
    let mut records = Vec::new();
    for line in text.split('\n') {
        records.extend(joiner.push(line));
    }
    records.extend(joiner.flush());
    assert!(records.iter().all(|r| !r.truncated));
    records
        .into_iter()
        .map(|r| r.text)
        .filter(|t| !t.trim().is_empty())
        .collect()
}

/// A JSON log line carries its stack in a field (the agent's JSON parser maps it to
/// `exception.stacktrace`); any other record is parsed as it is.
fn parse_record(record: &str) -> Option<ParsedException> {
    match serde_json::from_str::<Value>(record) {
        Ok(value @ Value::Object(_)) => find_stack(&value).and_then(parse),
        _ => parse(record),
    }
}

fn find_stack(value: &Value) -> Option<&str> {
    match value {
        Value::Object(map) => map.iter().find_map(|(key, v)| match v {
            Value::String(s) if key == "stack" || key == "stacktrace" => Some(s.as_str()),
            other => find_stack(other),
        }),
        Value::Array(items) => items.iter().find_map(find_stack),
        _ => None,
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn non_blank_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn every_fixture_joins_and_parses_as_expected() {
    let dir = fixtures_dir();
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected.json")).expect("read expected.json"),
    )
    .expect("expected.json is JSON");
    let files = expected.as_object().expect("an object of files");
    let mut checked_files = 0;
    for (file, wanted) in files {
        if file.starts_with('_') {
            continue;
        }
        checked_files += 1;
        let text = std::fs::read_to_string(dir.join(file)).expect("read fixture");
        let records = join(&text);
        let wanted = wanted.as_array().expect("a list of records");
        assert_eq!(
            records.len(),
            wanted.len(),
            "{file}: record count; got {records:#?}"
        );

        // Nothing is lost or reordered: the records hold exactly the file's lines.
        let joined: Vec<&str> = records.iter().flat_map(|r| non_blank_lines(r)).collect();
        assert_eq!(joined, non_blank_lines(&text), "{file}: lines");

        for (n, (record, want)) in records.iter().zip(wanted).enumerate() {
            let at = format!("{file} record {n}");
            let first = record.lines().next().unwrap_or("");
            assert!(text.lines().any(|l| l == first), "{at}: first line intact");
            for key in ["body_contains", "stacktrace_contains"] {
                if let Some(needle) = want.get(key).and_then(Value::as_str) {
                    assert!(
                        record.contains(needle),
                        "{at}: {key} {needle:?} in {record}"
                    );
                }
            }
            let parsed = parse_record(record);
            let Some(exception_type) = want.get("exception_type").and_then(Value::as_str) else {
                assert_eq!(parsed, None, "{at}: no exception expected");
                continue;
            };
            let p = parsed.unwrap_or_else(|| panic!("{at}: no exception found in {record}"));
            assert_eq!(p.exception_type, exception_type, "{at}");
            if let Some(message) = want.get("exception_message").and_then(Value::as_str) {
                assert_eq!(p.exception_message, message, "{at}");
            }
            if let Some(part) = want
                .get("exception_message_contains")
                .and_then(Value::as_str)
            {
                assert!(p.exception_message.contains(part), "{at}: message {p:?}");
            }
            if let Some(location) = want.get("code_location").and_then(Value::as_str) {
                assert_eq!(p.location.as_deref(), Some(location), "{at}");
            }
            assert_eq!(
                p.caused_by,
                strings(want.get("caused_by")),
                "{at}: caused_by"
            );
            assert_eq!(p.context, strings(want.get("context")), "{at}: context");
            match want.get("top_frame") {
                Some(Value::String(name)) => {
                    let top = p.top_in_app_frame().expect("an in-app frame");
                    assert_eq!(&p.qualified_name(top), name, "{at}: top frame");
                }
                Some(Value::Object(frame)) => {
                    let top = p.top_in_app_frame().expect("an in-app frame");
                    assert_eq!(
                        top.file.as_deref(),
                        frame.get("file").and_then(Value::as_str),
                        "{at}: top frame file"
                    );
                    assert_eq!(
                        Some(top.function.as_str()),
                        frame.get("function").and_then(Value::as_str),
                        "{at}: top frame function"
                    );
                }
                _ => {}
            }
        }
    }
    assert!(checked_files >= 9, "all fixtures were read");
}
