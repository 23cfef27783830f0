//! Replaces the variable parts of an error message with placeholders, so that the same
//! error with another id, number or timestamp reads the same.
//!
//! One left-to-right pass. At each word start the recognisers are tried in order (quoted
//! value after `=`, URL, email, UUID, time, IP, hex, duration, float, integer); a word
//! none of them takes is copied whole. Every recogniser looks ahead a bounded distance
//! or consumes what it scans, so the pass is linear in the message length. URLs, emails
//! and IP addresses are recognised in [`network`](super::network).

use super::network::{email, ipv4_with_port, ipv6_with_port, url};

/// Placeholders, as they appear in parameterized messages.
pub const UUID: &str = "<uuid>";
pub const EMAIL: &str = "<email>";
pub const URL: &str = "<url>";
pub const IP: &str = "<ip>";
pub const TIME: &str = "<time>";
pub const DURATION: &str = "<duration>";
pub const HEX: &str = "<hex>";
pub const FLOAT: &str = "<float>";
pub const INT: &str = "<int>";
pub const STR: &str = "<str>";

/// `message` with UUIDs, emails, URLs, IP addresses (with port), dates and times,
/// durations, hex numbers (≥ 8 digits, or `0x…`), floats, integers and quoted values
/// after `=` replaced by placeholders.
pub fn parameterize(message: &str) -> String {
    let bytes = message.as_bytes();
    let mut out = String::with_capacity(message.len());
    let mut next = Lookahead::default();
    let mut verbatim_from = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let matched = if (b == b'"' || b == b'\'') && i > 0 && bytes[i - 1] == b'=' {
            quoted(bytes, i).map(|end| (end, STR))
        } else if is_word_start(bytes, i) {
            recognise(bytes, i, &mut next)
        } else {
            None
        };
        if let Some((end, placeholder)) = matched {
            // Matches start and end on ASCII bytes (or after `µ`), so these are char
            // boundaries.
            out.push_str(message.get(verbatim_from..i).unwrap_or(""));
            out.push_str(placeholder);
            i = end;
            verbatim_from = end;
        } else if is_word_start(bytes, i) && is_word_byte(b) {
            i += word_len(bytes, i);
        } else {
            i += 1;
        }
    }
    out.push_str(message.get(verbatim_from..).unwrap_or(""));
    out
}

/// Where the next `:` and `@` are. URLs, IPv6 addresses and emails need one of them
/// within a few bytes; knowing where the next one is spares scanning for them at every
/// word. Each search starts past the previous hit, so all searches together read the
/// message once.
#[derive(Default)]
struct Lookahead {
    colon: Option<usize>,
    at: Option<usize>,
}

impl Lookahead {
    fn colon_within(&mut self, bytes: &[u8], i: usize, max: usize) -> bool {
        within(&mut self.colon, bytes, b':', i, max)
    }

    fn at_within(&mut self, bytes: &[u8], i: usize, max: usize) -> bool {
        within(&mut self.at, bytes, b'@', i, max)
    }
}

/// `cache` holds the position of the next `needle` at or after some earlier index
/// (`bytes.len()` when there is none).
fn within(cache: &mut Option<usize>, bytes: &[u8], needle: u8, i: usize, max: usize) -> bool {
    let pos = match *cache {
        Some(pos) if pos >= i => pos,
        _ => {
            let pos = bytes
                .get(i..)
                .and_then(|rest| rest.iter().position(|&b| b == needle))
                .map_or(bytes.len(), |p| i + p);
            *cache = Some(pos);
            pos
        }
    };
    pos < bytes.len() && pos - i <= max
}

pub(super) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_word_start(bytes: &[u8], i: usize) -> bool {
    bytes[i] < 0x80 && (i == 0 || !is_word_byte(bytes[i - 1]))
}

fn word_len(bytes: &[u8], i: usize) -> usize {
    bytes[i..].iter().take_while(|&&b| is_word_byte(b)).count()
}

/// True when `i` is the end of input or a byte that cannot continue a word.
pub(super) fn boundary_at(bytes: &[u8], i: usize) -> bool {
    bytes.get(i).is_none_or(|&b| !is_word_byte(b))
}

pub(super) fn count_while(bytes: &[u8], i: usize, max: usize, pred: impl Fn(u8) -> bool) -> usize {
    bytes
        .get(i..)
        .unwrap_or(&[])
        .iter()
        .take(max)
        .take_while(|&&b| pred(b))
        .count()
}

pub(super) fn digits(bytes: &[u8], i: usize, max: usize) -> usize {
    count_while(bytes, i, max, |b| b.is_ascii_digit())
}

/// `"…"` / `'…'` starting at `i` (backslash escapes honoured): the index after the
/// closing quote.
fn quoted(bytes: &[u8], i: usize) -> Option<usize> {
    let quote = bytes[i];
    let mut j = i + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b if b == quote => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

fn recognise(bytes: &[u8], i: usize, next: &mut Lookahead) -> Option<(usize, &'static str)> {
    let b = bytes[i];
    if b.is_ascii_alphabetic() && next.colon_within(bytes, i, 33) {
        if let Some(end) = url(bytes, i) {
            return Some((end, URL));
        }
    }
    if next.at_within(bytes, i, 64) {
        if let Some(end) = email(bytes, i) {
            return Some((end, EMAIL));
        }
    }
    if let Some(end) = uuid(bytes, i) {
        return Some((end, UUID));
    }
    if b.is_ascii_digit() {
        if let Some(end) = time(bytes, i) {
            return Some((end, TIME));
        }
        if let Some(end) = ipv4_with_port(bytes, i) {
            return Some((end, IP));
        }
    }
    if (b.is_ascii_hexdigit() || b == b':' || b == b'[') && next.colon_within(bytes, i, 6) {
        if let Some(end) = ipv6_with_port(bytes, i) {
            return Some((end, IP));
        }
    }
    if let Some(end) = hex(bytes, i) {
        return Some((end, HEX));
    }
    if b.is_ascii_digit() {
        return number(bytes, i);
    }
    None
}

/// `8-4-4-4-12` hex digits.
fn uuid(bytes: &[u8], i: usize) -> Option<usize> {
    let candidate = bytes.get(i..i + 36)?;
    for (n, &b) in candidate.iter().enumerate() {
        let ok = if matches!(n, 8 | 13 | 18 | 23) {
            b == b'-'
        } else {
            b.is_ascii_hexdigit()
        };
        if !ok {
            return None;
        }
    }
    boundary_at(bytes, i + 36).then_some(i + 36)
}

/// `2026-11-26`, `2026/11/26`, either followed by `T` or a space and a time; or a time
/// alone: `12:00:01`, `12:00:01.101`, `19:08:06,883`, with an optional `Z` / `±hh:mm`.
fn time(bytes: &[u8], i: usize) -> Option<usize> {
    if let Some(date_end) = date(bytes, i) {
        if matches!(bytes.get(date_end), Some(b'T' | b' ')) {
            if let Some(end) = clock(bytes, date_end + 1) {
                return Some(end);
            }
        }
        return boundary_at(bytes, date_end).then_some(date_end);
    }
    clock(bytes, i)
}

fn date(bytes: &[u8], i: usize) -> Option<usize> {
    if digits(bytes, i, 5) != 4 {
        return None;
    }
    let sep = *bytes.get(i + 4)?;
    if sep != b'-' && sep != b'/' {
        return None;
    }
    if digits(bytes, i + 5, 3) != 2
        || bytes.get(i + 7) != Some(&sep)
        || digits(bytes, i + 8, 3) != 2
    {
        return None;
    }
    Some(i + 10)
}

fn clock(bytes: &[u8], i: usize) -> Option<usize> {
    let h = digits(bytes, i, 3);
    if !(1..=2).contains(&h) {
        return None;
    }
    let mut j = i + h;
    for _ in 0..2 {
        if bytes.get(j) != Some(&b':') || digits(bytes, j + 1, 3) != 2 {
            return None;
        }
        j += 3;
    }
    if matches!(bytes.get(j), Some(b'.' | b',')) {
        let fraction = digits(bytes, j + 1, 12);
        if fraction > 0 {
            j += 1 + fraction;
        }
    }
    match bytes.get(j) {
        Some(b'Z') => j += 1,
        Some(b'+' | b'-') if digits(bytes, j + 1, 3) == 2 => {
            let mut k = j + 3;
            if bytes.get(k) == Some(&b':') {
                k += 1;
            }
            if digits(bytes, k, 3) == 2 {
                j = k + 2;
            }
        }
        _ => {}
    }
    boundary_at(bytes, j).then_some(j)
}

/// `0x1f…`, or a word of ≥ 8 hex digits with both digits and letters.
fn hex(bytes: &[u8], i: usize) -> Option<usize> {
    if bytes[i] == b'0' && matches!(bytes.get(i + 1), Some(b'x' | b'X')) {
        let n = count_while(bytes, i + 2, usize::MAX, |b| b.is_ascii_hexdigit());
        let end = i + 2 + n;
        return (n > 0 && boundary_at(bytes, end)).then_some(end);
    }
    let n = count_while(bytes, i, usize::MAX, |b| b.is_ascii_hexdigit());
    let end = i + n;
    let word = &bytes[i..end];
    (n >= 8
        && boundary_at(bytes, end)
        && word.iter().any(u8::is_ascii_digit)
        && word.iter().any(u8::is_ascii_alphabetic))
    .then_some(end)
}

/// Units a number may carry to be a duration; long names may follow after one space.
const COMPACT_UNITS: &[&str] = &[
    "nanoseconds",
    "microseconds",
    "milliseconds",
    "seconds",
    "second",
    "minutes",
    "minute",
    "hours",
    "hour",
    "days",
    "day",
    "millis",
    "msec",
    "secs",
    "sec",
    "mins",
    "min",
    "hrs",
    "hr",
    "ns",
    "us",
    "µs",
    "μs",
    "ms",
    "s",
    "m",
    "h",
];

fn unit_at(bytes: &[u8], j: usize, spaced: bool) -> Option<usize> {
    let rest = bytes.get(j..)?;
    COMPACT_UNITS
        .iter()
        .filter(|unit| !spaced || unit.len() >= 2)
        .find(|unit| rest.starts_with(unit.as_bytes()) && boundary_at(bytes, j + unit.len()))
        .map(|unit| j + unit.len())
        .or_else(|| {
            // Go's compound `1h30m5.5s`: a unit directly followed by another number.
            COMPACT_UNITS
                .iter()
                .filter(|unit| !spaced && unit.len() <= 2)
                .find(|unit| {
                    rest.starts_with(unit.as_bytes())
                        && bytes.get(j + unit.len()).is_some_and(u8::is_ascii_digit)
                })
                .map(|unit| j + unit.len())
        })
}

/// A number, then: a unit (duration), or nothing word-like (float or integer).
fn number(bytes: &[u8], i: usize) -> Option<(usize, &'static str)> {
    let (mut end, is_float) = scan_number(bytes, i);
    if let Some(mut unit_end) = unit_at(bytes, end, false) {
        // Compound durations: keep taking number+unit pairs.
        while bytes.get(unit_end).is_some_and(u8::is_ascii_digit) {
            let (next, _) = scan_number(bytes, unit_end);
            match unit_at(bytes, next, false) {
                Some(e) => unit_end = e,
                None => break,
            }
        }
        if boundary_at(bytes, unit_end) {
            return Some((unit_end, DURATION));
        }
    }
    if bytes.get(end) == Some(&b' ') {
        if let Some(unit_end) = unit_at(bytes, end + 1, true) {
            return Some((unit_end, DURATION));
        }
    }
    if !boundary_at(bytes, end) {
        return None;
    }
    if is_float {
        return Some((end, FLOAT));
    }
    // `1.2.3`: each part is an integer; `3.` at the end of a sentence too.
    end = i + digits(bytes, i, usize::MAX);
    Some((end, INT))
}

/// Digits, then an optional `.digits` and exponent; not a float when another `.digit`
/// follows (a version such as `1.2.3`).
fn scan_number(bytes: &[u8], i: usize) -> (usize, bool) {
    let mut j = i + digits(bytes, i, usize::MAX);
    // The second part of `1.2.3` is no float either.
    let after_version_dot = i >= 2 && bytes[i - 1] == b'.' && bytes[i - 2].is_ascii_digit();
    if bytes.get(j) == Some(&b'.') && !after_version_dot {
        let fraction = digits(bytes, j + 1, usize::MAX);
        let after = j + 1 + fraction;
        let version =
            bytes.get(after) == Some(&b'.') && bytes.get(after + 1).is_some_and(u8::is_ascii_digit);
        if fraction > 0 && !version {
            j = after;
            if matches!(bytes.get(j), Some(b'e' | b'E')) {
                let sign = usize::from(matches!(bytes.get(j + 1), Some(b'+' | b'-')));
                let exponent = digits(bytes, j + 1 + sign, usize::MAX);
                if exponent > 0 {
                    j += 1 + sign + exponent;
                }
            }
            return (j, true);
        }
    }
    (j, false)
}
