//! structlog's structured tracebacks (`structlog.processors.dict_tracebacks`, which its
//! docs pair with `JSONRenderer`): instead of the traceback's text, the `exception` field
//! holds a list of stacks, the reported exception first, then its cause or context, then
//! theirs:
//!
//! ```json
//! [{"exc_type": "PaymentError", "exc_value": "charge failed", "exc_notes": [],
//!   "is_cause": false, "frames": [{"filename": "/app/pay.py", "lineno": 26,
//!   "name": "charge", "locals": {}}], "is_group": false, "exceptions": []},
//!  {"exc_type": "LookupError", "exc_value": "query failed", "is_cause": true, …}]
//! ```
//!
//! An exception group's sub-exceptions are in `exceptions`, one such list each. The list
//! is rendered as the text CPython prints for the same exception (chain lines, exception
//! group blocks and notes included, frames' `locals` left out), so that the one traceback
//! parser reads both forms.

use std::fmt::Write;

use bellwether_proto::otlp::common::any_value::Value;
use bellwether_proto::otlp::common::{AnyValue, KeyValue};

const CAUSE: &str = "The above exception was the direct cause of the following exception:";
const CONTEXT: &str = "During handling of the above exception, another exception occurred:";

/// Replaces a structured traceback in `kv` by its text; anything else is left alone.
pub(super) fn render_in_place(kv: &mut KeyValue) {
    let Some(value) = kv.value.as_mut() else {
        return;
    };
    let Some(Value::ArrayValue(stacks)) = value.value.as_ref() else {
        return;
    };
    if let Some(text) = render(&stacks.values) {
        value.value = Some(Value::StringValue(text));
    }
}

/// The text of a list of stacks; `None` when the list is not one (its first member has
/// no `exc_type` string).
fn render(stacks: &[AnyValue]) -> Option<String> {
    let stacks: Vec<&[KeyValue]> = stacks.iter().map_while(kvlist).collect();
    text(stacks.first()?, "exc_type")?;
    let mut out = String::new();
    chain(&stacks, &mut out);
    // As `format_exc_info` writes it: no newline after the last line.
    while out.ends_with('\n') {
        out.pop();
    }
    Some(out)
}

/// A chain of stacks, the reported exception first; printed root cause first, as
/// CPython prints it.
fn chain(stacks: &[&[KeyValue]], out: &mut String) {
    for (index, stack) in stacks.iter().enumerate().rev() {
        if text(stack, "exc_type").is_none() {
            continue;
        }
        one(stack, out);
        if index > 0 {
            // This stack is the cause (or the context) of the one before it in the list.
            let link = if flag(stack, "is_cause") {
                CAUSE
            } else {
                CONTEXT
            };
            let _ = write!(out, "\n{link}\n\n");
        }
    }
}

/// One exception: its frames, then `Type: message` and its notes; a group's block
/// holds its sub-exceptions.
fn one(stack: &[KeyValue], out: &mut String) {
    let frames: Vec<&[KeyValue]> = match field(stack, "frames") {
        Some(Value::ArrayValue(frames)) => frames.values.iter().filter_map(kvlist).collect(),
        _ => Vec::new(),
    };
    let mut own = String::new();
    for frame in &frames {
        let file = text(frame, "filename").unwrap_or("<unknown>");
        let _ = write!(own, "  File \"{file}\", line ");
        match field(frame, "lineno") {
            Some(Value::IntValue(n)) => {
                let _ = write!(own, "{n}");
            }
            Some(Value::StringValue(n)) => own.push_str(n),
            _ => own.push('0'),
        }
        let _ = writeln!(own, ", in {}", text(frame, "name").unwrap_or("<module>"));
    }
    own.push_str(text(stack, "exc_type").unwrap_or_default());
    let message = text(stack, "exc_value").unwrap_or_default();
    if !message.is_empty() {
        let _ = write!(own, ": {message}");
    }
    own.push('\n');
    if let Some(Value::ArrayValue(notes)) = field(stack, "exc_notes") {
        for note in &notes.values {
            if let Some(Value::StringValue(note)) = note.value.as_ref() {
                let _ = writeln!(own, "{note}");
            }
        }
    }

    let subs: Vec<Vec<&[KeyValue]>> = match field(stack, "exceptions") {
        Some(Value::ArrayValue(subs)) if flag(stack, "is_group") => subs
            .values
            .iter()
            .filter_map(|sub| match sub.value.as_ref() {
                Some(Value::ArrayValue(list)) => {
                    Some(list.values.iter().map_while(kvlist).collect::<Vec<_>>())
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if !flag(stack, "is_group") {
        if !frames.is_empty() {
            out.push_str("Traceback (most recent call last):\n");
        }
        out.push_str(&own);
        return;
    }
    out.push_str("  + Exception Group Traceback (most recent call last):\n");
    margin(&own, "  | ", out);
    for (index, sub) in subs.iter().enumerate() {
        let opening = if index == 0 { "  +-+" } else { "    +" };
        let _ = writeln!(
            out,
            "{opening}---------------- {} ----------------",
            index + 1
        );
        let mut text = String::new();
        chain(sub, &mut text);
        margin(&text, "    | ", out);
    }
    if !subs.is_empty() {
        out.push_str("    +------------------------------------\n");
    }
}

/// Appends each line of `text` after `prefix`.
fn margin(text: &str, prefix: &str, out: &mut String) {
    for line in text.lines() {
        out.push_str(prefix);
        out.push_str(line);
        out.push('\n');
    }
}

fn kvlist(value: &AnyValue) -> Option<&[KeyValue]> {
    match value.value.as_ref()? {
        Value::KvlistValue(list) => Some(&list.values),
        _ => None,
    }
}

fn field<'a>(list: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    list.iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()
}

fn text<'a>(list: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match field(list, key)? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn flag(list: &[KeyValue], key: &str) -> bool {
    matches!(field(list, key), Some(Value::BoolValue(true)))
}
