//! Exceptions: the OpenTelemetry `exception.type`, `exception.message` and
//! `exception.stacktrace` attributes, filled by [`bellwether_proto::stacktrace::parse`]
//! from a joined multi-line record or from a structured record's stack field.

use bellwether_proto::otlp::common::any_value::Value;
use bellwether_proto::otlp::logs::LogRecord;
use bellwether_proto::stacktrace::{self, ParsedException};

use super::severity::Level;
use crate::otlp::string_kv;

pub const TYPE_ATTR: &str = "exception.type";
pub const MESSAGE_ATTR: &str = "exception.message";
pub const STACKTRACE_ATTR: &str = "exception.stacktrace";

/// Last key segments of structured fields that hold a stack trace (`stack`, `err.stack`,
/// `error.stack_trace`, `exception`, `exception.stacktrace`).
const STACK_KEYS: [&str; 4] = ["stack", "stack_trace", "stacktrace", "exception"];

/// Parses `text` (a joined record) and records the exception it holds, if any. Returns
/// whether one was found.
pub(crate) fn from_text(record: &mut LogRecord, text: &str) -> bool {
    let Some(parsed) = stacktrace::parse(text) else {
        return false;
    };
    apply(record, &parsed, text.to_owned());
    true
}

/// Looks for a stack field among a structured record's attributes; when it holds a trace,
/// the field becomes `exception.stacktrace` and type and message are filled in.
pub(crate) fn from_attributes(record: &mut LogRecord) {
    let found = record.attributes.iter().position(|kv| {
        is_stack_key(&kv.key)
            && matches!(
                kv.value.as_ref().and_then(|v| v.value.as_ref()),
                Some(Value::StringValue(s)) if s.contains('\n')
            )
    });
    let Some(index) = found else {
        return;
    };
    let text = match record.attributes[index]
        .value
        .as_ref()
        .and_then(|v| v.value.as_ref())
    {
        Some(Value::StringValue(s)) => s,
        _ => return,
    };
    let Some(parsed) = stacktrace::parse(text) else {
        return;
    };
    let kv = record.attributes.remove(index);
    let text = match kv.value.and_then(|v| v.value) {
        Some(Value::StringValue(s)) => s,
        _ => return,
    };
    apply(record, &parsed, text);
}

/// Whether the last dot-separated segment of `key` is one of [`STACK_KEYS`]. Runs for
/// every attribute of every structured line, so it compares suffixes instead of
/// searching the key for its last dot.
fn is_stack_key(key: &str) -> bool {
    STACK_KEYS.iter().any(|stack| {
        key.strip_suffix(stack)
            .is_some_and(|head| head.is_empty() || head.ends_with('.'))
    })
}

/// Sets the exception attributes that are not there yet, and makes an unstamped record
/// an error.
fn apply(record: &mut LogRecord, parsed: &ParsedException, stacktrace: String) {
    let has = |record: &LogRecord, key: &str| record.attributes.iter().any(|kv| kv.key == key);
    if !has(record, TYPE_ATTR) {
        record
            .attributes
            .push(string_kv(TYPE_ATTR, parsed.exception_type.clone()));
    }
    if !has(record, MESSAGE_ATTR) {
        record
            .attributes
            .push(string_kv(MESSAGE_ATTR, parsed.exception_message.clone()));
    }
    if !has(record, STACKTRACE_ATTR) {
        record
            .attributes
            .push(string_kv(STACKTRACE_ATTR, stacktrace));
    }
    at_least_error(record);
}

/// A trace nobody stamped with a level is an error.
pub(crate) fn at_least_error(record: &mut LogRecord) {
    if record.severity_number == 0 {
        record.severity_number = Level::Error.number();
        record.severity_text = Level::Error.name().to_owned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_keys_are_matched_on_their_last_segment() {
        for key in [
            "stack",
            "err.stack",
            "error.stack_trace",
            "a.b.stacktrace",
            "exception",
            ".exception",
        ] {
            assert!(is_stack_key(key), "{key}");
        }
        for key in [
            "",
            "stack.",
            "stacks",
            "err.stack.x",
            "mystack",
            "exception.type",
        ] {
            assert!(!is_stack_key(key), "{key}");
        }
        for key in ["a.stack", "stack_trace.", "x", "..stacktrace", "é.stack"] {
            let last = key.rsplit('.').next().unwrap_or(key);
            assert_eq!(is_stack_key(key), STACK_KEYS.contains(&last), "{key}");
        }
    }
}
