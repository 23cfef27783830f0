//! Classifiers for single lines, shared by the [`Joiner`](super::Joiner) and the parsers.
//!
//! Every function here looks at one line only and never allocates.

/// True for a line with nothing but whitespace.
pub(crate) fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// True when the line starts with a space or a tab.
pub(crate) fn is_indented(line: &str) -> bool {
    line.starts_with([' ', '\t'])
}

/// An `at …` frame line of the JVM or of V8 (Node): indented, then `at `.
pub(crate) fn is_at_frame(line: &str) -> bool {
    is_indented(line) && line.trim_start().starts_with("at ")
}

/// Java `Caused by: …` at the start of a line (indented inside `Suppressed:` blocks).
pub(crate) fn is_caused_by(line: &str) -> bool {
    line.trim_start().starts_with("Caused by: ")
}

/// Lines that only occur inside a JVM trace after its first frame.
pub(crate) fn is_jvm_trailer(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("Suppressed: ") || (t.starts_with("... ") && t.ends_with(" more"))
}

/// `Traceback (most recent call last):`, also the indented exception-group form.
pub(crate) fn is_python_traceback(line: &str) -> bool {
    line.trim_end()
        .ends_with("Traceback (most recent call last):")
}

/// How two chained Python tracebacks relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PythonChain {
    /// `The above exception was the direct cause of the following exception:`
    Cause,
    /// `During handling of the above exception, another exception occurred:`
    Context,
}

pub(crate) fn python_chain(line: &str) -> Option<PythonChain> {
    let t = line.trim();
    if t.starts_with("The above exception was the direct cause of the following exception") {
        Some(PythonChain::Cause)
    } else if t.starts_with("During handling of the above exception") {
        Some(PythonChain::Context)
    } else {
        None
    }
}

/// `panic: …`, `fatal error: …` or `SIGQUIT: quit`: the first line of a Go crash.
pub(crate) fn go_crash_header(line: &str) -> Option<(&str, &str)> {
    if let Some(rest) = line.strip_prefix("panic: ") {
        return Some(("panic", rest));
    }
    if let Some(rest) = line.strip_prefix("fatal error: ") {
        return Some(("fatal error", rest));
    }
    // Only the exact lines the Go runtime prints, so that an application's own
    // `SIGTERM: shutting down` stays a log line.
    let line = line.trim_end();
    GO_SIGNAL_LINES
        .contains(&line)
        .then(|| line.split_once(": "))
        .flatten()
}

const GO_SIGNAL_LINES: &[&str] = &[
    "SIGQUIT: quit",
    "SIGABRT: abort",
    "SIGILL: illegal instruction",
    "SIGTRAP: trace trap",
    "SIGBUS: bus error",
    "SIGFPE: floating-point exception",
    "SIGSEGV: segmentation violation",
    "SIGSYS: bad system call",
];

/// `goroutine 18 [runnable]:`
pub(crate) fn is_goroutine_header(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("goroutine ") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest[digits..].starts_with(" [") && line.trim_end().ends_with(':')
}

/// A Go function line of a goroutine dump, e.g. `main.(*Cart).Total(...)`.
pub(crate) fn is_go_function_line(line: &str) -> bool {
    if is_indented(line) || !line.trim_end().ends_with(')') {
        return false;
    }
    match line.find('(') {
        Some(open) => open > 0 && !line[..open].contains(char::is_whitespace),
        None => false,
    }
}

/// `thread 'main' (906) panicked at src/main.rs:4:15:` and older forms; returns what
/// follows `panicked at `.
pub(crate) fn rust_panic_header(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("thread '")?;
    let at = rest.find(" panicked at ")?;
    Some(&rest[at + " panicked at ".len()..])
}

/// A line of a Rust backtrace: `   5: rshop::ledger::post` or `             at ./src/main.rs:4:15`.
pub(crate) fn is_rust_backtrace_line(line: &str) -> bool {
    if !is_indented(line) {
        return false;
    }
    let t = line.trim_start();
    if t.starts_with("at ") || t.starts_with("[... omitted") {
        return true;
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && t[digits..].starts_with(':')
}

/// How sure we are that a line is an exception header such as
/// `java.lang.IllegalStateException: cart 5531 is empty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum HeaderStrength {
    /// `Name: message` or a bare `Name`: shaped like one, nothing more.
    Weak,
    /// The name says exception (`…Error`, `…Exception`, a package-qualified class, or
    /// `Exception in thread "…"`).
    Strong,
}

/// An exception header split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header<'a> {
    pub(crate) strength: HeaderStrength,
    pub(crate) exception_type: &'a str,
    /// Text after `: `, when there is any.
    pub(crate) message: Option<&'a str>,
}

const EXCEPTION_SUFFIXES: &[&str] = &[
    "Exception",
    "Error",
    "Throwable",
    "Failure",
    "Fault",
    "Panic",
    "Exit",
    "Interrupt",
    "Timeout",
];

/// Recognises `Type`, `Type: message`, `Exception in thread "x" Type: message` and
/// `Uncaught Type: message`, where Type is a dotted identifier (`$` allowed).
pub(crate) fn exception_header(line: &str) -> Option<Header<'_>> {
    let mut strong = false;
    let mut s = line.trim_end();
    if let Some(rest) = s.strip_prefix("Exception in thread \"") {
        let close = rest.find("\" ")?;
        s = &rest[close + 2..];
        strong = true;
    } else if let Some(rest) = s.strip_prefix("Uncaught ") {
        s = rest;
    }
    let end = s
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'.'))
        .unwrap_or(s.len());
    let name = &s[..end];
    if !is_dotted_identifier(name) {
        return None;
    }
    let rest = &s[end..];
    let message = if rest.is_empty() {
        None
    } else if let Some(msg) = rest.strip_prefix(": ") {
        Some(msg)
    } else if rest == ":" {
        Some("")
    } else {
        return None;
    };
    let last = name.rsplit(['.', '$']).next().unwrap_or(name);
    if EXCEPTION_SUFFIXES
        .iter()
        .any(|suffix| last.ends_with(suffix))
    {
        strong = true;
    }
    // `com.shop.Checkout$PaymentException`, `shop.payments.GatewayTimeout`: a package path
    // in lower case followed by a capitalised class name.
    let first = name.split('.').next().unwrap_or(name);
    let class = name.rsplit('.').next().unwrap_or(name);
    if name.contains('.')
        && first
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && class.starts_with(|c: char| c.is_ascii_uppercase())
    {
        strong = true;
    }
    Some(Header {
        strength: if strong {
            HeaderStrength::Strong
        } else {
            HeaderStrength::Weak
        },
        exception_type: name,
        message,
    })
}

fn is_dotted_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .split('.')
            .all(|part| part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '$'))
}

const LEVELS: &[&str] = &[
    "TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "WARNING", "ERROR", "ERR", "SEVERE", "FATAL",
    "CRITICAL", "CRIT", "ALERT", "EMERG", "PANIC",
];

const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

const LOGFMT_KEYS: &[&str] = &["time=", "ts=", "t=", "level=", "lvl=", "msg="];

/// True when a line looks like the first line of a new log record: a timestamp, a level,
/// a JSON object, a logfmt time/level key, or the first line of a trace.
pub(crate) fn looks_like_record_start(line: &str) -> bool {
    let s = line.strip_prefix('[').unwrap_or(line);
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits >= 2 && matches!(s.as_bytes().get(digits), Some(b'-' | b'/' | b':' | b'.')) {
        return true;
    }
    if line.starts_with('{') {
        return true;
    }
    let word_end = s
        .bytes()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(s.len());
    let word = &s[..word_end];
    let after = s.as_bytes().get(word_end).copied();
    if LEVELS.contains(&word) && !matches!(after, Some(b) if b.is_ascii_alphanumeric() || b == b'_')
    {
        return true;
    }
    if MONTHS.contains(&word) && after == Some(b' ') {
        let day = s[word_end..].trim_start();
        if day.starts_with(|c: char| c.is_ascii_digit()) {
            return true;
        }
    }
    if LOGFMT_KEYS.iter().any(|key| line.starts_with(key)) {
        return true;
    }
    starts_trace(line)
}

/// The first line of a trace or crash report of any runtime we know.
pub(crate) fn starts_trace(line: &str) -> bool {
    is_python_traceback(line)
        || go_crash_header(line).is_some()
        || is_goroutine_header(line)
        || rust_panic_header(line).is_some()
}

/// True for a line that is a JSON object on its own: a structured record is complete.
pub(crate) fn is_json_object(line: &str) -> bool {
    let t = line.trim();
    t.starts_with('{') && t.ends_with('}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_headers() {
        let h = exception_header("com.shop.Checkout$PaymentException: charge failed").unwrap();
        assert_eq!(h.exception_type, "com.shop.Checkout$PaymentException");
        assert_eq!(h.message, Some("charge failed"));
        assert_eq!(h.strength, HeaderStrength::Strong);

        let h = exception_header("Exception in thread \"main\" java.lang.NullPointerException")
            .unwrap();
        assert_eq!(h.exception_type, "java.lang.NullPointerException");
        assert_eq!(h.message, None);

        let h = exception_header("shop.payments.GatewayTimeout: gateway timed out").unwrap();
        assert_eq!(h.strength, HeaderStrength::Strong);
        let h = exception_header("StopIteration").unwrap();
        assert_eq!(h.strength, HeaderStrength::Weak);
        let h = exception_header("main.go: rotated").unwrap();
        assert_eq!(h.strength, HeaderStrength::Weak);

        assert!(exception_header("2026-11-26 12:00:01 ERROR x").is_none());
        assert!(exception_header("ERROR:root:failed").is_none());
        assert!(exception_header("hello world").is_none());
        assert!(exception_header("").is_none());
        assert!(exception_header("a..b: x").is_none());
    }

    #[test]
    fn record_starts() {
        for line in [
            "2026-11-26 12:00:01.101  INFO 1 --- [main] x : y",
            "2026/11/26 19:08:25.275742 ERROR payment failed",
            "12:00:01 started",
            "[2026-11-26T12:00:01Z] hello",
            "INFO starting",
            "[ERROR] failed",
            "Nov 26 12:00:01 host app[1]: hi",
            "{\"level\":\"info\"}",
            "level=info msg=hi",
            "panic: boom",
            "thread 'main' panicked at src/main.rs:1:1:",
        ] {
            assert!(looks_like_record_start(line), "{line}");
        }
        for line in [
            "ledger entry missing for posting",
            "3 items missing",
            "Information is missing",
            "    at foo",
        ] {
            assert!(!looks_like_record_start(line), "{line}");
        }
    }

    #[test]
    fn go_lines() {
        assert!(is_goroutine_header("goroutine 18 [runnable]:"));
        assert!(!is_goroutine_header("goroutine x [runnable]:"));
        assert!(is_go_function_line("main.(*Cart).Total(...)"));
        assert!(is_go_function_line("panic({0x4a4f80?, 0xc000010048?})"));
        assert!(!is_go_function_line("\t/app/main.go:12"));
        assert!(!is_go_function_line("hello (world)"));
        assert_eq!(go_crash_header("SIGQUIT: quit"), Some(("SIGQUIT", "quit")));
        assert_eq!(go_crash_header("SIGTERM: shutting down"), None);
    }
}
