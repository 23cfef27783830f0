//! A reader for the plain shape most JSON log lines have: objects, arrays, strings
//! without escapes, integers, `true`, `false` and `null`. It gives up on anything else
//! (escapes, fractions and exponents, long integers, deep nesting, and every syntax
//! error), and the line then goes through serde_json. So it never decides what is or is
//! not JSON; whatever it accepts, serde_json reads to the same tree.

use std::borrow::Cow;

use super::{Json, Object, TYPICAL_FIELDS};

/// Nesting handled here; serde_json's own limit (128) is far above it.
const MAX_DEPTH: usize = 32;

/// Integers of at most this many digits fit in a `u64`, so serde_json reads them as
/// integers too (longer ones may become floats).
const MAX_DIGITS: usize = 18;

/// The line's object, or `None` when the line needs serde_json.
pub(super) fn object(line: &str) -> Option<Object<'_>> {
    let mut reader = Reader { text: line, at: 0 };
    let object = reader.object(0)?;
    reader.whitespace();
    (reader.at == line.len()).then_some(object)
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// JSON's four whitespace bytes, as serde_json skips them.
    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.at += 1;
        }
    }

    /// Skips whitespace, then consumes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        self.whitespace();
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn object(&mut self, depth: usize) -> Option<Object<'a>> {
        if depth >= MAX_DEPTH || !self.eat(b'{') {
            return None;
        }
        let capacity = if depth == 0 { TYPICAL_FIELDS } else { 0 };
        let mut members = Vec::with_capacity(capacity);
        if self.eat(b'}') {
            return Some(Object::from_members(members));
        }
        loop {
            self.whitespace();
            let key = self.string()?;
            if !self.eat(b':') {
                return None;
            }
            let value = self.value(depth)?;
            members.push((Cow::Borrowed(key), value));
            if self.eat(b'}') {
                return Some(Object::from_members(members));
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<Vec<Json<'a>>> {
        if depth >= MAX_DEPTH || !self.eat(b'[') {
            return None;
        }
        let mut items = Vec::new();
        if self.eat(b']') {
            return Some(items);
        }
        loop {
            items.push(self.value(depth)?);
            if self.eat(b']') {
                return Some(items);
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// A value inside a container at `depth`.
    fn value(&mut self, depth: usize) -> Option<Json<'a>> {
        self.whitespace();
        match self.peek()? {
            b'"' => self.string().map(|s| Json::String(Cow::Borrowed(s))),
            b'{' => self.object(depth + 1).map(Json::Object),
            b'[' => self.array(depth + 1).map(Json::Array),
            b't' => self.word("true", Json::Bool(true)),
            b'f' => self.word("false", Json::Bool(false)),
            b'n' => self.word("null", Json::Null),
            b'-' | b'0'..=b'9' => self.integer(),
            _ => None,
        }
    }

    fn word(&mut self, word: &str, value: Json<'a>) -> Option<Json<'a>> {
        let rest = self.text.as_bytes().get(self.at..)?;
        if !rest.starts_with(word.as_bytes()) {
            return None;
        }
        self.at += word.len();
        Some(value)
    }

    /// A string with no escapes and no control characters, borrowed from the line.
    fn string(&mut self) -> Option<&'a str> {
        if self.peek() != Some(b'"') {
            return None;
        }
        let start = self.at + 1;
        let rest = self.text.as_bytes().get(start..)?;
        let len = string_stop(rest)?;
        if rest.get(len) != Some(&b'"') {
            return None;
        }
        self.at = start + len + 1;
        // Both ends sit next to ASCII quotes, so they are char boundaries.
        self.text.get(start..start + len)
    }

    /// `-?(0|[1-9][0-9]*)` with no fraction or exponent after it, as serde_json reads
    /// it: non-negative numbers as `u64`, negative ones as `i64`. `-0`, which serde_json
    /// reads as the float `-0.0`, is left to it.
    fn integer(&mut self) -> Option<Json<'a>> {
        let negative = self.peek() == Some(b'-');
        let start = self.at + usize::from(negative);
        let digits = self.text.as_bytes().get(start..)?;
        let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 || len > MAX_DIGITS || (len > 1 && digits.first() == Some(&b'0')) {
            return None;
        }
        if matches!(digits.get(len), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let magnitude = digits
            .get(..len)?
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        self.at = start + len;
        if !negative {
            return Some(Json::Number(magnitude.into()));
        }
        let value = i64::try_from(magnitude).ok()?;
        (value != 0).then(|| Json::Number((-value).into()))
    }
}

/// Index of the first byte that ends a plain string: a quote, a backslash or a control
/// character. Eight bytes at a time (each test below sets the top bit of a byte that
/// matches, and the lowest set bit is always a true match), then byte by byte.
pub(super) fn string_stop(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let is_stop = |b: &u8| matches!(b, b'"' | b'\\' | 0..=0x1f);
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for word in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let x = u64::from_le_bytes(word);
        let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        let found = zero_in(x ^ (ONES * u64::from(b'"')))
            | zero_in(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if found != 0 {
            return Some(offset + found.trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    bytes
        .get(offset..)?
        .iter()
        .position(is_stop)
        .map(|i| offset + i)
}
