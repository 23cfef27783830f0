//! Node.js / V8 traces: `TypeError: message`, `    at fn (/app/x.js:3:22)`,
//! `    at /app/x.js:3:22`, and an optional `{ code: …, [cause]: … }` trailer.

use super::lines::{exception_header, is_at_frame, is_indented};
use super::{find_header, split_file_line, Frame, ParsedException, Runtime};

/// Parses the trace whose first frame is `all[first_frame]`.
pub(super) fn parse(all: &[&str], first_frame: usize) -> ParsedException {
    let (message, header) = match find_header(all, first_frame) {
        Some((message, header)) => (message, Some(header)),
        None => (String::new(), None),
    };
    let exception_type = header.map(|h| h.exception_type).unwrap_or("");
    let mut parsed = ParsedException::new(Runtime::Node, exception_type, &message);

    let rest = all.get(first_frame..).unwrap_or(&[]);
    let mut in_trailer = false;
    for line in rest {
        if in_trailer {
            if line.starts_with('}') {
                break;
            }
            // `  [cause]: Error: inner` inside the trailer.
            if let Some(cause) = line.trim_start().strip_prefix("[cause]: ") {
                if let Some(h) = exception_header(cause) {
                    parsed.caused_by.push(h.exception_type.to_owned());
                }
            }
        } else if is_at_frame(line) {
            parsed.frames.push(parse_frame(line));
            in_trailer = line.trim_end().ends_with(" {");
        } else if !is_indented(line) {
            break;
        }
    }
    parsed
}

fn parse_frame(line: &str) -> Frame {
    let t = line.trim();
    let t = t.strip_suffix(" {").unwrap_or(t);
    let content = t.strip_prefix("at ").unwrap_or(t);
    let (name, location) = match content.split_once(" (") {
        Some((name, rest)) => (name, rest.strip_suffix(')').unwrap_or(rest)),
        None => ("", content),
    };
    let name = name.strip_prefix("async ").unwrap_or(name);
    let name = name.strip_prefix("new ").unwrap_or(name);
    // `Server.handle [as handler]`
    let name = name.split(" [as ").next().unwrap_or(name).trim();
    let (module, function) = match name.rsplit_once('.') {
        Some((module, function)) if !module.is_empty() && !function.is_empty() => {
            (Some(module.to_owned()), function.to_owned())
        }
        _ if name.is_empty() => (None, "<anonymous>".to_owned()),
        _ => (None, name.to_owned()),
    };
    let location = location.strip_prefix("file://").unwrap_or(location);
    let (file, line_number) = split_file_line(location);
    let in_app = match file.as_deref() {
        Some(f) => {
            !(f.starts_with("node:")
                || f.starts_with("internal/")
                || f.contains("node_modules")
                || f.starts_with('<')
                || f == "native")
        }
        None => false,
    };
    Frame {
        module,
        function,
        file,
        line: line_number,
        in_app,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let f = parse_frame("    at async main (/app/server.js:11:5)");
        assert_eq!(f.function, "main");
        assert_eq!(f.module, None);
        assert_eq!(f.file.as_deref(), Some("/app/server.js"));
        assert_eq!(f.line, Some(11));
        assert!(f.in_app);

        let f = parse_frame(
            "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
        );
        assert_eq!(f.module.as_deref(), Some("process"));
        assert!(!f.in_app);

        let f = parse_frame("    at /app/node_modules/express/lib/router.js:10:2");
        assert_eq!(f.function, "<anonymous>");
        assert!(!f.in_app);

        let f = parse_frame("    at new Promise (<anonymous>)");
        assert_eq!(f.function, "Promise");
        assert!(!f.in_app);
    }

    #[test]
    fn trailer_and_cause() {
        let text = "Error: outer\n    at run (/app/a.js:1:1) {\n  code: 'E_OUTER',\n  [cause]: TypeError: inner\n      at x (/app/b.js:2:2)\n}";
        let all: Vec<&str> = text.lines().collect();
        let p = parse(&all, 1);
        assert_eq!(p.exception_type, "Error");
        assert_eq!(p.exception_message, "outer");
        assert_eq!(p.caused_by, vec!["TypeError".to_owned()]);
        assert_eq!(p.frames.len(), 1);
    }
}
