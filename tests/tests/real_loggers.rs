//! End-to-end: real JSON loggers write error records into a file a real
//! `bellwether-agent` tails, and the collector's issues name each error by its exception
//! type. pino and winston (Node) and structlog and python-json-logger (Python) run for
//! real (`tests/loggers/`); the loggers that do not run here (bunyan, ECS, log4j2,
//! logstash-logback-encoder, the Go loggers, Serilog) are recorded lines in the shapes
//! their docs show.
//!
//! Each program writes two info lines and four errors: one with a cause chain, an
//! AggregateError (Node) or ExceptionGroup (Python), and two errors of different types
//! with one message, which must be two issues.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use bellwether_e2e::agent_sources::start_agent;
use bellwether_e2e::loggers::Emitter;
use bellwether_e2e::{Collector, Identity};
use bellwether_testkit::eventually;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(90);

fn identity(service: &'static str) -> Identity {
    Identity {
        service,
        version: "2.4.0",
        environment: "prod",
        commit: "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        deploy_id: "deploy-loggers",
    }
}

/// (log_records, error_logs) the collector counted for `service` 2.4.0 in prod.
async fn counts(collector: &Collector, service: &str) -> Result<(u64, u64)> {
    let stats = collector
        .get(&format!(
            "/api/v1/releases/{service}/2.4.0/stats?environment=prod"
        ))
        .await?;
    let totals = &stats["release"]["totals"];
    let n = |k: &str| totals[k].as_u64().unwrap_or(u64::MAX);
    Ok((n("log_records"), n("error_logs")))
}

/// One issue of the release, as the API lists it.
#[derive(Debug)]
struct Issue {
    exception_type: String,
    title: String,
    count: u64,
    fingerprint: String,
    /// The first sample's stack trace.
    stack: String,
}

/// What one logger's errors must come out as.
struct Want<'a> {
    /// (log records, error records) written.
    counts: (u64, u64),
    /// Every issue's exception type, sorted; each issue seen once.
    types: &'a [&'a str],
    /// The type of the error with a cause chain, and what its stack must show.
    chained: (&'a str, &'a [&'a str]),
    /// The type of the aggregate error or exception group, and what its stack must show.
    group: (&'a str, &'a [&'a str]),
    /// The two types that share one message.
    same_message: [&'a str; 2],
}

/// Starts a collector and an agent tailing a file, lets `write` fill the file, and
/// returns the release's issues once the collector has counted every record.
async fn issues_of(
    service: &'static str,
    counts_written: (u64, u64),
    write: impl FnOnce(&Path) -> Result<()> + Send + 'static,
) -> Result<Vec<Issue>> {
    let dir = tempfile::tempdir()?;
    let collector = Collector::start(&dir.path().join("collector"))?;
    let log = dir.path().join("app.log");
    let id = identity(service);
    let (mut agent, _) = start_agent(
        &id,
        &collector.grpc_url(),
        &dir.path().join("agent"),
        &[
            "--file",
            log.to_str().context("temporary path is not UTF-8")?,
        ],
    )?;
    let target = log.clone();
    tokio::task::spawn_blocking(move || write(&target)).await??;

    let reached = eventually(DEADLINE, || async {
        let got = counts(&collector, service).await.unwrap_or((0, 0));
        Ok((got == counts_written).then_some(()))
    })
    .await;
    let last = counts(&collector, service).await.ok();
    if let Err(e) = reached {
        let lines = std::fs::read_to_string(&log).unwrap_or_default();
        panic!(
            "{service}: collector counts {last:?}, expected {counts_written:?}: {e:#}\n\
             lines written:\n{lines}\nagent:\n{}",
            agent.stderr_text()
        );
    }
    let body = collector
        .get(&format!(
            "/api/v1/releases/{service}/2.4.0/issues?environment=prod"
        ))
        .await?;
    let list = body["issues"].as_array().context("issues")?;
    let text = |issue: &Value, key: &str| issue[key].as_str().unwrap_or_default().to_owned();
    let mut issues: Vec<Issue> = list
        .iter()
        .map(|issue| Issue {
            exception_type: text(issue, "exception_type"),
            title: text(issue, "title"),
            count: issue["count"].as_u64().unwrap_or(0),
            fingerprint: text(issue, "fingerprint"),
            stack: text(&issue["samples"][0], "stack"),
        })
        .collect();
    issues.sort_by(|a, b| a.exception_type.cmp(&b.exception_type));
    let status = agent.terminate()?;
    assert!(status.success(), "{}", agent.stderr_text());
    Ok(issues)
}

/// Runs `logger` with `emitter` into a tailed file and checks its issues against `want`.
async fn check_logger(emitter: Emitter, logger: &'static str, want: Want<'_>) -> Result<()> {
    let issues = issues_of(logger, want.counts, move |file| emitter.emit(logger, file)).await?;
    let types: Vec<&str> = issues.iter().map(|i| i.exception_type.as_str()).collect();
    assert_eq!(types, want.types, "{logger}: {issues:#?}");
    let mut fingerprints: Vec<&str> = issues.iter().map(|i| i.fingerprint.as_str()).collect();
    fingerprints.sort_unstable();
    fingerprints.dedup();
    assert_eq!(
        fingerprints.len(),
        want.types.len(),
        "{logger}: {issues:#?}"
    );
    for issue in &issues {
        assert_eq!(issue.count, 1, "{logger}: {issue:#?}");
        assert!(
            issue
                .title
                .starts_with(&format!("{}: ", issue.exception_type)),
            "{logger}: {issue:#?}"
        );
    }
    let by_type = |kind: &str| {
        issues
            .iter()
            .find(|i| i.exception_type == kind)
            .unwrap_or_else(|| panic!("{logger}: no {kind} issue in {issues:#?}"))
    };
    for (kind, shows) in [want.chained, want.group] {
        let issue = by_type(kind);
        for text in shows {
            assert!(
                issue.stack.contains(text),
                "{logger}: the {kind} stack lacks {text:?}:\n{}",
                issue.stack
            );
        }
    }
    // One message, two types: two issues whose titles differ only in the type.
    let [a, b] = want.same_message.map(by_type);
    assert_eq!(
        a.title.strip_prefix(&format!("{}: ", a.exception_type)),
        b.title.strip_prefix(&format!("{}: ", b.exception_type)),
        "{logger}"
    );
    assert_ne!(a.fingerprint, b.fingerprint, "{logger}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pino_errors_become_issues_by_type() -> Result<()> {
    let Some(node) = Emitter::node()? else {
        return Ok(());
    };
    check_logger(
        node,
        "pino",
        Want {
            counts: (6, 4),
            types: &["AggregateError", "PaymentError", "RangeError", "TypeError"],
            // pino's serializer appends the causes' stacks to the error's own.
            chained: (
                "PaymentError",
                &[
                    "PaymentError: charge failed for order 42\n    at causeChain",
                    "\ncaused by: Error: query on payments failed\n",
                    "\ncaused by: Error: connect ECONNREFUSED 10.0.0.5:5432\n",
                ],
            ),
            group: ("AggregateError", &["AggregateError: all uploads failed\n"]),
            same_message: ["TypeError", "RangeError"],
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn winston_errors_become_issues_by_type() -> Result<()> {
    let Some(node) = Emitter::node()? else {
        return Ok(());
    };
    check_logger(
        node,
        "winston",
        Want {
            counts: (6, 4),
            types: &["AggregateError", "PaymentError", "RangeError", "TypeError"],
            // winston's `errors({ stack: true })` keeps the error's own stack only.
            chained: (
                "PaymentError",
                &["PaymentError: charge failed for order 42\n    at causeChain"],
            ),
            group: ("AggregateError", &["AggregateError: all uploads failed\n"]),
            same_message: ["TypeError", "RangeError"],
        },
    )
    .await
}

/// What the Python programs' errors come out as, whichever logger wrote them.
const PYTHON_TYPES: &[&str] = &["ExceptionGroup", "PaymentError", "TypeError", "ValueError"];
const PYTHON_CHAIN: &[&str] = &[
    "ConnectionRefusedError: connect to 10.0.0.5:5432 refused\n",
    "\nThe above exception was the direct cause of the following exception:\n",
    "LookupError: query on payments failed\n",
    "PaymentError: charge failed for order 42",
];
const PYTHON_GROUP: &[&str] = &[
    "ExceptionGroup: all uploads failed (2 sub-exceptions)\n",
    "TypeError: upload 1 has no body\n",
    "ValueError: upload 2 is too large\n",
];

async fn check_python(logger: &'static str) -> Result<()> {
    let Some(python) = Emitter::python()? else {
        return Ok(());
    };
    check_logger(
        python,
        logger,
        Want {
            counts: (6, 4),
            types: PYTHON_TYPES,
            chained: ("PaymentError", PYTHON_CHAIN),
            group: ("ExceptionGroup", PYTHON_GROUP),
            same_message: ["TypeError", "ValueError"],
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structlog_text_tracebacks_become_issues_by_type() -> Result<()> {
    check_python("structlog").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structlog_dict_tracebacks_become_issues_by_type() -> Result<()> {
    check_python("structlog-dict").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_json_logger_errors_become_issues_by_type() -> Result<()> {
    check_python("python-json-logger").await
}

/// One error line of each logger that does not run here, as its docs show it. log4j2 and
/// logstash-logback-encoder share a message with different types; the Go loggers name
/// no type.
const RECORDED: &[&str] = &[
    // bunyan
    r#"{"name":"shop","hostname":"web-1","pid":7,"level":30,"msg":"listening","time":"2026-11-26T12:00:00.000Z","v":0}"#,
    r#"{"name":"shop","hostname":"web-1","pid":7,"level":50,"err":{"message":"connect ECONNREFUSED 127.0.0.1:5432","name":"DatabaseError","stack":"DatabaseError: connect ECONNREFUSED 127.0.0.1:5432\n    at Pool.connect (/app/db.js:14:11)\n    at async main (/app/server.js:8:3)","code":"ECONNREFUSED"},"msg":"database unreachable","time":"2026-11-26T12:00:01.000Z","v":0}"#,
    // Elastic Common Schema (ecs-logging-python)
    r#"{"@timestamp":"2026-11-26T12:00:02.000Z","log.level":"error","message":"checkout failed","ecs":{"version":"1.6.0"},"error":{"type":"CartError","message":"cart 5531 is empty","stack_trace":"Traceback (most recent call last):\n  File \"/app/cart.py\", line 3, in total\n    raise CartError(\"cart 5531 is empty\")\nCartError: cart 5531 is empty"},"log":{"logger":"shop.cart"}}"#,
    // log4j2 JsonTemplateLayout (EcsLayout.json)
    r#"{"@timestamp":"2026-11-26T12:00:03.000Z","ecs.version":"1.2.0","log.level":"ERROR","message":"order failed","process.thread.name":"main","log.logger":"shop.Checkout","error.type":"java.lang.IllegalStateException","error.message":"order 981273 cannot be charged","error.stack_trace":"java.lang.IllegalStateException: order 981273 cannot be charged\n\tat shop.Checkout.charge(Checkout.java:42)\n\tat shop.Main.main(Main.java:7)\n"}"#,
    // logstash-logback-encoder
    r#"{"@timestamp":"2026-11-26T12:00:04.000+00:00","@version":"1","message":"order failed","logger_name":"shop.Checkout","thread_name":"main","level":"ERROR","level_value":40000,"stack_trace":"java.lang.IllegalArgumentException: order 981273 cannot be charged\n\tat shop.Checkout.charge(Checkout.java:42)\n\tat shop.Main.main(Main.java:7)\n","exception_class":"java.lang.IllegalArgumentException","exception_message":"order 981273 cannot be charged"}"#,
    // zap, zerolog, log/slog
    r#"{"level":"error","ts":1795000005.123,"caller":"shop/main.go:42","msg":"charge failed","error":"card declined: insufficient funds","stacktrace":"main.charge\n\t/app/main.go:42\nmain.main\n\t/app/main.go:12"}"#,
    r#"{"level":"error","error":"dial tcp 10.0.0.5:443: i/o timeout","time":"2026-11-26T12:00:06Z","message":"fetch failed"}"#,
    r#"{"time":"2026-11-26T12:00:07Z","level":"ERROR","msg":"query failed","err":"context deadline exceeded"}"#,
    r#"{"time":"2026-11-26T12:00:07Z","level":"INFO","msg":"query retried"}"#,
    // Serilog compact JSON
    r#"{"@t":"2026-11-26T12:00:08.0000000Z","@mt":"Order {OrderId} failed","@l":"Error","@x":"System.InvalidOperationException: Order 42 failed\n   at Shop.Checkout.Charge(Int32 orderId) in /app/Checkout.cs:line 42\n   at Shop.Program.Main() in /app/Program.cs:line 7","OrderId":42}"#,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_lines_of_other_loggers_become_issues_by_type() -> Result<()> {
    let issues = issues_of("recorded", (10, 8), |file| {
        let mut text = RECORDED.join("\n");
        text.push('\n');
        std::fs::write(file, text)?;
        Ok(())
    })
    .await?;
    let got: Vec<(&str, u64)> = issues
        .iter()
        .map(|i| (i.exception_type.as_str(), i.count))
        .collect();
    assert_eq!(
        got,
        [
            // The three Go errors: no type, one issue each by message.
            ("", 1),
            ("", 1),
            ("", 1),
            ("CartError", 1),
            ("DatabaseError", 1),
            ("System.InvalidOperationException", 1),
            ("java.lang.IllegalArgumentException", 1),
            ("java.lang.IllegalStateException", 1),
        ],
        "{issues:#?}"
    );
    let mut go: Vec<&str> = issues
        .iter()
        .filter(|i| i.exception_type.is_empty())
        .map(|i| i.title.as_str())
        .collect();
    go.sort_unstable();
    assert_eq!(go.len(), 3, "{issues:#?}");
    assert!(go[0].starts_with("card declined"), "{go:?}");
    assert!(go[1].starts_with("context deadline exceeded"), "{go:?}");
    assert!(go[2].starts_with("dial tcp"), "{go:?}");
    let java: Vec<&str> = issues
        .iter()
        .filter(|i| i.exception_type.starts_with("java."))
        .map(|i| i.title.split_once(": ").map_or("", |(_, m)| m))
        .collect();
    assert_eq!(java.len(), 2, "{issues:#?}");
    assert_eq!(java[0], java[1], "one message, two types: {issues:#?}");
    Ok(())
}
