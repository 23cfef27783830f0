//! Line parsing: one line of application output becomes one OTLP `LogRecord`.
//!
//! - JSON object lines ([`json`]): fields become attributes (nested objects flattened with
//!   dots); body, severity, time and trace/span ids come from their conventional fields.
//!   The error fields of the common JSON loggers (pino/bunyan `err.*`, ECS `error.*`,
//!   logstash `exception_class`, Go `error`, Python `exc_info`, Serilog `@x`, and any
//!   `stack` / `stack_trace` / `stacktrace` / `exception` field holding a trace) become
//!   `exception.*` ([`exception`]).
//! - logfmt lines ([`logfmt`]): `level=error msg="x y" key=val`, pairs become attributes.
//! - Anything else is plain text: the line is the body, and a leading severity word
//!   (optionally after a leading timestamp) sets the severity.
//! - [`multiline`]: a stream's lines go through the stack-trace joiner first, so a log
//!   line and the trace under it become one record with `exception.*` attributes.
//!
//! Parsing never fails and never panics: invalid UTF-8 is replaced, over-long lines are
//! cut to [`MAX_LINE_BYTES`] and marked with `bellwether.truncated = true`.

pub mod exception;
mod json;
pub mod logfmt;
pub mod multiline;
pub mod severity;
pub mod time;

pub use multiline::{LineAssembler, LineCounts, MultilineConfig};

use std::borrow::Cow;

use bellwether_proto::otlp::common::any_value::Value;
use bellwether_proto::otlp::logs::LogRecord;

use crate::otlp::{kv, string_value};

/// Longest line kept, in bytes (after UTF-8 repair).
pub const MAX_LINE_BYTES: usize = 256 * 1024;

/// Attribute set on records whose line was cut.
pub const TRUNCATED_ATTR: &str = "bellwether.truncated";

/// Parses one line (without its newline). `overflowed` says the reader already dropped
/// bytes beyond the limit. Returns `None` for blank lines.
pub fn parse_line(raw: &[u8], overflowed: bool, now_unix_nanos: u64) -> Option<LogRecord> {
    parse_line_with_limit(raw, overflowed, now_unix_nanos, MAX_LINE_BYTES)
}

/// [`parse_line`] with an explicit length limit.
pub fn parse_line_with_limit(
    raw: &[u8],
    overflowed: bool,
    now_unix_nanos: u64,
    limit: usize,
) -> Option<LogRecord> {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let (line, truncated) = repair(raw, overflowed, limit);
    parse_str(line, truncated, now_unix_nanos)
}

/// The text of a raw line, cut to `limit` bytes, and whether it was cut. Valid UTF-8
/// (the usual case) is borrowed; only invalid bytes make a repaired copy.
fn repair(raw: &[u8], overflowed: bool, limit: usize) -> (Cow<'_, str>, bool) {
    let truncated = overflowed || raw.len() > limit;
    let kept = &raw[..raw.len().min(limit)];
    if let Ok(text) = std::str::from_utf8(kept) {
        return (Cow::Borrowed(text), truncated);
    }
    let mut line = String::from_utf8_lossy(kept).into_owned();
    if line.len() <= limit {
        return (Cow::Owned(line), truncated);
    }
    // Replacement characters can make the repaired text longer than the raw bytes.
    let mut cut = limit;
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    line.truncate(cut);
    (Cow::Owned(line), true)
}

/// Parses one line already in text form (no newline, within the length limit);
/// `truncated` marks it as cut. Returns `None` for blank lines.
pub fn parse_text(line: String, truncated: bool, now_unix_nanos: u64) -> Option<LogRecord> {
    parse_str(Cow::Owned(line), truncated, now_unix_nanos)
}

/// [`parse_text`] for borrowed or owned text: the line is copied only when it becomes
/// the body and is not owned already.
fn parse_str(line: Cow<'_, str>, truncated: bool, now_unix_nanos: u64) -> Option<LogRecord> {
    if line.trim().is_empty() {
        return None;
    }

    let mut record = LogRecord {
        observed_time_unix_nano: now_unix_nanos,
        ..LogRecord::default()
    };
    let structured = !truncated
        && if line.trim_start().starts_with('{') {
            let json = json::parse(&line, &mut record);
            if json {
                exception::from_attributes(&mut record);
            }
            json
        } else {
            line.contains('=') && logfmt::parse(&line, &mut record)
        };
    if !structured {
        plain_text(&line, &mut record);
    }
    if !structured || record.body.is_none() {
        // Plain text, or a structured line without a message field.
        record.body = Some(string_value(line.into_owned()));
    }
    if record.time_unix_nano == 0 {
        record.time_unix_nano = now_unix_nanos;
    }
    if truncated {
        record
            .attributes
            .push(kv(TRUNCATED_ATTR, Value::BoolValue(true)));
    }
    Some(record)
}

/// Severity and time from the start of a plain-text line.
fn plain_text(line: &str, record: &mut LogRecord) {
    let mut tokens = line.split_whitespace();
    let Some(first) = tokens.next() else {
        return;
    };
    let unbracketed = first.trim_start_matches('[').trim_end_matches(']');
    let candidate = if let Some(time) = time::parse_rfc3339(unbracketed) {
        record.time_unix_nano = time;
        tokens.next()
    } else if let Some(date) = calendar_date(unbracketed) {
        // `2024-01-02 10:00:00,123 WARN ...`: date and time are separate tokens.
        let clock = tokens.next().unwrap_or("").trim_end_matches(']');
        if let Some(time) = time::parse_date_and_clock(&date, clock.as_bytes()) {
            record.time_unix_nano = time;
        }
        tokens.next()
    } else {
        Some(first)
    };
    if let Some(severity) = candidate.and_then(severity::from_plain_token) {
        record.severity_number = severity.number;
        record.severity_text = severity.text;
    }
}

/// A `YYYY-MM-DD` token (or Go's `log` package `YYYY/MM/DD`, read with dashes) that is a
/// valid date.
fn calendar_date(token: &str) -> Option<[u8; 10]> {
    let mut date: [u8; 10] = token.as_bytes().try_into().ok()?;
    if date[4] == b'/' {
        for byte in &mut date {
            if *byte == b'/' {
                *byte = b'-';
            }
        }
    }
    time::parse_date_and_clock(&date, b"00:00:00Z").map(|_| date)
}

#[cfg(test)]
mod tests;
