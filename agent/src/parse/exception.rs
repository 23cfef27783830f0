//! Exceptions: the OpenTelemetry `exception.type`, `exception.message` and
//! `exception.stacktrace` attributes, filled by [`bellwether_stacktrace::parse`]
//! from a joined multi-line record, or from a structured record's error fields (a stack
//! field, and the type / message / error-string fields the common JSON loggers write).

mod dict_traceback;

use bellwether_proto::otlp::common::any_value::Value;
use bellwether_proto::otlp::common::KeyValue;
use bellwether_proto::otlp::logs::LogRecord;
use bellwether_stacktrace::{self as stacktrace, ParsedException};

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

/// What a structured field says about an error, by its (flattened) key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The exception's type or class name: pino `err.type`, bunyan `err.name`, ECS and
    /// log4j2 `error.type`, logstash-logback-encoder `exception_class`.
    Type,
    /// The exception's message: `err.message`, `error.message`, `exception_message`.
    Message,
    /// A Go logger's error string (zap, zerolog, logrus, slog): `error` or `err`. Read as
    /// the message when no message field is there.
    ErrorText,
    /// A formatted trace: a key ending in one of [`STACK_KEYS`], python-json-logger
    /// `exc_info`, Serilog `@x`; or structlog's structured traceback under such a key,
    /// rendered as its text first.
    Stack,
}

/// The role of an attribute key, if it has one. Runs for every attribute of every
/// structured line: a `match` on the whole key compiles to a few length and word
/// compares, and the stack check compares suffixes instead of searching for a dot.
fn role(key: &str) -> Option<Role> {
    let role = match key {
        "err.type"
        | "err.name"
        | "error.type"
        | "exception_class"
        | "exception.exception_class" => Role::Type,
        "err.message" | "error.message" | "exception_message" | "exception.exception_message" => {
            Role::Message
        }
        "error" | "err" => Role::ErrorText,
        "exc_info" | "@x" => Role::Stack,
        _ if is_stack_key(key) => Role::Stack,
        _ => return None,
    };
    Some(role)
}

/// The members of a structured record that describe its error, by attribute index.
#[derive(Debug, Default)]
struct ErrorFields {
    type_field: Option<usize>,
    message: Option<usize>,
    error_text: Option<usize>,
    /// The first stack-keyed string; whether it holds a trace is decided later.
    stack: Option<usize>,
}

/// Maps a structured record's error fields onto the `exception.*` attributes; see the
/// README's table of loggers. The fields used are moved, not copied.
///
/// Where the sources disagree, an explicit field wins: a type field over the type parsed
/// from the stack, a message field (else a Go error string) over the parsed message. The
/// stack field is kept as `exception.stacktrace` either way. A stack field that holds no
/// trace stays an ordinary attribute, unless the record names its error in another field.
/// A parsed trace makes an unstamped record an error; explicit fields alone do not
/// change the severity.
pub(crate) fn from_attributes(record: &mut LogRecord) {
    let mut fields = ErrorFields::default();
    let mut any = false;
    for (index, kv) in record.attributes.iter_mut().enumerate() {
        let Some(role) = role(&kv.key) else {
            continue;
        };
        if role == Role::Stack {
            // structlog's `dict_tracebacks`: a list of stacks, read as their text.
            dict_traceback::render_in_place(kv);
        }
        // Only strings name an error: `"error": true` or a zerolog `stack` array do not.
        if !matches!(string_of(kv), Some(s) if !s.trim().is_empty()) {
            continue;
        }
        let slot = match role {
            Role::Type => &mut fields.type_field,
            Role::Message => &mut fields.message,
            Role::ErrorText => &mut fields.error_text,
            Role::Stack => &mut fields.stack,
        };
        if slot.is_none() {
            *slot = Some(index);
            any = true;
        }
    }
    if !any {
        return;
    }

    // The first stack-keyed field holding a trace; the rare record with several stack
    // fields pays for a second pass.
    let mut parsed = None;
    if let Some(first) = fields.stack {
        for (index, kv) in record.attributes.iter().enumerate().skip(first) {
            if role(&kv.key) != Some(Role::Stack) {
                continue;
            }
            if let Some(found) = string_of(kv).and_then(stacktrace::parse) {
                fields.stack = Some(index);
                parsed = Some(found);
                break;
            }
        }
    }
    let explicit =
        fields.type_field.is_some() || fields.message.is_some() || fields.error_text.is_some();
    // Without a trace, the first stack field is still this error's stack when another
    // field names the error (a zap `stacktrace` has frames but no header to parse).
    if parsed.is_none() && !explicit {
        return;
    }

    let message_index = fields.message.or(fields.error_text);
    let mut take = |index: Option<usize>| {
        let value = record.attributes.get_mut(index?)?.value.as_mut()?;
        match value.value.as_mut() {
            Some(Value::StringValue(s)) => Some(std::mem::take(s)),
            _ => None,
        }
    };
    let type_value = take(fields.type_field).map(|s| s.trim().to_owned());
    let message_value = take(message_index);
    let stack_value = take(fields.stack);
    let mut used = [fields.type_field, message_index, fields.stack];
    // Removed from the back so the other indexes stay valid.
    used.sort_unstable_by(|a, b| b.cmp(a));
    for index in used.into_iter().flatten() {
        record.attributes.remove(index);
    }

    set(record, TYPE_ATTR, type_value);
    set(record, MESSAGE_ATTR, message_value);
    match parsed {
        Some(parsed) => apply(record, &parsed, stack_value.unwrap_or_default()),
        None => set(record, STACKTRACE_ATTR, stack_value),
    }
}

/// The string value of an attribute.
fn string_of(kv: &KeyValue) -> Option<&str> {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// Adds `key` with `value` unless the record has it already.
fn set(record: &mut LogRecord, key: &str, value: Option<String>) {
    if let Some(value) = value {
        if !has(record, key) {
            record.attributes.push(string_kv(key, value));
        }
    }
}

fn has(record: &LogRecord, key: &str) -> bool {
    record.attributes.iter().any(|kv| kv.key == key)
}

/// Whether the last dot-separated segment of `key` is one of [`STACK_KEYS`]. Compares
/// suffixes instead of searching the key for its last dot.
fn is_stack_key(key: &str) -> bool {
    STACK_KEYS.iter().any(|stack| {
        key.strip_suffix(stack)
            .is_some_and(|head| head.is_empty() || head.ends_with('.'))
    })
}

/// Sets the exception attributes that are not there yet, and makes an unstamped record
/// an error.
fn apply(record: &mut LogRecord, parsed: &ParsedException, stacktrace: String) {
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
