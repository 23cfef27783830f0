//! Joins the lines of multi-line records (stack traces, panics) into one record.
//!
//! The joiner is a state machine over lines. Each record remembers what kind of text it
//! is in (a plain log line, a JVM/V8 trace, a Python traceback, a Go crash, a Rust panic);
//! the next line either continues it or starts a new record. Blank lines are held back
//! until the next line decides: they are kept inside a trace that goes on after them
//! (chained Python tracebacks, goroutine dumps) and dropped between records.

use super::lines::{
    exception_header, go_crash_header, is_at_frame, is_blank, is_caused_by, is_go_function_line,
    is_goroutine_header, is_indented, is_json_object, is_jvm_trailer, is_python_traceback,
    is_rust_backtrace_line, looks_like_record_start, python_chain, rust_panic_header,
    HeaderStrength,
};

/// Default cap on the lines of one record.
pub const DEFAULT_MAX_LINES: usize = 500;
/// Default cap on the bytes of one record (256 KiB).
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024;

/// Caps on one joined record; a record that reaches either is cut and flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinerConfig {
    /// Most lines in one record (at least 1 is used).
    pub max_lines: usize,
    /// Most bytes of text in one record, newlines included (at least 1 is used).
    pub max_bytes: usize,
}

impl Default for JoinerConfig {
    fn default() -> Self {
        Self {
            max_lines: DEFAULT_MAX_LINES,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// One record: its lines joined with `\n`, the first line kept intact (unless it alone
/// exceeds the byte cap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedRecord {
    /// The record's text, lines separated by `\n`, no trailing newline.
    pub text: String,
    /// How many lines `text` holds.
    pub line_count: usize,
    /// True when the record hit a cap: `text` holds its start only, the rest was dropped.
    pub truncated: bool,
}

impl JoinedRecord {
    /// The record's first line (a log line's timestamp and level live there).
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }
}

/// What the current record is, which decides which lines continue it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A line that no trace has joined yet; `json` lines are complete on their own.
    Plain { json: bool },
    /// A JVM or V8 exception header with no frame yet.
    ExceptionHeader,
    /// After an `at …` frame; `brace` while inside a V8 `{ code: … }` trailer.
    AtFrames { brace: bool },
    /// Inside a Python traceback, before its final `Type: message` line.
    PyTraceback,
    /// After the final line of a Python traceback.
    PyFinal,
    /// After `During handling …` / `The above exception …`.
    PyChain,
    /// After `panic: …` and before the first goroutine.
    GoHeader,
    /// Inside a goroutine dump.
    GoStack,
    /// After `thread '…' panicked at …`; `first` while the message line is still due.
    RustMessage { first: bool },
    /// After `stack backtrace:`.
    RustBacktrace,
    /// After a `note: …` line, or any other line that ends a trace.
    Done,
}

impl State {
    fn start(line: &str) -> State {
        if is_python_traceback(line) {
            State::PyTraceback
        } else if go_crash_header(line).is_some() {
            State::GoHeader
        } else if is_goroutine_header(line) {
            State::GoStack
        } else if let Some(rest) = rust_panic_header(line) {
            // Since Rust 1.73 the message follows on its own line(s).
            State::RustMessage {
                first: rest.trim_end().ends_with(':'),
            }
        } else if is_at_frame(line) || is_caused_by(line) {
            State::AtFrames {
                brace: opens_brace(line),
            }
        } else if matches!(exception_header(line), Some(h) if h.strength == HeaderStrength::Strong)
        {
            State::ExceptionHeader
        } else {
            State::Plain {
                json: is_json_object(line),
            }
        }
    }

    /// The state after `line` when it continues the record, `None` when it starts a new
    /// one. `after_blank`: blank lines came between the record and `line`.
    fn next(self, line: &str, after_blank: bool) -> Option<State> {
        match self {
            State::Plain { json } => {
                if json || after_blank {
                    None
                } else if is_python_traceback(line) {
                    Some(State::PyTraceback)
                } else if is_at_frame(line) {
                    Some(State::AtFrames {
                        brace: opens_brace(line),
                    })
                } else if matches!(exception_header(line), Some(h) if h.strength == HeaderStrength::Strong)
                {
                    Some(State::ExceptionHeader)
                } else {
                    None
                }
            }
            State::ExceptionHeader => {
                if after_blank {
                    None
                } else if is_at_frame(line) || is_caused_by(line) {
                    Some(State::AtFrames {
                        brace: opens_brace(line),
                    })
                } else {
                    None
                }
            }
            State::AtFrames { brace: true } => {
                let closed = line.starts_with('}');
                Some(State::AtFrames { brace: !closed })
            }
            State::AtFrames { brace: false } => {
                if after_blank {
                    // `node` prints its version after a blank line when it dies.
                    line.starts_with("Node.js v").then_some(State::Done)
                } else if is_at_frame(line) {
                    Some(State::AtFrames {
                        brace: opens_brace(line),
                    })
                } else if is_caused_by(line) || is_jvm_trailer(line) || is_indented(line) {
                    Some(State::AtFrames { brace: false })
                } else {
                    None
                }
            }
            State::PyTraceback => {
                if after_blank {
                    None
                } else if is_indented(line) {
                    Some(State::PyTraceback)
                } else if exception_header(line).is_some() {
                    Some(State::PyFinal)
                } else {
                    None
                }
            }
            State::PyFinal => python_chain(line).map(|_| State::PyChain),
            State::PyChain => is_python_traceback(line).then_some(State::PyTraceback),
            State::GoHeader => {
                if is_goroutine_header(line) {
                    Some(State::GoStack)
                } else if line.starts_with("exit status ") {
                    Some(State::Done)
                } else if after_blank {
                    None
                } else if line.starts_with("[signal ")
                    || line.starts_with("PC=")
                    || is_indented(line)
                    || !looks_like_record_start(line)
                {
                    // `[signal SIGSEGV …]`, a nested `\tpanic: …`, or the rest of a
                    // multi-line panic message.
                    Some(State::GoHeader)
                } else {
                    None
                }
            }
            State::GoStack => {
                if is_goroutine_header(line) || line == "runtime stack:" {
                    Some(State::GoStack)
                } else if line.starts_with("exit status ") {
                    Some(State::Done)
                } else if after_blank {
                    None
                } else if is_indented(line)
                    || line.starts_with("created by ")
                    || line.starts_with("...")
                    || is_go_function_line(line)
                {
                    Some(State::GoStack)
                } else {
                    None
                }
            }
            State::RustMessage { first } => {
                if after_blank {
                    None
                } else if line.starts_with("stack backtrace:") {
                    Some(State::RustBacktrace)
                } else if line.starts_with("note: ") {
                    Some(State::Done)
                } else if first || !looks_like_record_start(line) {
                    Some(State::RustMessage { first: false })
                } else {
                    None
                }
            }
            State::RustBacktrace => {
                if after_blank {
                    None
                } else if is_rust_backtrace_line(line) {
                    Some(State::RustBacktrace)
                } else if line.starts_with("note: ") {
                    Some(State::Done)
                } else {
                    None
                }
            }
            State::Done => (!after_blank && line.starts_with("note: ")).then_some(State::Done),
        }
    }
}

fn opens_brace(line: &str) -> bool {
    line.trim_end().ends_with(" {")
}

struct Building {
    text: String,
    line_count: usize,
    state: State,
}

/// Joins lines into records; see the module documentation.
///
/// Feed lines with [`push`](Joiner::push); call [`flush`](Joiner::flush) when no line
/// came for a while or the input ended. The joiner keeps no clock of its own.
pub struct Joiner {
    max_lines: usize,
    max_bytes: usize,
    current: Option<Building>,
    /// Blank lines seen since the last non-blank line of the current record.
    pending_blank: usize,
    /// After a record was cut at a cap: the state whose continuation lines are dropped.
    discarding: Option<State>,
    discarded_lines: u64,
}

impl Default for Joiner {
    fn default() -> Self {
        Self::new(JoinerConfig::default())
    }
}

impl Joiner {
    /// A joiner with the given caps (a cap of 0 counts as 1).
    pub fn new(config: JoinerConfig) -> Self {
        Self {
            max_lines: config.max_lines.max(1),
            max_bytes: config.max_bytes.max(1),
            current: None,
            pending_blank: 0,
            discarding: None,
            discarded_lines: 0,
        }
    }

    /// True while a record is open (the caller should arm its flush timer).
    pub fn has_pending(&self) -> bool {
        self.current.is_some()
    }

    /// Lines dropped so far because their record had reached a cap.
    pub fn discarded_lines(&self) -> u64 {
        self.discarded_lines
    }

    /// Takes one line (a trailing `\n` / `\r\n` is ignored) and returns the records it
    /// completed: none, the previous record, or a record cut at a cap.
    pub fn push(&mut self, line: &str) -> Vec<JoinedRecord> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut out = Vec::new();
        if is_blank(line) {
            if self.current.is_some() || self.discarding.is_some() {
                self.pending_blank = self.pending_blank.saturating_add(1);
            }
            return out;
        }
        let after_blank = self.pending_blank > 0;
        let blanks = std::mem::take(&mut self.pending_blank);

        if let Some(state) = self.discarding.take() {
            if let Some(next) = state.next(line, after_blank) {
                self.discarding = Some(next);
                self.discarded_lines = self
                    .discarded_lines
                    .saturating_add(blanks as u64)
                    .saturating_add(1);
                return out;
            }
        }

        if let Some(mut building) = self.current.take() {
            if let Some(next) = building.state.next(line, after_blank) {
                building.state = next;
                let mut fits = true;
                for _ in 0..blanks {
                    fits = fits && self.append(&mut building, "");
                }
                fits = fits && self.append(&mut building, line);
                if fits {
                    self.current = Some(building);
                } else {
                    self.discarding = Some(next);
                    out.push(finish(building, true));
                }
                return out;
            }
            out.push(finish(building, false));
        }

        let state = State::start(line);
        let mut building = Building {
            text: String::new(),
            line_count: 0,
            state,
        };
        if self.append(&mut building, line) {
            self.current = Some(building);
        } else {
            self.discarding = Some(state);
            out.push(finish(building, true));
        }
        out
    }

    /// Ends the open record, if any (on a timeout or at the end of the input).
    pub fn flush(&mut self) -> Option<JoinedRecord> {
        self.pending_blank = 0;
        self.discarding = None;
        self.current.take().map(|b| finish(b, false))
    }

    /// Appends one line; false when a cap was reached (the part of the line that fits
    /// is kept, so a record is never empty).
    fn append(&mut self, building: &mut Building, line: &str) -> bool {
        if building.line_count >= self.max_lines {
            self.discarded_lines = self.discarded_lines.saturating_add(1);
            return false;
        }
        let separator = usize::from(building.line_count > 0);
        let room = self
            .max_bytes
            .saturating_sub(building.text.len())
            .saturating_sub(separator);
        if building.line_count > 0 && room == 0 {
            self.discarded_lines = self.discarded_lines.saturating_add(1);
            return false;
        }
        if separator == 1 {
            building.text.push('\n');
        }
        building.line_count += 1;
        if line.len() <= room {
            building.text.push_str(line);
            true
        } else {
            building.text.push_str(floor_char_boundary(line, room));
            false
        }
    }
}

fn finish(building: Building, truncated: bool) -> JoinedRecord {
    JoinedRecord {
        text: building.text,
        line_count: building.line_count,
        truncated,
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub(crate) fn floor_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
