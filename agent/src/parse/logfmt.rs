//! logfmt lines: `time=… level=error msg="payment failed" order=42`.
//!
//! A line is read as logfmt only when every whitespace-separated token is a `key=value`
//! pair (values may be double-quoted with `\"`, `\\`, `\n`, `\t` escapes) and it holds at
//! least two pairs, or one pair whose key is a well-known one (`level`, `msg`, …). Prose
//! that merely contains `order=42` somewhere stays plain text.

use std::borrow::Cow;

use bellwether_proto::otlp::logs::LogRecord;

use super::{severity, time};
use crate::otlp::{string_kv, string_value};

const BODY_KEYS: [&str; 2] = ["msg", "message"];
const LEVEL_KEYS: [&str; 3] = ["level", "lvl", "severity"];
const TIME_KEYS: [&str; 4] = ["time", "ts", "timestamp", "t"];
const TRACE_ID_KEYS: [&str; 2] = ["trace_id", "traceID"];
const SPAN_ID_KEYS: [&str; 2] = ["span_id", "spanID"];

/// Splits a logfmt line into its pairs; `None` when the line is not logfmt. Values
/// borrow from the line unless they held escapes.
pub fn pairs(line: &str) -> Option<Vec<(&str, Cow<'_, str>)>> {
    let bytes = line.as_bytes();
    let mut pairs = Vec::with_capacity(8);
    let mut i = 0;
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        let key_start = i;
        while i < bytes.len() && !matches!(bytes[i], b'=' | b'"') && !bytes[i].is_ascii_whitespace()
        {
            i += 1;
        }
        if i == key_start || i == bytes.len() || bytes[i] != b'=' {
            return None;
        }
        // The key ends at an ASCII byte, so both slices fall on char boundaries.
        let key = line.get(key_start..i)?;
        i += 1;
        let value = if bytes.get(i) == Some(&b'"') {
            let (value, end) = quoted(line, i + 1)?;
            i = end;
            if i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                return None;
            }
            value
        } else {
            let start = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                if bytes[i] == b'"' {
                    return None;
                }
                i += 1;
            }
            Cow::Borrowed(line.get(start..i)?)
        };
        pairs.push((key, value));
    }
    let known = |k: &str| BODY_KEYS.contains(&k) || LEVEL_KEYS.contains(&k);
    match pairs.as_slice() {
        [] => None,
        [(key, _)] if !known(key) => None,
        _ => Some(pairs),
    }
}

/// Reads a quoted value starting after its opening quote; returns it unescaped and the
/// index after the closing quote. `None` when the quote is never closed.
fn quoted(line: &str, start: usize) -> Option<(Cow<'_, str>, usize)> {
    let rest = line.get(start..)?;
    let stop = rest.bytes().position(|b| matches!(b, b'"' | b'\\'))?;
    // Both stop bytes are ASCII, so `stop` is a char boundary.
    let plain = rest.get(..stop)?;
    if rest.as_bytes().get(stop) == Some(&b'"') {
        return Some((Cow::Borrowed(plain), start + stop + 1));
    }
    let mut value = String::with_capacity(stop + 16);
    value.push_str(plain);
    let mut chars = rest.get(stop..)?.char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '"' => return Some((Cow::Owned(value), start + stop + offset + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, 'r')) => value.push('\r'),
                Some((_, other)) => value.push(other),
                None => return None,
            },
            other => value.push(other),
        }
    }
    None
}

/// Fills `record` from a logfmt line; `false` (record untouched) when it is not logfmt.
/// Without a `msg` pair, `record.body` is left unset for the caller to fill with the
/// line itself.
pub(super) fn parse(line: &str, record: &mut LogRecord) -> bool {
    let Some(pairs) = pairs(line) else {
        return false;
    };
    let mut body = None;
    let mut level = None;
    let mut stamp = None;
    for (key, value) in pairs {
        if body.is_none() && BODY_KEYS.contains(&key) {
            body = Some(value);
        } else if level.is_none() && LEVEL_KEYS.contains(&key) {
            match severity::from_field_text(&value) {
                Some(sev) => level = Some(sev),
                None => record.attributes.push(string_kv(key, value)),
            }
        } else if stamp.is_none() && TIME_KEYS.contains(&key) {
            match time::parse_timestamp_text(&value) {
                Some(nanos) => stamp = Some(nanos),
                None => record.attributes.push(string_kv(key, value)),
            }
        } else if record.trace_id.is_empty() && TRACE_ID_KEYS.contains(&key) {
            match hex_id(&value, 16) {
                Some(id) => record.trace_id = id,
                None => record.attributes.push(string_kv(key, value)),
            }
        } else if record.span_id.is_empty() && SPAN_ID_KEYS.contains(&key) {
            match hex_id(&value, 8) {
                Some(id) => record.span_id = id,
                None => record.attributes.push(string_kv(key, value)),
            }
        } else {
            record.attributes.push(string_kv(key, value));
        }
    }
    record.body = body.map(string_value);
    if let Some(sev) = level {
        record.severity_number = sev.number;
        record.severity_text = sev.text;
    }
    if let Some(nanos) = stamp {
        record.time_unix_nano = nanos;
    }
    true
}

/// A non-zero id of `len` bytes written in hex.
fn hex_id(text: &str, len: usize) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.len() != len * 2 || !text.is_ascii() {
        return None;
    }
    let bytes = (0..len)
        .map(|i| u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    bytes.iter().any(|b| *b != 0).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn splits_pairs_with_quotes_and_escapes() {
        let got = pairs(r#"level=error msg="x y \"z\"" path=/a/b empty= n=1"#).expect("logfmt");
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        assert_eq!(
            got,
            [
                ("level", "error"),
                ("msg", "x y \"z\""),
                ("path", "/a/b"),
                ("empty", ""),
                ("n", "1"),
            ]
        );
    }

    #[test]
    fn prose_with_a_pair_is_not_logfmt() {
        for line in [
            "settlement failed order=4410 error=\"ledger unavailable\"",
            "2026-11-26T12:00:04.001Z ERROR order=1 x=2",
            "count=3",
            "msg=\"unterminated",
            "a=b\"c d=e",
            "=value level=info",
            "",
        ] {
            assert_eq!(pairs(line), None, "{line}");
        }
        assert!(pairs("msg=hello").is_some());
        assert!(pairs("a=1 b=2").is_some());
    }

    proptest! {
        #[test]
        fn never_panics_and_round_trips_simple_values(
            raw in proptest::collection::vec(any::<u8>(), 0..300),
            values in proptest::collection::vec("[a-z0-9 \"\\\\=]{0,12}", 1..6),
        ) {
            let text = String::from_utf8_lossy(&raw);
            let mut record = LogRecord::default();
            let _ = parse(&text, &mut record);

            let line: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("k{i}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            let line = line.join(" ");
            let got = pairs(&line);
            let expected: Vec<(String, String)> = values
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("k{i}"), v.clone()))
                .collect();
            if values.len() >= 2 {
                let got: Vec<(String, String)> = got
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.into_owned()))
                    .collect();
                prop_assert_eq!(got, expected);
            }
        }
    }
}
