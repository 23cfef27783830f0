//! Rust panics: `thread 'main' panicked at src/main.rs:4:15:`, the message line(s), and
//! optionally `stack backtrace:` with `   N: symbol` / `             at path:line:col`.

use super::lines::{is_blank, is_indented, rust_panic_header};
use super::{split_file_line, split_last_outside_brackets, Frame, ParsedException, Runtime};

const LIBRARY_PREFIXES: &[&str] = &[
    "std::",
    "core::",
    "alloc::",
    "__rustc::",
    "rust_begin_unwind",
    "panic_unwind::",
    "panic_abort::",
    "backtrace::",
    "__rust",
];

/// Entry points of the C runtime and the OS seen at the bottom of full backtraces.
const RUNTIME_ENTRY: &[&str] = &[
    "main",
    "_start",
    "__libc_start_main",
    "__libc_start_call_main",
    "start_thread",
    "clone",
    "clone3",
    "BaseThreadInitThunk",
    "RtlUserThreadStart",
    "mainCRTStartup",
    "__scrt_common_main_seh",
    "<unknown>",
];

const LIBRARY_FILES: &[&str] = &["/rustc/", ".cargo/registry", ".cargo/git", "/library/std/"];

/// Parses the panic starting at `all[0]`.
pub(super) fn parse(all: &[&str]) -> ParsedException {
    let mut parsed = ParsedException::new(Runtime::Rust, "panic", "");
    let Some(after) = all.first().and_then(|line| rust_panic_header(line)) else {
        return parsed;
    };
    let after = after.trim_end();
    let mut i = 1;
    if let Some(location) = after.strip_suffix(':') {
        // Rust ≥ 1.73: the location on this line, the message below it.
        parsed.location = Some(location.to_owned());
        let mut message: Vec<&str> = Vec::new();
        while let Some(line) = all.get(i) {
            if line.starts_with("note: ") || line.starts_with("stack backtrace:") {
                break;
            }
            message.push(line);
            i += 1;
        }
        while message.last().is_some_and(|l| is_blank(l)) {
            message.pop();
        }
        parsed.exception_message = message.join("\n");
    } else if let Some(quoted) = after.strip_prefix('\'') {
        // Older Rust: `panicked at 'message', src/main.rs:4:15`.
        match quoted.rsplit_once("', ") {
            Some((message, location)) => {
                parsed.exception_message = message.to_owned();
                parsed.location = Some(location.to_owned());
            }
            None => parsed.exception_message = quoted.to_owned(),
        }
    } else {
        parsed.location = Some(after.to_owned());
    }

    let Some(start) = all
        .iter()
        .skip(i)
        .position(|l| l.starts_with("stack backtrace:"))
    else {
        return parsed;
    };
    for line in all.iter().skip(i + start + 1) {
        if !is_indented(line) {
            break;
        }
        let t = line.trim_start();
        if let Some(location) = t.strip_prefix("at ") {
            if let Some(frame) = parsed.frames.last_mut() {
                if frame.file.is_none() {
                    let (file, line_number) = split_file_line(location);
                    if file
                        .as_deref()
                        .is_some_and(|f| LIBRARY_FILES.iter().any(|m| f.contains(m)))
                    {
                        frame.in_app = false;
                    }
                    frame.file = file;
                    frame.line = line_number;
                }
            }
            continue;
        }
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            continue;
        }
        let Some(symbol) = t[digits..].strip_prefix(':') else {
            continue;
        };
        parsed.frames.push(parse_symbol(symbol.trim()));
    }
    parsed
}

/// `rshop::ledger::post`, `0x55d5c1b0a1e3 - std::rt::lang_start::h5d2c…`,
/// `<alloc::boxed::Box<F,A> as core::ops::function::FnOnce<Args>>::call_once`.
fn parse_symbol(symbol: &str) -> Frame {
    // `RUST_BACKTRACE=full` prints the address first.
    let symbol = match symbol.split_once(" - ") {
        Some((address, rest)) if address.starts_with("0x") => rest,
        _ => symbol,
    };
    let symbol = strip_hash(symbol);
    let (module, function) = match split_last_outside_brackets(symbol, "::") {
        Some((module, function)) if !module.is_empty() => {
            (Some(module.to_owned()), function.to_owned())
        }
        _ => (None, symbol.to_owned()),
    };
    let path = symbol.trim_start_matches('<');
    let in_app = !(LIBRARY_PREFIXES.iter().any(|p| path.starts_with(p))
        || (module.is_none() && RUNTIME_ENTRY.contains(&symbol)));
    Frame {
        module,
        function,
        file: None,
        line: None,
        in_app,
    }
}

/// Drops the `::h0123456789abcdef` hash of a mangled symbol.
fn strip_hash(symbol: &str) -> &str {
    match symbol.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => symbol,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols() {
        let f = parse_symbol("rshop::ledger::post");
        assert_eq!(f.module.as_deref(), Some("rshop::ledger"));
        assert_eq!(f.function, "post");
        assert!(f.in_app);

        let f = parse_symbol("0x55d5c1b0a1e3 - std::rt::lang_start::h5d2c8a61e1d2f4a7");
        assert_eq!(f.module.as_deref(), Some("std::rt"));
        assert_eq!(f.function, "lang_start");
        assert!(!f.in_app);

        let f = parse_symbol(
            "<alloc::boxed::Box<F,A> as core::ops::function::FnOnce<Args>>::call_once",
        );
        assert_eq!(f.function, "call_once");
        assert!(!f.in_app);

        let f = parse_symbol("main");
        assert!(!f.in_app);
        let f = parse_symbol("rshop::main::{{closure}}");
        assert_eq!(f.function, "{{closure}}");
        assert!(f.in_app);
    }

    #[test]
    fn old_format() {
        let all = ["thread 'main' panicked at 'boom', src/main.rs:2:5"];
        let p = parse(&all);
        assert_eq!(p.exception_message, "boom");
        assert_eq!(p.location.as_deref(), Some("src/main.rs:2:5"));
    }

    #[test]
    fn third_party_crates_are_not_in_app() {
        let text = "thread 'tokio-runtime-worker' panicked at src/db.rs:9:1:\nboom\nstack backtrace:\n   0: sqlx_core::pool::acquire\n             at /home/u/.cargo/registry/src/index.crates.io-6f17d22bba15001f/sqlx-core-0.8.0/src/pool.rs:1:1\n   1: app::db::get\n             at ./src/db.rs:9:1";
        let all: Vec<&str> = text.lines().collect();
        let p = parse(&all);
        assert_eq!(p.frames.len(), 2);
        assert!(!p.frames[0].in_app);
        assert!(p.frames[1].in_app);
        assert_eq!(p.frames[1].line, Some(9));
    }
}
