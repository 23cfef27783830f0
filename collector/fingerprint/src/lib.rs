//! Error fingerprints: which errors are "the same error".
//!
//! A fingerprint is computed from the exception type, the message with its variable parts
//! replaced by placeholders ([`parameterize`]), and the module/function of the top three
//! in-app frames (never line numbers, so an unrelated edit above a function does not
//! split an issue). A `bellwether.fingerprint` attribute on the record overrides it
//! ([`Fingerprint::from_override`]). The id is FNV-1a 64 over that input, so it is the
//! same on every build and platform and can be stored.

mod network;
mod parameterize;

#[cfg(test)]
mod tests;

use bellwether_stacktrace::Frame;

pub use parameterize::parameterize;

/// The attribute that overrides the computed fingerprint.
pub const OVERRIDE_ATTRIBUTE: &str = "bellwether.fingerprint";

/// How many in-app frames take part in a fingerprint.
pub const FRAMES_IN_FINGERPRINT: usize = 3;

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// A stable error signature and its human title.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// 16 lower-case hex digits.
    pub id: String,
    /// `Type: parameterized message`, at most [`MAX_TITLE_CHARS`] characters.
    pub title: String,
}

impl Fingerprint {
    /// Fingerprint of an error from its type, message and frames (most recent first).
    /// The top [`FRAMES_IN_FINGERPRINT`] in-app frames count; when no frame is in-app
    /// (the error surfaced inside a library), the top frames count instead.
    pub fn compute(exception_type: &str, message: &str, frames: &[Frame]) -> Fingerprint {
        let exception_type = exception_type.trim();
        let message = parameterize(message.trim());
        let mut hash = Fnv1a64::new();
        hash.write(b"bellwether.fingerprint.v1");
        hash.field(exception_type.as_bytes());
        hash.field(message.as_bytes());
        let in_app = frames.iter().any(|f| f.in_app);
        for frame in frames
            .iter()
            .filter(|f| f.in_app || !in_app)
            .take(FRAMES_IN_FINGERPRINT)
        {
            // Generated names (`$$Lambda$14/0x…`) vary between builds only in their
            // numbers, so frame names are parameterized too.
            let module = frame
                .module
                .as_deref()
                .map(parameterize)
                .unwrap_or_default();
            hash.field(module.as_bytes());
            hash.field(parameterize(&frame.function).as_bytes());
        }
        Fingerprint {
            id: hash.hex(),
            title: title(exception_type, &message),
        }
    }

    /// Fingerprint chosen by the application (the `bellwether.fingerprint` attribute);
    /// `None` when `value` is blank. The title still describes the error.
    pub fn from_override(value: &str, exception_type: &str, message: &str) -> Option<Fingerprint> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        let mut hash = Fnv1a64::new();
        hash.write(b"bellwether.fingerprint.override");
        hash.field(value.as_bytes());
        let message = parameterize(message.trim());
        let mut title = title(exception_type.trim(), &message);
        if title.is_empty() {
            title = truncate_chars(value, MAX_TITLE_CHARS);
        }
        Some(Fingerprint {
            id: hash.hex(),
            title,
        })
    }

    /// The override when one is given and not blank, else the computed fingerprint.
    pub fn resolve(
        override_value: Option<&str>,
        exception_type: &str,
        message: &str,
        frames: &[Frame],
    ) -> Fingerprint {
        override_value
            .and_then(|value| Fingerprint::from_override(value, exception_type, message))
            .unwrap_or_else(|| Fingerprint::compute(exception_type, message, frames))
    }
}

fn title(exception_type: &str, parameterized_message: &str) -> String {
    let full = match (exception_type.is_empty(), parameterized_message.is_empty()) {
        (false, false) => format!("{exception_type}: {parameterized_message}"),
        (false, true) => exception_type.to_owned(),
        (true, _) => parameterized_message.to_owned(),
    };
    // Multi-line messages make one-line titles.
    let one_line = full.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate_chars(&one_line, MAX_TITLE_CHARS)
}

/// At most `max` characters; a cut title ends with `…`.
fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some(_) => {
            let keep: String = s.chars().take(max.saturating_sub(1)).collect();
            format!("{keep}…")
        }
    }
}

/// FNV-1a, 64 bit: tiny, and the same on every platform and toolchain (unlike std's
/// `DefaultHasher`, whose algorithm may change between releases).
struct Fnv1a64(u64);

impl Fnv1a64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Self(Self::OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// A length-prefixed field, so that ("ab", "c") and ("a", "bc") differ.
    fn field(&mut self, bytes: &[u8]) {
        self.write(&(bytes.len() as u64).to_le_bytes());
        self.write(bytes);
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}
