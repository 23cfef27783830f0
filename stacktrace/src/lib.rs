//! Stack traces and crash reports of Java, Python, Go, Node and Rust, as they appear in logs.
//!
//! - [`Joiner`] ([`joiner`]): joins the lines of a multi-line record (a log line and the
//!   trace under it, a bare panic, a goroutine dump) into one record, with caps on lines
//!   and bytes. The agent runs it over every plain-text stream.
//! - [`parse`]: finds the trace inside a record's text, names its runtime and extracts the
//!   exception type, message, cause chain and frames ([`ParsedException`]). The collector
//!   runs it over `exception.stacktrace` to fingerprint errors.
//!
//! One file per runtime ([`jvm`], [`python`], [`go`], [`node`], [`rust`]) holds that
//! runtime's frame syntax and its rule for which frames are the application's own.
//! Nothing here does IO, and no input makes it panic.

mod go;
pub mod joiner;
mod jvm;
mod lines;
mod node;
mod python;
mod rust;

#[cfg(test)]
mod tests;

pub use joiner::{JoinedRecord, Joiner, JoinerConfig, DEFAULT_MAX_BYTES, DEFAULT_MAX_LINES};

/// The runtime that printed a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// JVM languages (`\tat pkg.Class.method(File.java:N)`).
    Java,
    /// CPython tracebacks.
    Python,
    /// Go panics and goroutine dumps.
    Go,
    /// Node.js / V8 (`    at fn (file:line:col)`).
    Node,
    /// Rust panics and backtraces.
    Rust,
    /// A lone `Type: message` line with no frames to tell the runtime by.
    Unknown,
}

impl Runtime {
    /// Lower-case name, e.g. `"java"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Java => "java",
            Runtime::Python => "python",
            Runtime::Go => "go",
            Runtime::Node => "node",
            Runtime::Rust => "rust",
            Runtime::Unknown => "unknown",
        }
    }

    /// What joins a frame's module and function in this runtime's own notation.
    pub fn separator(self) -> &'static str {
        match self {
            Runtime::Rust => "::",
            _ => ".",
        }
    }
}

/// One stack frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Class (Java), package (Go), path of modules (Rust), receiver (Node); Python: none.
    pub module: Option<String>,
    /// Method or function name, without arguments.
    pub function: String,
    /// Source file as printed.
    pub file: Option<String>,
    /// Line number in `file`.
    pub line: Option<u32>,
    /// False for frames of the runtime, the standard library and third-party packages.
    pub in_app: bool,
}

/// What [`parse`] found in a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedException {
    /// The runtime that printed the trace.
    pub runtime: Runtime,
    /// E.g. `java.lang.IllegalStateException`, `shop.payments.PaymentError`; `panic` for
    /// Go and Rust panics (`fatal error` / `SIGQUIT` for other Go crashes).
    pub exception_type: String,
    /// The message; lines of a multi-line message joined with `\n`.
    pub exception_message: String,
    /// Types of the causes, outermost first down to the root cause (Java `Caused by:`,
    /// Python "direct cause", Node `[cause]`).
    pub caused_by: Vec<String>,
    /// Types of the exceptions being handled when this one was raised (Python
    /// "During handling of the above exception"), nearest first.
    pub context: Vec<String>,
    /// Frames of the reported exception, most recent call first.
    pub frames: Vec<Frame>,
    /// `file:line:col` a Rust panic names, which also stands when no backtrace was printed.
    pub location: Option<String>,
}

impl ParsedException {
    fn new(runtime: Runtime, exception_type: &str, exception_message: &str) -> Self {
        Self {
            runtime,
            exception_type: exception_type.to_owned(),
            exception_message: exception_message.to_owned(),
            caused_by: Vec::new(),
            context: Vec::new(),
            frames: Vec::new(),
            location: None,
        }
    }

    /// The most recent frame that belongs to the application.
    pub fn top_in_app_frame(&self) -> Option<&Frame> {
        self.frames.iter().find(|f| f.in_app)
    }

    /// `module<separator>function` in the runtime's notation, e.g. `com.shop.Checkout.charge`,
    /// `main.(*Cart).Total`, `rshop::ledger::post`; the function alone without a module.
    pub fn qualified_name(&self, frame: &Frame) -> String {
        match &frame.module {
            Some(module) => format!("{module}{}{}", self.runtime.separator(), frame.function),
            None => frame.function.clone(),
        }
    }
}

/// Finds the first trace in `text` (which may start with a log line) and extracts it.
/// `None` when the text holds no trace and no exception header.
pub fn parse(text: &str) -> Option<ParsedException> {
    let all: Vec<&str> = text.lines().collect();
    for (i, line) in all.iter().enumerate() {
        if lines::is_python_traceback(line) {
            return Some(python::parse(&all[i..]));
        }
        if lines::go_crash_header(line).is_some() || lines::is_goroutine_header(line) {
            return Some(go::parse(&all[i..]));
        }
        if lines::rust_panic_header(line).is_some() {
            return Some(rust::parse(&all[i..]));
        }
        if lines::is_at_frame(line) {
            return Some(if jvm::is_frame(line) {
                jvm::parse(&all, i)
            } else {
                node::parse(&all, i)
            });
        }
    }
    let (_, header) = find_header(&all, all.len())?;
    if header.strength != lines::HeaderStrength::Strong {
        return None;
    }
    Some(ParsedException::new(
        Runtime::Unknown,
        header.exception_type,
        header.message.unwrap_or(""),
    ))
}

/// The exception header of a JVM or V8 trace whose first frame is at `first_frame`:
/// the first strong header before it, else a weak one right above it. The message is
/// the header's own text plus any lines between it and the first frame.
fn find_header<'a>(all: &[&'a str], first_frame: usize) -> Option<(String, lines::Header<'a>)> {
    let before = all.get(..first_frame)?;
    let strong = before.iter().enumerate().find_map(|(i, line)| {
        lines::exception_header(line)
            .filter(|h| h.strength == lines::HeaderStrength::Strong)
            .map(|h| (i, h))
    });
    let (index, header) = match strong {
        Some(found) => found,
        None => {
            let i = first_frame.checked_sub(1)?;
            (i, lines::exception_header(before.get(i)?)?)
        }
    };
    let mut message = header.message.unwrap_or("").to_owned();
    for line in before.iter().skip(index + 1) {
        message.push('\n');
        message.push_str(line);
    }
    Some((message, header))
}

/// Splits `s` at the last occurrence of `sep` that is outside `<…>`, `(…)` and `[…]`.
fn split_last_outside_brackets<'a>(s: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let bytes = s.as_bytes();
    let sep_bytes = sep.as_bytes();
    let mut depth: i32 = 0;
    let mut found = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' | b'(' | b'[' | b'{' => depth += 1,
            // `->` in a closure's signature is no closing bracket.
            b'>' if i > 0 && bytes[i - 1] == b'-' => {}
            b'>' | b')' | b']' | b'}' => depth -= 1,
            _ => {
                if depth == 0 && bytes[i..].starts_with(sep_bytes) {
                    found = Some(i);
                    i += sep_bytes.len();
                    continue;
                }
            }
        }
        i += 1;
    }
    let at = found?;
    // `sep` is ASCII, so both ends of the match are char boundaries.
    Some((s.get(..at)?, s.get(at + sep.len()..)?))
}

/// Splits `path:line` (and `path:line:col`) from the right; the path alone when the tail
/// is not numeric.
fn split_file_line(location: &str) -> (Option<String>, Option<u32>) {
    let location = location.trim();
    if location.is_empty() {
        return (None, None);
    }
    let mut rest = location;
    let mut numbers: Vec<u32> = Vec::new();
    while numbers.len() < 2 {
        match rest.rsplit_once(':') {
            Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => {
                match tail.parse() {
                    Ok(n) => numbers.push(n),
                    Err(_) => break,
                }
                rest = head;
            }
            _ => break,
        }
    }
    // `file:line:col` → the line is the second number from the right.
    let line = numbers.last().copied();
    if rest.is_empty() {
        return (None, line);
    }
    (Some(rest.to_owned()), line)
}
