//! Which records are errors, and what each error is: exception type, message, stack trace,
//! frames and fingerprint.
//!
//! An error is a log record with severity ≥ ERROR, an `exception` span event, or — when a
//! span has no `exception` event — a span with status ERROR (its events already describe
//! the failure; counting the status too would count one failure twice).
//!
//! Exception fields, first found wins:
//! 1. the attributes `exception.type`, `exception.message`, `exception.stacktrace` (on the
//!    log record, or on the span event; a failed span's own attributes);
//! 2. what [`bellwether_stacktrace::parse`] finds in `exception.stacktrace`, else
//!    (logs only) in the body;
//! 3. type `""` and message = the body (logs), the status message, or the span name.
//!
//! Frames come from the parsed stack trace; without one, the `code.*` attributes
//! (`code.namespace`, `code.function`, `code.filepath`, `code.lineno`, or their newer
//! `code.function.name`, `code.file.path`, `code.line.number`) make a single frame. A
//! `bellwether.fingerprint` attribute (record, event, then span) overrides the
//! fingerprint.

use std::borrow::Cow;

use bellwether_proto::otlp::common::any_value::Value;
use bellwether_proto::otlp::common::{AnyValue, KeyValue};
use bellwether_proto::otlp::logs::LogRecord;
use bellwether_proto::otlp::trace::Span;
use bellwether_stacktrace::{self as stacktrace, Frame};

use super::summarize::{is_error_log, is_error_span};
use bellwether_fingerprint::{Fingerprint, OVERRIDE_ATTRIBUTE};
use bellwether_model::issue::{MAX_MESSAGE_BYTES, MAX_STACK_BYTES};

/// Name of the span event that records an exception.
pub const EXCEPTION_EVENT: &str = "exception";
/// Longest text handed to the stack-trace parser.
const MAX_PARSE_BYTES: usize = 64 * 1024;

/// One error, described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorInfo {
    pub exception_type: String,
    /// At most [`MAX_MESSAGE_BYTES`].
    pub message: String,
    /// The stack trace text, at most [`MAX_STACK_BYTES`]; empty when there was none.
    pub stack: String,
    pub fingerprint: Fingerprint,
}

/// The error a log record stands for, if it is one.
pub fn log_error(record: &LogRecord) -> Option<ErrorInfo> {
    if !is_error_log(record) {
        return None;
    }
    let body = record.body.as_ref().map(any_text).unwrap_or_default();
    Some(describe(
        &record.attributes,
        &[],
        Some(body.as_ref()),
        body.as_ref(),
    ))
}

/// The errors a span stands for: one per `exception` event, else one if it failed.
pub fn span_errors(span: &Span) -> Vec<ErrorInfo> {
    let status_message = span
        .status
        .as_ref()
        .map(|s| s.message.trim())
        .filter(|m| !m.is_empty());
    let fallback = status_message.unwrap_or(span.name.as_str());
    let mut errors: Vec<ErrorInfo> = span
        .events
        .iter()
        .filter(|event| event.name == EXCEPTION_EVENT)
        .map(|event| describe(&event.attributes, &span.attributes, None, fallback))
        .collect();
    if errors.is_empty() && is_error_span(span) {
        errors.push(describe(&span.attributes, &[], None, fallback));
    }
    errors
}

/// Applies the precedence rules of the module doc. `outer` attributes (the span of an
/// event) are consulted for the fingerprint override only.
fn describe(
    attributes: &[KeyValue],
    outer: &[KeyValue],
    body: Option<&str>,
    fallback_message: &str,
) -> ErrorInfo {
    let stacktrace_attr = text(attributes, "exception.stacktrace");
    let mut stack: &str = stacktrace_attr.as_deref().unwrap_or("");
    let mut parsed = stacktrace_attr
        .as_deref()
        .and_then(|text| stacktrace::parse(prefix(text, MAX_PARSE_BYTES)));
    if parsed.is_none() {
        if let Some(body) = body {
            parsed = stacktrace::parse(prefix(body, MAX_PARSE_BYTES));
            if parsed.as_ref().is_some_and(|p| !p.frames.is_empty()) && stack.is_empty() {
                stack = body;
            }
        }
    }
    let exception_type = text(attributes, "exception.type")
        .or_else(|| parsed.as_ref().map(|p| p.exception_type.clone()))
        .unwrap_or_default();
    let message = text(attributes, "exception.message")
        .or_else(|| parsed.as_ref().map(|p| p.exception_message.clone()))
        .unwrap_or_else(|| fallback_message.to_owned());
    let message = prefix(message.trim(), MAX_MESSAGE_BYTES).to_owned();
    let frames = match parsed {
        Some(p) if !p.frames.is_empty() => p.frames,
        _ => code_frame(attributes).into_iter().collect(),
    };
    let override_value =
        text(attributes, OVERRIDE_ATTRIBUTE).or_else(|| text(outer, OVERRIDE_ATTRIBUTE));
    let fingerprint = Fingerprint::resolve(
        override_value.as_deref(),
        &exception_type,
        &message,
        &frames,
    );
    ErrorInfo {
        exception_type,
        message,
        stack: prefix(stack, MAX_STACK_BYTES).to_owned(),
        fingerprint,
    }
}

/// The frame named by `code.*` attributes, when they name a function.
fn code_frame(attributes: &[KeyValue]) -> Option<Frame> {
    let function =
        text(attributes, "code.function").or_else(|| text(attributes, "code.function.name"))?;
    let line = value(attributes, "code.lineno")
        .or_else(|| value(attributes, "code.line.number"))
        .and_then(|v| match v {
            Value::IntValue(i) => u32::try_from(*i).ok(),
            Value::StringValue(s) => s.trim().parse().ok(),
            _ => None,
        });
    Some(Frame {
        module: text(attributes, "code.namespace"),
        function,
        file: text(attributes, "code.filepath").or_else(|| text(attributes, "code.file.path")),
        line,
        in_app: true,
    })
}

fn value<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()
}

/// A string attribute, trimmed, when not blank.
fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    match value(attributes, key)? {
        Value::StringValue(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

/// A log body as text: strings as they are, scalars printed, anything else empty.
pub fn any_text(value: &AnyValue) -> Cow<'_, str> {
    match &value.value {
        Some(Value::StringValue(s)) => Cow::Borrowed(s.as_str()),
        Some(Value::IntValue(i)) => Cow::Owned(i.to_string()),
        Some(Value::DoubleValue(d)) => Cow::Owned(d.to_string()),
        Some(Value::BoolValue(b)) => Cow::Owned(b.to_string()),
        Some(Value::BytesValue(b)) => String::from_utf8_lossy(b),
        _ => Cow::Borrowed(""),
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

#[cfg(test)]
#[path = "errors_tests.rs"]
mod tests;
