//! Go crashes: `panic: …` (or `fatal error: …`, `SIGQUIT: quit`), then goroutine blocks
//! of `pkg.function(args)` / `\t/path/file.go:N +0x…` pairs. The first goroutine is the
//! one that crashed; only its frames are reported.

use super::lines::{go_crash_header, is_blank, is_go_function_line, is_goroutine_header};
use super::{split_file_line, Frame, ParsedException, Runtime};

const LIBRARY_MARKERS: &[&str] = &[
    "/usr/local/go/",
    "/usr/lib/go",
    "/libexec/src/",
    "/pkg/mod/",
    "/vendor/",
];

/// Parses the crash starting at `all[0]`.
pub(super) fn parse(all: &[&str]) -> ParsedException {
    let mut parsed = ParsedException::new(Runtime::Go, "goroutine dump", "");
    let mut i = 0;
    if let Some((kind, message)) = all.first().and_then(|line| go_crash_header(line)) {
        parsed.exception_type = kind.to_owned();
        let message = message.trim_end();
        let message = message.strip_suffix(" [recovered]").unwrap_or(message);
        parsed.exception_message = message.to_owned();
        i = 1;
        // The rest of a multi-line panic message, up to the signal line or the dump.
        while let Some(line) = all.get(i) {
            if is_blank(line)
                || line.starts_with("[signal ")
                || line.starts_with(['\t', ' '])
                || is_goroutine_header(line)
            {
                break;
            }
            parsed.exception_message.push('\n');
            parsed.exception_message.push_str(line);
            i += 1;
        }
    }

    let Some(start) = all
        .iter()
        .skip(i)
        .position(|line| is_goroutine_header(line))
    else {
        return parsed;
    };
    let mut pending: Option<Frame> = None;
    let mut skip_location = false;
    for line in all.iter().skip(i + start + 1) {
        if is_blank(line) || is_goroutine_header(line) {
            break;
        }
        if let Some(location) = line.strip_prefix('\t') {
            if let Some(mut frame) = pending.take() {
                let location = location.split(" +0x").next().unwrap_or(location);
                let (file, line_number) = split_file_line(location);
                frame.in_app = frame.in_app && !is_library_file(file.as_deref());
                frame.file = file;
                frame.line = line_number;
                parsed.frames.push(frame);
            } else if skip_location {
                skip_location = false;
            }
            continue;
        }
        if let Some(frame) = pending.take() {
            parsed.frames.push(frame);
        }
        if line.starts_with("created by ") {
            skip_location = true;
        } else if is_go_function_line(line) {
            pending = Some(parse_function(line));
        }
    }
    if let Some(frame) = pending {
        parsed.frames.push(frame);
    }
    parsed
}

fn is_library_file(file: Option<&str>) -> bool {
    file.is_some_and(|f| LIBRARY_MARKERS.iter().any(|m| f.contains(m)))
}

/// `main.(*Cart).Total(...)`, `github.com/x/y.F[...](0x1, {0x2, 0x3})`.
fn parse_function(line: &str) -> Frame {
    let line = line.trim_end();
    let symbol = strip_arguments(line);
    // The package path ends at the first `.` after its last `/`; a `/` inside brackets
    // belongs to type parameters.
    let bracket = symbol.find(['(', '[']).unwrap_or(symbol.len());
    let package_start = symbol[..bracket].rfind('/').map_or(0, |slash| slash + 1);
    let (module, function) = match symbol[package_start..].find('.') {
        Some(dot) => {
            let dot = package_start + dot;
            (Some(symbol[..dot].to_owned()), symbol[dot + 1..].to_owned())
        }
        None => (None, symbol.to_owned()),
    };
    let in_app = match module.as_deref() {
        Some(m) => m != "runtime" && !m.starts_with("runtime/"),
        // `panic(...)`, `goexit(...)` without a package are the runtime's.
        None => false,
    };
    Frame {
        module,
        function,
        file: None,
        line: None,
        in_app,
    }
}

/// Drops the trailing `(args)` group.
fn strip_arguments(line: &str) -> &str {
    let bytes = line.as_bytes();
    if bytes.last() != Some(&b')') {
        return line;
    }
    let mut depth = 0usize;
    for (i, &b) in bytes.iter().enumerate().rev() {
        match b {
            b')' => depth += 1,
            b'(' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return &line[..i];
                }
            }
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions() {
        let f = parse_function("main.(*Cart).Total(...)");
        assert_eq!(f.module.as_deref(), Some("main"));
        assert_eq!(f.function, "(*Cart).Total");
        let f = parse_function("github.com/acme/shop/cart.(*Cart).Add(0xc000010000, {0x1, 0x2})");
        assert_eq!(f.module.as_deref(), Some("github.com/acme/shop/cart"));
        assert_eq!(f.function, "(*Cart).Add");
        let f = parse_function("runtime.gopanic({0x4a4f80?, 0xc000010048?})");
        assert!(!f.in_app);
        let f = parse_function("panic({0x4a4f80?, 0xc000010048?})");
        assert_eq!(f.function, "panic");
        assert!(!f.in_app);
    }

    #[test]
    fn stdlib_and_modules_are_not_in_app() {
        let text = "panic: boom [recovered]\n\tpanic: boom\n\ngoroutine 7 [running]:\nnet/http.(*conn).serve.func1()\n\t/usr/local/go/src/net/http/server.go:1854 +0xbf\ngithub.com/acme/shop.handler(0x1)\n\t/app/handler.go:20 +0x10\ncreated by net/http.(*Server).Serve in goroutine 1\n\t/usr/local/go/src/net/http/server.go:3086 +0x5cb";
        let all: Vec<&str> = text.lines().collect();
        let p = parse(&all);
        assert_eq!(p.exception_type, "panic");
        assert_eq!(p.exception_message, "boom");
        assert_eq!(p.frames.len(), 2);
        assert!(!p.frames[0].in_app);
        assert!(p.frames[1].in_app);
        assert_eq!(p.frames[1].line, Some(20));
        assert_eq!(p.frames[1].file.as_deref(), Some("/app/handler.go"));
    }
}
