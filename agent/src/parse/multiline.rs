//! Lines of one stream to log records, joining multi-line records (stack traces, panics)
//! with [`bellwether_stacktrace::Joiner`].
//!
//! A joined record's first line gives its severity, time and structured fields; its body
//! is the whole text (a structured first line contributes its message, then the rest);
//! the exception found in it fills `exception.*`, and a trace with no level of its own is
//! an error. The joiner keeps the last record open until the next line shows whether it
//! goes on: the owner of a [`LineAssembler`] calls [`flush`](LineAssembler::flush) once
//! no line came for the multi-line timeout, or at the end of the stream.

use std::borrow::Cow;
use std::time::Duration;

use bellwether_proto::otlp::common::{any_value::Value, AnyValue};
use bellwether_proto::otlp::logs::LogRecord;
use bellwether_stacktrace::{JoinedRecord, Joiner, JoinerConfig};

use super::{exception, parse_line, parse_text, MAX_LINE_BYTES, TRUNCATED_ATTR};
use crate::otlp::{as_str, kv, string_value};

/// Multi-line joining settings of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultilineConfig {
    /// An open record is ended after this long without a new line.
    pub timeout: Duration,
    /// Caps on one joined record.
    pub joiner: JoinerConfig,
}

impl Default for MultilineConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(1),
            joiner: JoinerConfig::default(),
        }
    }
}

/// What an assembler has seen, for the stream's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LineCounts {
    /// Lines taken, blank ones included.
    pub lines: u64,
    /// Lines that were not valid UTF-8 (invalid bytes were replaced).
    pub invalid_utf8: u64,
    /// Lines cut at [`MAX_LINE_BYTES`], and records cut at the joiner's caps.
    pub truncated: u64,
}

/// Turns the lines of one stream into records.
pub struct LineAssembler {
    joiner: Joiner,
    counts: LineCounts,
}

impl Default for LineAssembler {
    fn default() -> Self {
        Self::new(JoinerConfig::default())
    }
}

impl LineAssembler {
    pub fn new(config: JoinerConfig) -> Self {
        Self {
            joiner: Joiner::new(config),
            counts: LineCounts::default(),
        }
    }

    /// Counters since the assembler was made.
    pub fn counts(&self) -> LineCounts {
        self.counts
    }

    /// True while the joiner holds an open record (arm the flush timer).
    pub fn has_pending(&self) -> bool {
        self.joiner.has_pending()
    }

    /// Takes one line (without its newline); `overflowed` says the reader dropped bytes
    /// of it beyond the limit. Completed records are appended to `out`.
    pub fn push(&mut self, raw: &[u8], overflowed: bool, now: u64, out: &mut Vec<LogRecord>) {
        self.counts.lines += 1;
        let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // Checking first is much faster than a lossy conversion of valid text.
        let text = match std::str::from_utf8(raw) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => {
                self.counts.invalid_utf8 += 1;
                String::from_utf8_lossy(raw)
            }
        };
        if overflowed || text.len() > MAX_LINE_BYTES {
            // An over-long line is a record of its own, cut and flagged; it ends whatever
            // was being joined.
            self.counts.truncated += 1;
            self.flush(now, out);
            out.extend(parse_line(text.as_bytes(), true, now));
            return;
        }
        for joined in self.joiner.push(&text) {
            self.emit(joined, now, out);
        }
    }

    /// Ends the open record, if any.
    pub fn flush(&mut self, now: u64, out: &mut Vec<LogRecord>) {
        if let Some(joined) = self.joiner.flush() {
            self.emit(joined, now, out);
        }
    }

    fn emit(&mut self, joined: JoinedRecord, now: u64, out: &mut Vec<LogRecord>) {
        if joined.truncated {
            self.counts.truncated += 1;
        }
        out.extend(record_from_joined(joined, now));
    }
}

/// One record from a joined text.
pub fn record_from_joined(joined: JoinedRecord, now: u64) -> Option<LogRecord> {
    if joined.line_count <= 1 {
        // The joiner's text is valid UTF-8 within the caps already.
        return parse_text(joined.text, joined.truncated, now);
    }
    let (first, rest) = joined
        .text
        .split_once('\n')
        .unwrap_or((joined.text.as_str(), ""));
    let mut record = parse_line(first.as_bytes(), false, now)?;
    let structured = as_str(record.body.as_ref()) != Some(first.trim_end_matches('\r'));
    let found = exception::from_text(&mut record, &joined.text);
    if !found && is_json(first) {
        // A JSON line the joiner kept with the lines after it: the stack is in the rest.
        exception::from_text(&mut record, rest);
    }
    let body = match record.body.take() {
        Some(AnyValue {
            value: Some(Value::StringValue(mut message)),
        }) if structured => {
            message.reserve(1 + rest.len());
            message.push('\n');
            message.push_str(rest);
            message
        }
        _ => joined.text,
    };
    record.body = Some(string_value(body));
    if joined.truncated {
        mark_truncated(&mut record);
    }
    Some(record)
}

fn is_json(line: &str) -> bool {
    line.trim_start().starts_with('{')
}

fn mark_truncated(record: &mut LogRecord) {
    if !record.attributes.iter().any(|a| a.key == TRUNCATED_ATTR) {
        record
            .attributes
            .push(kv(TRUNCATED_ATTR, Value::BoolValue(true)));
    }
}

#[cfg(test)]
mod tests;
