//! CPython tracebacks, chained ones included. Python prints the innermost exception
//! first: each `The above exception was the direct cause …` / `During handling of the
//! above exception …` line relates the traceback above it to the one below, and the
//! last traceback is the exception that was reported.

use super::lines::{
    exception_header, is_blank, is_indented, is_python_traceback, python_chain, PythonChain,
};
use super::{Frame, ParsedException, Runtime};

const LIBRARY_MARKERS: &[&str] = &[
    "site-packages",
    "dist-packages",
    "/lib/python2",
    "/lib/python3",
    "\\lib\\",
    "\\Lib\\",
];

struct Block {
    exception_type: String,
    message: String,
    /// In print order: most recent call last.
    frames: Vec<Frame>,
    /// How the block above this one relates to it.
    chained_from: Option<PythonChain>,
}

/// Parses tracebacks starting at `all[0]` (a `Traceback …` line).
pub(super) fn parse(all: &[&str]) -> ParsedException {
    let mut blocks: Vec<Block> = Vec::new();
    let mut pending_chain: Option<PythonChain> = None;
    let mut i = 0;
    while i < all.len() {
        let line = all[i];
        if is_python_traceback(line) {
            let (block, next) = parse_block(all, i + 1, pending_chain.take());
            blocks.push(block);
            i = next;
            continue;
        }
        if let Some(chain) = python_chain(line) {
            pending_chain = Some(chain);
        } else if !is_blank(line) {
            break;
        }
        i += 1;
    }

    let Some(last) = blocks.pop() else {
        return ParsedException::new(Runtime::Python, "", "");
    };
    let mut parsed = ParsedException::new(Runtime::Python, &last.exception_type, &last.message);
    parsed.frames = last.frames.into_iter().rev().collect();
    let mut link = last.chained_from;
    while let (Some(chain), Some(block)) = (link, blocks.pop()) {
        match chain {
            PythonChain::Cause => parsed.caused_by.push(block.exception_type),
            PythonChain::Context => parsed.context.push(block.exception_type),
        }
        link = block.chained_from;
    }
    parsed
}

/// Parses one traceback body from `all[start]`; returns it and the index after it.
fn parse_block(all: &[&str], start: usize, chained_from: Option<PythonChain>) -> (Block, usize) {
    let mut block = Block {
        exception_type: String::new(),
        message: String::new(),
        frames: Vec::new(),
        chained_from,
    };
    let mut i = start;
    // Exception groups (3.11+) print `  | ` before every line and their sub-exceptions
    // after a `+-+---- 1 ----` separator; only the group's own frames are its frames.
    let mut in_sub_exceptions = false;
    while i < all.len() {
        let line = all[i];
        if is_indented(line) {
            let t = line.trim_start();
            if t.starts_with("+-") {
                in_sub_exceptions = true;
            } else if let Some(inner) = t.strip_prefix("| ") {
                if !in_sub_exceptions {
                    if let Some(frame) = parse_frame(inner) {
                        block.frames.push(frame);
                    } else if let Some(h) = exception_header(inner) {
                        if block.exception_type.is_empty() {
                            block.exception_type = h.exception_type.to_owned();
                            block.message = h.message.unwrap_or("").to_owned();
                        }
                    }
                }
            } else if let Some(frame) = parse_frame(line) {
                block.frames.push(frame);
            }
            i += 1;
            continue;
        }
        if is_blank(line) || is_python_traceback(line) || python_chain(line).is_some() {
            break;
        }
        // The final `Type: message` line, then any further lines of a multi-line message.
        match exception_header(line) {
            Some(h) => {
                block.exception_type = h.exception_type.to_owned();
                block.message = h.message.unwrap_or("").to_owned();
            }
            None => {
                block.message = line.to_owned();
            }
        }
        i += 1;
        while i < all.len() {
            let more = all[i];
            if is_blank(more) || is_python_traceback(more) || python_chain(more).is_some() {
                break;
            }
            block.message.push('\n');
            block.message.push_str(more);
            i += 1;
        }
        break;
    }
    (block, i)
}

/// `  File "/app/shop/payments.py", line 12, in charge`
fn parse_frame(line: &str) -> Option<Frame> {
    let rest = line.trim_start().strip_prefix("File \"")?;
    let (file, rest) = rest.split_once('"')?;
    let mut line_number = None;
    let mut function = "<unknown>";
    for part in rest.split(", ") {
        let part = part.trim();
        if let Some(n) = part.strip_prefix("line ") {
            line_number = n.trim().parse().ok();
        } else if let Some(f) = part.strip_prefix("in ") {
            function = f.trim();
        }
    }
    let in_app = !(file.starts_with("<frozen")
        || LIBRARY_MARKERS.iter().any(|marker| file.contains(marker)));
    Some(Frame {
        module: None,
        function: function.to_owned(),
        file: Some(file.to_owned()),
        line: line_number,
        in_app,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let f =
            parse_frame("  File \"/usr/lib/python3.11/threading.py\", line 982, in run").unwrap();
        assert_eq!(f.function, "run");
        assert_eq!(f.line, Some(982));
        assert!(!f.in_app);
        let f = parse_frame("  File \"<frozen importlib._bootstrap>\", line 1, in _load").unwrap();
        assert!(!f.in_app);
        let f = parse_frame("  File \"/app/x.py\", line 3").unwrap();
        assert_eq!(f.function, "<unknown>");
        assert!(f.in_app);
        assert!(parse_frame("    return d[k]").is_none());
    }

    #[test]
    fn mixed_chain() {
        let text = "Traceback (most recent call last):\n  File \"/app/a.py\", line 1, in a\nKeyError: 'k'\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"/app/a.py\", line 2, in b\nValueError: v\n\nThe above exception was the direct cause of the following exception:\n\nTraceback (most recent call last):\n  File \"/app/a.py\", line 3, in c\napp.Failed: f\nsecond line";
        let all: Vec<&str> = text.lines().collect();
        let p = parse(&all);
        assert_eq!(p.exception_type, "app.Failed");
        assert_eq!(p.exception_message, "f\nsecond line");
        assert_eq!(p.caused_by, vec!["ValueError".to_owned()]);
        assert_eq!(p.context, vec!["KeyError".to_owned()]);
        assert_eq!(p.frames[0].function, "c");
    }
}
