//! Joiner behaviour across runtimes, and fuzz-style properties over arbitrary input.
//! (The real-runtime fixtures are checked in `tests/fixtures.rs`.)

use super::*;

fn join_all(joiner: &mut Joiner, text: &str) -> Vec<JoinedRecord> {
    let mut out = Vec::new();
    for line in text.split('\n') {
        out.extend(joiner.push(line));
    }
    out.extend(joiner.flush());
    out
}

fn texts(text: &str) -> Vec<String> {
    join_all(&mut Joiner::default(), text)
        .into_iter()
        .map(|r| r.text)
        .collect()
}

#[test]
fn plain_lines_are_records_of_their_own() {
    assert_eq!(
        texts("2026-01-01 INFO a\n2026-01-01 INFO b\nhello\nworld"),
        vec!["2026-01-01 INFO a", "2026-01-01 INFO b", "hello", "world"]
    );
}

#[test]
fn java_exception_after_log_line_joins_and_next_log_line_splits() {
    let got = texts(
        "12:00:01 ERROR failed\njava.lang.IllegalStateException: x\n\tat a.B.c(B.java:1)\nCaused by: java.io.IOException: y\n\tat a.B.d(B.java:2)\n\t... 1 more\n12:00:02 INFO next",
    );
    assert_eq!(got.len(), 2);
    assert!(got[0].ends_with("\t... 1 more"));
    assert_eq!(got[1], "12:00:02 INFO next");
}

#[test]
fn json_lines_do_not_absorb_a_following_trace() {
    let got = texts("{\"msg\":\"x\"}\nError: boom\n    at f (/app/a.js:1:1)");
    assert_eq!(
        got,
        vec!["{\"msg\":\"x\"}", "Error: boom\n    at f (/app/a.js:1:1)"]
    );
}

#[test]
fn a_header_after_frames_starts_a_new_trace() {
    let got = texts("Error: a\n    at f (/app/a.js:1:1)\nTypeError: b\n    at g (/app/a.js:2:2)");
    assert_eq!(got.len(), 2);
    assert!(got[1].starts_with("TypeError: b"));
}

#[test]
fn node_property_trailer_and_version_footer() {
    let text = "Error: ENOENT: no such file\n    at open (node:fs:1:1) {\n  errno: -2,\n  code: 'ENOENT'\n}\n\nNode.js v20.11.0\nnext";
    let got = texts(text);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].ends_with("Node.js v20.11.0"));
    assert_eq!(got[1], "next");
}

#[test]
fn go_panic_without_preceding_log_line_and_exit_status() {
    let text = "panic: boom [recovered]\n\tpanic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/app/main.go:5 +0x1d\nexit status 2\n2026/01/01 12:00:00 INFO restarted";
    let got = texts(text);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].ends_with("exit status 2"));
    let p = parse(&got[0]).unwrap();
    assert_eq!(p.exception_message, "boom");
    assert_eq!(p.frames[0].function, "main");
}

#[test]
fn rust_panic_multi_line_message_ends_at_a_log_line() {
    let text =
        "thread 'w' panicked at src/a.rs:1:1:\nfirst\nsecond\n2026-01-01T00:00:00Z INFO next";
    let got = texts(text);
    assert_eq!(got.len(), 2);
    assert_eq!(parse(&got[0]).unwrap().exception_message, "first\nsecond");
}

#[test]
fn python_exception_group_stays_one_record() {
    let text = "  + Exception Group Traceback (most recent call last):\n  |   File \"/app/a.py\", line 1, in <module>\n  |     raise ExceptionGroup(\"many\", errors)\n  | ExceptionGroup: many (2 sub-exceptions)\n  +-+---------------- 1 ----------------\n    | Traceback (most recent call last):\n    |   File \"/app/a.py\", line 9, in check\n    | ValueError: 1\n    +---------------- 2 ----------------\n    | TypeError: 2\n    +------------------------------------\n2026-01-01 12:00:00,000 INFO next";
    let got = texts(text);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].ends_with("+------------------------------------"));
    let p = parse(&got[0]).unwrap();
    assert_eq!(p.exception_type, "ExceptionGroup");
    assert_eq!(p.exception_message, "many (2 sub-exceptions)");
    assert_eq!(p.frames.len(), 1);
    assert_eq!(p.frames[0].function, "<module>");
}

#[test]
fn go_fatal_error_and_sigquit_dumps() {
    let text = "fatal error: all goroutines are asleep - deadlock!\n\ngoroutine 1 [chan receive]:\nmain.main()\n\t/app/main.go:9 +0x2d\n\ngoroutine 5 [select]:\nmain.worker()\n\t/app/main.go:20 +0x10\nSIGQUIT: quit\nPC=0x46ec41 m=0 sigcode=0\n\ngoroutine 0 [idle]:\nruntime.futex()\n\t/usr/local/go/src/runtime/sys_linux_amd64.s:557 +0x21\nSIGTERM: shutting down";
    let got = texts(text);
    assert_eq!(got.len(), 3, "{got:?}");
    let fatal = parse(&got[0]).unwrap();
    assert_eq!(fatal.exception_type, "fatal error");
    assert_eq!(
        fatal.exception_message,
        "all goroutines are asleep - deadlock!"
    );
    assert_eq!(fatal.frames.len(), 1, "only the first goroutine's frames");
    let quit = parse(&got[1]).unwrap();
    assert_eq!(quit.exception_type, "SIGQUIT");
    assert_eq!(quit.top_in_app_frame(), None);
    assert_eq!(got[2], "SIGTERM: shutting down");
    assert!(parse(&got[2]).is_none());
}

#[test]
fn rust_full_backtrace() {
    let text = "thread '<unnamed>' panicked at src/lib.rs:3:5:\nboom\nstack backtrace:\n   0:     0x55d5c1b0a1e3 - std::panicking::begin_panic::h5d2c8a61e1d2f4a7\n                               at /rustc/abc/library/std/src/panicking.rs:1:1\n   1:     0x55d5c1b0a1f0 - app::worker::run::h0123456789abcdef\n                               at /src/app/src/worker.rs:3:5\n   2:     0x55d5c1b0a200 - main\n   3:     0x7f0000000000 - __libc_start_main\n2026-01-01T00:00:00Z INFO next";
    let got = texts(text);
    assert_eq!(got.len(), 2, "{got:?}");
    let p = parse(&got[0]).unwrap();
    assert_eq!(p.exception_message, "boom");
    let top = p.top_in_app_frame().unwrap();
    assert_eq!(p.qualified_name(top), "app::worker::run");
    assert_eq!(top.line, Some(3));
    assert_eq!(p.frames.iter().filter(|f| f.in_app).count(), 1);
}

#[test]
fn blank_lines_between_records_are_dropped() {
    assert_eq!(texts("\n\na\n\n\nb\n"), vec!["a", "b"]);
}

#[test]
fn crlf_and_trailing_newlines_are_ignored() {
    let mut j = Joiner::default();
    assert!(j.push("Error: x\r\n").is_empty());
    assert!(j.push("    at f (/a.js:1:1)\r\n").is_empty());
    let r = j.flush().unwrap();
    assert_eq!(r.text, "Error: x\n    at f (/a.js:1:1)");
    assert_eq!(r.line_count, 2);
    assert!(!j.has_pending());
}

#[test]
fn line_cap_cuts_the_record_and_drops_the_rest_of_the_trace() {
    let mut j = Joiner::new(JoinerConfig {
        max_lines: 3,
        max_bytes: 1 << 20,
    });
    let mut out = Vec::new();
    out.extend(j.push("java.lang.StackOverflowError"));
    for _ in 0..10 {
        out.extend(j.push("\tat a.B.c(B.java:1)"));
    }
    out.extend(j.push("12:00:00 INFO after"));
    out.extend(j.flush());
    assert_eq!(out.len(), 2);
    assert!(out[0].truncated);
    assert_eq!(out[0].line_count, 3);
    assert_eq!(out[1].text, "12:00:00 INFO after");
    assert!(!out[1].truncated);
    assert_eq!(j.discarded_lines(), 8);
}

#[test]
fn byte_cap_cuts_on_a_char_boundary() {
    let mut j = Joiner::new(JoinerConfig {
        max_lines: 100,
        max_bytes: 10,
    });
    let out = j.push("ééééééééé");
    assert_eq!(out.len(), 1);
    assert!(out[0].truncated);
    assert_eq!(out[0].text, "ééééé");
    assert!(j.flush().is_none());
}

#[test]
fn a_record_of_exactly_the_cap_is_not_truncated() {
    let mut j = Joiner::new(JoinerConfig {
        max_lines: 2,
        max_bytes: 1 << 20,
    });
    let mut out = Vec::new();
    out.extend(j.push("Error: x"));
    out.extend(j.push("    at f (/a.js:1:1)"));
    out.extend(j.push("next"));
    out.extend(j.flush());
    assert_eq!(out.len(), 2);
    assert!(!out[0].truncated);
}

#[test]
fn parse_finds_nothing_in_plain_text() {
    assert!(parse("2026-01-01 ERROR it broke").is_none());
    assert!(parse("").is_none());
    let p = parse("Error: connection refused").unwrap();
    assert_eq!(p.runtime, Runtime::Unknown);
    assert_eq!(p.exception_type, "Error");
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "\tat a.B.c(B.java:1)",
    "    at f (/app/a.js:1:1) {",
    "}",
    "Caused by: x.Y: z",
    "\t... 3 more",
    "Traceback (most recent call last):",
    "  File \"/app/a.py\", line 1, in f",
    "KeyError: 'k'",
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
    "panic: boom",
    "goroutine 1 [running]:",
    "main.main()",
    "\t/app/main.go:1 +0x1",
    "created by main.main",
    "exit status 2",
    "thread 'main' panicked at src/main.rs:1:1:",
    "thread 'main' panicked at '",
    "stack backtrace:",
    "   0: a::b",
    "             at ./src/main.rs:1:1",
    "note: run with `RUST_BACKTRACE=1`",
    "2026-01-01 ERROR x",
    "java.lang.Error: e",
    "Exception in thread \"",
    "{\"a\":1}",
    "",
    "   ",
    "é",
    "\u{feff}𝄞",
    "<<<>>>::::((()))",
    "0x:",
];

fn random_line(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => PIECES[rng.below(PIECES.len())].to_owned(),
        1 => {
            let a = PIECES[rng.below(PIECES.len())];
            let b = PIECES[rng.below(PIECES.len())];
            let cut = rng.below(a.len() + 1);
            let a = &a[..super::joiner::floor_char_boundary(a, cut).len()];
            format!("{a}{b}")
        }
        _ => {
            let len = rng.below(40);
            let bytes: Vec<u8> = (0..len).map(|_| (rng.next() & 0xff) as u8).collect();
            // The caller splits lines; a line never holds a newline.
            String::from_utf8_lossy(&bytes).replace('\n', " ")
        }
    }
}

#[test]
fn arbitrary_input_never_panics_and_the_caps_hold() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..400 {
        let config = JoinerConfig {
            max_lines: rng.below(12),
            max_bytes: rng.below(300),
        };
        let mut joiner = Joiner::new(config);
        let mut records = Vec::new();
        let mut pushed = String::new();
        for _ in 0..rng.below(60) {
            let line = random_line(&mut rng);
            pushed.push_str(&line);
            pushed.push('\n');
            records.extend(joiner.push(&line));
            if rng.below(25) == 0 {
                records.extend(joiner.flush());
            }
        }
        records.extend(joiner.flush());
        for record in &records {
            assert!(record.line_count >= 1, "round {round}");
            assert!(
                record.line_count <= config.max_lines.max(1),
                "round {round}"
            );
            assert!(
                record.text.len() <= config.max_bytes.max(1),
                "round {round}"
            );
            assert_eq!(record.text.split('\n').count(), record.line_count);
            assert!(!record.text.trim().is_empty() || record.truncated);
            let _ = parse(&record.text);
        }
        let _ = parse(&pushed);
    }
}

#[test]
fn arbitrary_bytes_parse_without_panicking() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len)
            .map(|_| match rng.below(4) {
                0 => b"\n\t :()<>[]{}'\"@./"[rng.below(17)],
                _ => (rng.next() & 0xff) as u8,
            })
            .collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(&text);
        let mut j = Joiner::new(JoinerConfig {
            max_lines: 5,
            max_bytes: 64,
        });
        for line in text.split('\n') {
            for r in j.push(line) {
                assert!(r.text.len() <= 64 && r.line_count <= 5);
            }
        }
    }
}

#[test]
fn a_huge_trace_stays_within_the_default_caps() {
    let mut j = Joiner::default();
    let mut out = j.push("java.lang.StackOverflowError");
    for _ in 0..5000 {
        out.extend(j.push("\tat com.shop.Recursion.down(Recursion.java:12)"));
    }
    out.extend(j.flush());
    assert_eq!(out.len(), 1);
    assert!(out[0].truncated);
    assert_eq!(out[0].line_count, DEFAULT_MAX_LINES);
    let p = parse(&out[0].text).unwrap();
    assert_eq!(p.exception_type, "java.lang.StackOverflowError");
    assert_eq!(p.frames.len(), DEFAULT_MAX_LINES - 1);
}
