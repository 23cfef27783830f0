//! Lines as the common JSON loggers write them, in the shapes their docs show, through
//! the whole line parser: the error fields become `exception.*`, the record's own
//! message stays the body.

use bellwether_proto::otlp::common::any_value::Value;
use bellwether_proto::otlp::logs::LogRecord;
use proptest::prelude::*;

use crate::parse::exception::{MESSAGE_ATTR, STACKTRACE_ATTR, TYPE_ATTR};
use crate::parse::parse_line;
use crate::parse::severity::Level;

fn parsed(line: &str) -> LogRecord {
    parse_line(line.as_bytes(), false, 1).expect("a record")
}

fn text<'a>(record: &'a LogRecord, key: &str) -> Option<&'a str> {
    record
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match v.value.as_ref() {
            Some(Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        })
}

fn body(record: &LogRecord) -> &str {
    match record.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(s)) => s,
        other => panic!("body {other:?}"),
    }
}

/// What a line must come out as: body, severity, and the three exception attributes
/// (`None`: absent).
struct Want<'a> {
    body: &'a str,
    level: Level,
    exception_type: Option<&'a str>,
    message: Option<&'a str>,
    stack_starts: Option<&'a str>,
}

fn check(line: &str, want: Want<'_>) -> LogRecord {
    let record = parsed(line);
    assert_eq!(body(&record), want.body, "{line}");
    assert_eq!(record.severity_number, want.level.number(), "{line}");
    assert_eq!(text(&record, TYPE_ATTR), want.exception_type, "{line}");
    assert_eq!(text(&record, MESSAGE_ATTR), want.message, "{line}");
    match want.stack_starts {
        Some(start) => {
            let stack = text(&record, STACKTRACE_ATTR).expect("a stack");
            assert!(stack.starts_with(start), "{stack}");
        }
        None => assert_eq!(text(&record, STACKTRACE_ATTR), None, "{line}"),
    }
    record
}

#[test]
fn pino() {
    let line = r#"{"level":50,"time":1700000000000,"pid":4242,"hostname":"web-1","err":{"type":"TypeError","message":"Cannot read properties of undefined (reading 'id')","stack":"TypeError: Cannot read properties of undefined (reading 'id')\n    at handler (/app/server.js:12:20)\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)"},"msg":"request failed"}"#;
    let record = check(
        line,
        Want {
            body: "request failed",
            level: Level::Error,
            exception_type: Some("TypeError"),
            message: Some("Cannot read properties of undefined (reading 'id')"),
            stack_starts: Some("TypeError: Cannot read"),
        },
    );
    // The fields used are moved, not copied.
    for key in ["err.type", "err.message", "err.stack"] {
        assert_eq!(text(&record, key), None, "{key}");
    }
    assert_eq!(text(&record, "hostname"), Some("web-1"));
}

#[test]
fn bunyan() {
    let line = r#"{"name":"shop","hostname":"web-1","pid":7,"level":60,"err":{"message":"connect ECONNREFUSED 127.0.0.1:5432","name":"Error","stack":"Error: connect ECONNREFUSED 127.0.0.1:5432\n    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)","code":"ECONNREFUSED"},"msg":"database unreachable","time":"2024-01-02T10:00:00.000Z","v":0}"#;
    let record = check(
        line,
        Want {
            body: "database unreachable",
            level: Level::Fatal,
            exception_type: Some("Error"),
            message: Some("connect ECONNREFUSED 127.0.0.1:5432"),
            stack_starts: Some("Error: connect ECONNREFUSED"),
        },
    );
    assert_eq!(text(&record, "err.code"), Some("ECONNREFUSED"));
}

#[test]
fn winston() {
    let line = r#"{"level":"error","message":"payment declined","stack":"Error: card 4242 declined\n    at charge (/app/pay.js:3:9)\n    at /app/routes.js:20:5","timestamp":"2024-01-02T10:00:00.000Z"}"#;
    check(
        line,
        Want {
            body: "payment declined",
            level: Level::Error,
            exception_type: Some("Error"),
            message: Some("card 4242 declined"),
            stack_starts: Some("Error: card 4242 declined"),
        },
    );
}

#[test]
fn elastic_common_schema_nested() {
    // ecs-logging-python: `log.level` as a dotted key, `error` as an object.
    let line = r#"{"@timestamp":"2024-01-02T10:00:00.000Z","log.level":"error","message":"checkout failed","ecs":{"version":"1.6.0"},"error":{"type":"ValueError","message":"bad cart","stack_trace":"Traceback (most recent call last):\n  File \"/app/cart.py\", line 3, in total\n    raise ValueError(\"bad cart\")\nValueError: bad cart"},"log":{"logger":"shop.cart"}}"#;
    check(
        line,
        Want {
            body: "checkout failed",
            level: Level::Error,
            exception_type: Some("ValueError"),
            message: Some("bad cart"),
            stack_starts: Some("Traceback (most recent call last)"),
        },
    );
}

#[test]
fn log4j2_json_template_layout_ecs() {
    // EcsLayout.json: dotted keys at the top level.
    let line = r#"{"@timestamp":"2024-01-02T10:00:00.000Z","ecs.version":"1.2.0","log.level":"ERROR","message":"order failed","process.thread.name":"main","log.logger":"shop.Checkout","error.type":"java.lang.IllegalStateException","error.message":"cart 5531 is empty","error.stack_trace":"java.lang.IllegalStateException: cart 5531 is empty\n\tat shop.Checkout.charge(Checkout.java:42)\n\tat shop.Main.main(Main.java:7)\n"}"#;
    check(
        line,
        Want {
            body: "order failed",
            level: Level::Error,
            exception_type: Some("java.lang.IllegalStateException"),
            message: Some("cart 5531 is empty"),
            stack_starts: Some("java.lang.IllegalStateException: cart 5531"),
        },
    );
}

#[test]
fn logstash_logback_encoder() {
    let line = r#"{"@timestamp":"2024-01-02T10:00:00.000+00:00","@version":"1","message":"order failed","logger_name":"shop.Checkout","thread_name":"main","level":"ERROR","level_value":40000,"stack_trace":"java.lang.IllegalStateException: cart 5531 is empty\n\tat shop.Checkout.charge(Checkout.java:42)\n","exception_class":"java.lang.IllegalStateException","exception_message":"cart 5531 is empty"}"#;
    check(
        line,
        Want {
            body: "order failed",
            level: Level::Error,
            exception_type: Some("java.lang.IllegalStateException"),
            message: Some("cart 5531 is empty"),
            stack_starts: Some("java.lang.IllegalStateException"),
        },
    );
}

#[test]
fn zap_error_and_stacktrace() {
    // zap's `stacktrace` is frames only, no header: kept as the stack all the same.
    let line = r#"{"level":"error","ts":1700000000.123,"caller":"shop/main.go:42","msg":"charge failed","error":"card declined: insufficient funds","stacktrace":"main.charge\n\t/app/main.go:42\nmain.main\n\t/app/main.go:12\nruntime.main\n\t/usr/local/go/src/runtime/proc.go:250"}"#;
    check(
        line,
        Want {
            body: "charge failed",
            level: Level::Error,
            exception_type: None,
            message: Some("card declined: insufficient funds"),
            stack_starts: Some("main.charge\n\t/app/main.go:42"),
        },
    );
}

#[test]
fn zerolog_logrus_and_slog_error_strings() {
    let cases = [
        (
            r#"{"level":"error","error":"dial tcp 10.0.0.5:443: i/o timeout","time":"2024-01-02T10:00:00Z","message":"fetch failed"}"#,
            "fetch failed",
            "dial tcp 10.0.0.5:443: i/o timeout",
        ),
        (
            r#"{"error":"unexpected EOF","level":"error","msg":"read failed","time":"2024-01-02T10:00:00Z"}"#,
            "read failed",
            "unexpected EOF",
        ),
        (
            r#"{"time":"2024-01-02T10:00:00Z","level":"ERROR","msg":"query failed","err":"context deadline exceeded"}"#,
            "query failed",
            "context deadline exceeded",
        ),
    ];
    for (line, body, message) in cases {
        check(
            line,
            Want {
                body,
                level: Level::Error,
                exception_type: None,
                message: Some(message),
                stack_starts: None,
            },
        );
    }
}

const TRACEBACK: &str = r#"Traceback (most recent call last):\n  File \"/app/pay.py\", line 10, in charge\n    raise KeyError(\"card\")\nKeyError: 'card'"#;

#[test]
fn structlog() {
    // structlog names its message `event`, a word other logs use for other things, so
    // the body stays the whole line (`EventRenamer("message")` makes it the body).
    let line = format!(
        r#"{{"event":"payment failed","level":"error","timestamp":"2024-01-02T10:00:00Z","order":42,"exception":"{TRACEBACK}"}}"#
    );
    check(
        &line,
        Want {
            body: &line,
            level: Level::Error,
            exception_type: Some("KeyError"),
            message: Some("'card'"),
            stack_starts: Some("Traceback (most recent call last)"),
        },
    );
}

/// structlog's `dict_tracebacks`, as structlog 26 writes a `raise … from …` chain:
/// the reported exception first, then its causes.
const DICT_CHAIN: &str = r#"[{"exc_type": "PaymentError", "exc_value": "charge failed for order 42", "exc_notes": [], "syntax_error": null, "is_cause": false, "frames": [{"filename": "/app/emit.py", "lineno": 49, "name": "failures", "locals": {"what": "'checkout failed'"}}, {"filename": "/app/emit.py", "lineno": 26, "name": "cause_chain", "locals": {}}], "is_group": false, "exceptions": []}, {"exc_type": "LookupError", "exc_value": "query on payments failed", "exc_notes": ["retried twice"], "syntax_error": null, "is_cause": true, "frames": [{"filename": "/app/emit.py", "lineno": 24, "name": "cause_chain", "locals": {}}], "is_group": false, "exceptions": []}, {"exc_type": "ConnectionRefusedError", "exc_value": "connect to 10.0.0.5:5432 refused", "exc_notes": [], "syntax_error": null, "is_cause": false, "frames": [{"filename": "/app/emit.py", "lineno": 22, "name": "cause_chain", "locals": {}}], "is_group": false, "exceptions": []}]"#;

#[test]
fn structlog_dict_tracebacks() {
    let line = format!(
        r#"{{"event": "checkout failed", "level": "error", "timestamp": "2024-01-02T10:00:00Z", "exception": {DICT_CHAIN}}}"#
    );
    let record = check(
        &line,
        Want {
            body: &line,
            level: Level::Error,
            exception_type: Some("PaymentError"),
            message: Some("charge failed for order 42"),
            stack_starts: Some("Traceback (most recent call last)"),
        },
    );
    // The text CPython prints for the same chain, less the source lines, which the
    // structured form does not keep; the list is moved into it.
    let want = "\
Traceback (most recent call last):
  File \"/app/emit.py\", line 22, in cause_chain
ConnectionRefusedError: connect to 10.0.0.5:5432 refused

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File \"/app/emit.py\", line 24, in cause_chain
LookupError: query on payments failed
retried twice

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File \"/app/emit.py\", line 49, in failures
  File \"/app/emit.py\", line 26, in cause_chain
PaymentError: charge failed for order 42";
    assert_eq!(text(&record, STACKTRACE_ATTR), Some(want));
    assert!(!record.attributes.iter().any(|kv| kv.key == "exception"));
    let parsed = bellwether_stacktrace::parse(want).expect("a trace");
    assert_eq!(parsed.caused_by, ["LookupError"]);
    assert_eq!(parsed.context, ["ConnectionRefusedError"]);
    assert_eq!(parsed.frames[0].function, "cause_chain");
}

#[test]
fn structlog_dict_tracebacks_of_an_exception_group() {
    let line = r#"{"event": "uploads failed", "level": "error", "exception": [{"exc_type": "ExceptionGroup", "exc_value": "all uploads failed (2 sub-exceptions)", "exc_notes": [], "syntax_error": null, "is_cause": false, "frames": [{"filename": "/app/emit.py", "lineno": 30, "name": "group", "locals": {}}], "is_group": true, "exceptions": [[{"exc_type": "TypeError", "exc_value": "upload 1 has no body", "exc_notes": [], "syntax_error": null, "is_cause": false, "frames": [], "is_group": false, "exceptions": []}], [{"exc_type": "ValueError", "exc_value": "upload 2 is too large", "exc_notes": [], "syntax_error": null, "is_cause": false, "frames": [{"filename": "/app/up.py", "lineno": 3, "name": "put", "locals": {}}], "is_group": false, "exceptions": []}]]}]}"#;
    let record = check(
        line,
        Want {
            body: line,
            level: Level::Error,
            exception_type: Some("ExceptionGroup"),
            message: Some("all uploads failed (2 sub-exceptions)"),
            stack_starts: Some("  + Exception Group Traceback (most recent call last):"),
        },
    );
    let want = "  + Exception Group Traceback (most recent call last):
  |   File \"/app/emit.py\", line 30, in group
  | ExceptionGroup: all uploads failed (2 sub-exceptions)
  +-+---------------- 1 ----------------
    | TypeError: upload 1 has no body
    +---------------- 2 ----------------
    | Traceback (most recent call last):
    |   File \"/app/up.py\", line 3, in put
    | ValueError: upload 2 is too large
    +------------------------------------";
    assert_eq!(text(&record, STACKTRACE_ATTR), Some(want));
    // Only the group's own frames are its frames.
    let parsed = bellwether_stacktrace::parse(want).expect("a trace");
    assert_eq!(parsed.frames.len(), 1);
    assert_eq!(parsed.frames[0].function, "group");
}

#[test]
fn lists_under_stack_keys_that_are_no_structlog_traceback_stay() {
    // zerolog's `pkgerrors` stack: frames without an exception.
    let line = r#"{"level":"error","message":"read failed","stack":[{"func":"read","line":"12","source":"main.go"}],"exception":[{"exc_value":"no type"}]}"#;
    let record = parsed(line);
    assert_eq!(body(&record), "read failed");
    for key in [TYPE_ATTR, MESSAGE_ATTR, STACKTRACE_ATTR] {
        assert_eq!(text(&record, key), None, "{key}");
    }
    for key in ["stack", "exception"] {
        let kept = record.attributes.iter().find(|kv| kv.key == key);
        assert!(
            matches!(
                kept.and_then(|kv| kv.value.as_ref())
                    .and_then(|v| v.value.as_ref()),
                Some(Value::ArrayValue(_))
            ),
            "{key}: {kept:?}"
        );
    }
}

#[test]
fn python_json_logger() {
    let line = format!(
        r#"{{"asctime":"2024-01-02 10:00:00,123","levelname":"ERROR","name":"shop.pay","message":"payment failed","exc_info":"{TRACEBACK}"}}"#
    );
    check(
        &line,
        Want {
            body: "payment failed",
            level: Level::Error,
            exception_type: Some("KeyError"),
            message: Some("'card'"),
            stack_starts: Some("Traceback (most recent call last)"),
        },
    );
}

#[test]
fn serilog_compact_json() {
    let line = r#"{"@t":"2024-01-02T10:00:00.0000000Z","@mt":"Order {OrderId} failed","@l":"Error","@x":"System.InvalidOperationException: Order 42 failed\n   at Shop.Checkout.Charge(Int32 orderId) in /app/Checkout.cs:line 42\n   at Shop.Program.Main() in /app/Program.cs:line 7","OrderId":42}"#;
    let record = check(
        line,
        Want {
            body: "Order {OrderId} failed",
            level: Level::Error,
            exception_type: Some("System.InvalidOperationException"),
            message: Some("Order 42 failed"),
            stack_starts: Some("System.InvalidOperationException: Order 42"),
        },
    );
    assert_eq!(record.time_unix_nano, 1_704_189_600_000_000_000);
    // The rendered message, when written, is preferred to the template.
    let rendered = r#"{"@t":"2024-01-02T10:00:00Z","@m":"Order 42 failed","@mt":"Order {OrderId} failed","@l":"Warning"}"#;
    let record = parsed(rendered);
    assert_eq!(body(&record), "Order 42 failed");
    assert_eq!(record.severity_number, Level::Warn.number());
}

#[test]
fn an_explicit_type_field_wins_over_the_parsed_stack() {
    let line = r#"{"level":50,"msg":"charge failed","err":{"type":"PaymentDeclinedError","message":"card 4242 declined","stack":"Error: declined\n    at charge (/app/pay.js:3:9)"}}"#;
    check(
        line,
        Want {
            body: "charge failed",
            level: Level::Error,
            exception_type: Some("PaymentDeclinedError"),
            message: Some("card 4242 declined"),
            stack_starts: Some("Error: declined\n    at charge"),
        },
    );
}

#[test]
fn same_message_different_types_stay_apart() {
    // Both stacks say `Error:` (subclasses that never set `name`); pino's `err.type` is
    // the constructor's name.
    let line = |kind: &str| {
        format!(
            r#"{{"level":50,"msg":"upstream failed","err":{{"type":"{kind}","message":"upstream 10.0.0.5 failed","stack":"Error: upstream 10.0.0.5 failed\n    at call (/app/up.js:9:3)"}}}}"#
        )
    };
    let timeout = parsed(&line("TimeoutError"));
    let refused = parsed(&line("ConnectionRefusedError"));
    assert_eq!(text(&timeout, MESSAGE_ATTR), text(&refused, MESSAGE_ATTR));
    assert_eq!(text(&timeout, TYPE_ATTR), Some("TimeoutError"));
    assert_eq!(text(&refused, TYPE_ATTR), Some("ConnectionRefusedError"));
}

#[test]
fn a_type_field_without_a_stack_still_names_the_type() {
    let line = r#"{"log.level":"error","message":"checkout failed","error":{"type":"CartEmptyError","message":"cart 5531 is empty"}}"#;
    check(
        line,
        Want {
            body: "checkout failed",
            level: Level::Error,
            exception_type: Some("CartEmptyError"),
            message: Some("cart 5531 is empty"),
            stack_starts: None,
        },
    );
}

#[test]
fn a_one_line_stack_is_parsed_like_any_other() {
    let line = r#"{"level":"error","message":"all uploads failed","stack":"AggregateError: All promises were rejected"}"#;
    check(
        line,
        Want {
            body: "all uploads failed",
            level: Level::Error,
            exception_type: Some("AggregateError"),
            message: Some("All promises were rejected"),
            stack_starts: Some("AggregateError: All promises"),
        },
    );
}

#[test]
fn fields_that_name_no_error_are_left_alone() {
    // Non-strings, blanks, and a stack field holding no trace with nothing else naming
    // an error.
    let line = r#"{"level":"info","msg":"deployed","error":false,"err":{"type":5,"message":null,"stack":["x"]},"stack":"frontend","exception":"  ","error.type":""}"#;
    let record = parsed(line);
    assert_eq!(body(&record), "deployed");
    assert_eq!(record.severity_number, Level::Info.number());
    for key in [TYPE_ATTR, MESSAGE_ATTR, STACKTRACE_ATTR] {
        assert_eq!(text(&record, key), None, "{key}");
    }
    assert_eq!(text(&record, "stack"), Some("frontend"));
}

#[test]
fn explicit_fields_do_not_raise_the_severity() {
    let line = r#"{"level":"warn","msg":"retrying","error":"connection reset by peer"}"#;
    let record = parsed(line);
    assert_eq!(record.severity_number, Level::Warn.number());
    assert_eq!(
        text(&record, MESSAGE_ATTR),
        Some("connection reset by peer")
    );
}

#[test]
fn huge_error_fields_stay_within_the_line_bound() {
    let message = "x".repeat(300 * 1024);
    let line = format!(r#"{{"level":50,"msg":"m","err":{{"type":"E","message":"{message}"}}}}"#);
    let record = parsed(&line);
    // Over the line limit: kept as truncated plain text, not read as JSON.
    assert_eq!(text(&record, TYPE_ATTR), None);
    let line = format!(
        r#"{{"level":50,"msg":"m","err":{{"type":"E","message":"{}","stack":"E: {}"}}}}"#,
        "y".repeat(100 * 1024),
        "z".repeat(100 * 1024),
    );
    let record = parsed(&line);
    assert_eq!(text(&record, TYPE_ATTR), Some("E"));
    assert_eq!(text(&record, MESSAGE_ATTR).map(str::len), Some(100 * 1024));
}

fn error_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("12".to_owned()),
        Just("[\"a\",{\"b\":1}]".to_owned()),
        Just("{\"type\":{\"x\":[1]},\"stack\":7}".to_owned()),
        Just("\"Error: x\\n    at f (/a.js:1:1)\"".to_owned()),
        // structlog `dict_tracebacks` shapes, well and badly formed.
        Just(r#"[{"exc_type":"E","exc_value":"m","frames":[{"lineno":"x"},3],"is_group":true,"exceptions":[[{"exc_type":5}],7,[{"exc_type":"F","is_group":true,"exceptions":[[]]}]]},{"exc_type":"C","is_cause":true}]"#.to_owned()),
        Just(r#"[{"exc_type":""},{"frames":null}]"#.to_owned()),
        "\\PC{0,40}".prop_map(|s| serde_json::Value::String(s).to_string()),
    ]
}

proptest! {
    #[test]
    fn any_values_under_error_keys_never_panic(
        fields in prop::collection::vec(
            (
                prop::sample::select(vec![
                    "err", "error", "stack", "exception", "exc_info", "@x", "err.type",
                    "error.message", "exception_class", "exception_message", "stacktrace",
                    "error.stack_trace",
                ]),
                error_value(),
            ),
            0..6,
        ),
    ) {
        let members: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        let line = format!("{{\"msg\":\"m\",{}}}", members.join(","));
        let record = parsed(&line);
        let named = [TYPE_ATTR, MESSAGE_ATTR, STACKTRACE_ATTR]
            .iter()
            .filter(|key| record.attributes.iter().any(|kv| kv.key == **key))
            .count();
        // Each exception attribute is set at most once.
        let total = record
            .attributes
            .iter()
            .filter(|kv| kv.key.starts_with("exception."))
            .count();
        prop_assert!(total >= named);
        for key in [TYPE_ATTR, MESSAGE_ATTR, STACKTRACE_ATTR] {
            prop_assert!(record.attributes.iter().filter(|kv| kv.key == key).count() <= 1);
        }
    }
}
