//! End-to-end: the agent's line sources (tailed files, a wrapped command) with real
//! `bellwether serve` and `bellwether-agent` processes on loopback. Every line must
//! reach the collector exactly once: through a collector outage, rename and copytruncate
//! rotation, garbage input, and multi-line stack traces; JSON loggers' error fields
//! become issues by exception type.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bellwether_e2e::agent_sources::{agent_metrics, metric_sum, start_agent};
use bellwether_e2e::{Collector, Identity};
use bellwether_testkit::eventually;
use bellwether_testkit::process::Supervised;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(90);

fn identity(service: &'static str) -> Identity {
    Identity {
        service,
        version: "3.1.0",
        environment: "prod",
        commit: "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        deploy_id: "deploy-9",
    }
}

/// (log_records, error_logs) the collector counted for `service` 3.1.0 in prod.
async fn counts(collector: &Collector, service: &str) -> Result<(u64, u64)> {
    let stats = collector
        .get(&format!(
            "/api/v1/releases/{service}/3.1.0/stats?environment=prod"
        ))
        .await?;
    let totals = &stats["release"]["totals"];
    let n = |k: &str| totals[k].as_u64().unwrap_or(u64::MAX);
    Ok((n("log_records"), n("error_logs")))
}

/// Waits until the collector's counts equal `want`, then checks they stay there (a
/// duplicate arriving late would raise them).
async fn expect_counts(collector: &Collector, service: &str, want: (u64, u64)) -> Result<()> {
    let reached = eventually(DEADLINE, || async {
        // Unknown until the first record arrives.
        let got = counts(collector, service).await.unwrap_or((0, 0));
        Ok((got == want).then_some(()))
    })
    .await;
    let last = counts(collector, service).await.ok();
    reached.with_context(|| format!("collector counts {last:?}, expected {want:?}"))?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counts(collector, service).await?, want, "counts moved on");
    Ok(())
}

fn append_lines(path: &Path, lines: impl IntoIterator<Item = String>) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut out = std::io::BufWriter::new(file);
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

fn glob(path: &Path) -> Result<&str> {
    path.to_str().context("temporary path is not UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailed_lines_wait_for_a_collector_that_is_down() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let grpc_addr = format!("127.0.0.1:{port}");
    let log = dir.path().join("app.log");
    let id = identity("outage");
    let (mut agent, _) = start_agent(
        &id,
        &format!("http://{grpc_addr}"),
        &dir.path().join("agent"),
        &["--file", glob(&log)?],
    )?;
    append_lines(&log, (0..50_000).map(|i| format!("INFO order {i} placed")))?;
    // The collector stays away for 20 s: the agent queues, and its retries back off to
    // their 10 s ceiling.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let collector = Collector::start_on(&dir.path().join("collector"), &grpc_addr)?;
    expect_counts(&collector, "outage", (50_000, 0)).await?;
    let status = agent.terminate()?;
    assert!(status.success(), "{}", agent.stderr_text());
    assert!(
        agent.stderr_text().contains("export failed"),
        "the agent must have met the missing collector:\n{}",
        agent.stderr_text()
    );
    Ok(())
}

/// A writer that appends numbered lines to `path` at a steady pace, with one rename
/// rotation and one copytruncate rotation in the middle.
fn write_through_rotations(dir: &Path, admin: std::net::SocketAddr, total: usize) -> Result<()> {
    let log = dir.join("app.log");
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
    };
    let mut file = open()?;
    for i in 0..total {
        writeln!(file, "WARN retry {i}")?;
        if i % 500 == 499 {
            std::thread::sleep(Duration::from_millis(20));
        }
        if i == total / 3 {
            // Rename rotation: the writer keeps writing to the renamed file for a
            // moment (as a process does until it reopens its log), then reopens.
            std::fs::rename(&log, dir.join("app.log.1"))?;
            for j in 0..100 {
                writeln!(file, "WARN late {j}")?;
            }
            file = open()?;
        }
        if i == 2 * total / 3 {
            // copytruncate: lines written between the copy and the truncation would be
            // in the copy only, which nobody tails (logrotate's documented window).
            // The writer pauses until the agent has read everything, as a quiet moment
            // would give, then copy and truncation happen.
            file.flush()?;
            let deadline = Instant::now() + DEADLINE;
            loop {
                let metrics = agent_metrics(admin)?;
                let lag = metric_sum(&metrics, "bellwether_agent_file_lag_bytes", "app.log\"");
                if lag == Some(0.0) {
                    break;
                }
                anyhow::ensure!(Instant::now() < deadline, "agent never caught up: {lag:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
            std::fs::copy(&log, dir.join("app.log.2"))?;
            file.set_len(0)?;
        }
    }
    file.flush()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_and_copytruncate_rotation_lose_and_repeat_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = Collector::start(&dir.path().join("collector"))?;
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs)?;
    let id = identity("rotation");
    let (mut agent, admin) = start_agent(
        &id,
        &collector.grpc_url(),
        &dir.path().join("agent"),
        &["--file", glob(&logs.join("app.log"))?],
    )?;
    // The agent must know the file before the writer rotates it (discovery runs once a
    // second): a file renamed away before it was ever seen is not the agent's.
    std::fs::write(logs.join("app.log"), b"")?;
    eventually(DEADLINE, || async {
        let metrics = agent_metrics(admin)?;
        Ok(metric_sum(&metrics, "bellwether_agent_file_lag_bytes", "app.log\"").map(|_| ()))
    })
    .await?;
    let total = 12_000;
    let writer_dir = logs.clone();
    tokio::task::spawn_blocking(move || write_through_rotations(&writer_dir, admin, total))
        .await??;
    if let Err(e) = expect_counts(&collector, "rotation", (total as u64 + 100, 0)).await {
        panic!("{e:#}\n{}\n{}", agent.stderr_text(), agent_metrics(admin)?);
    }

    let metrics = agent_metrics(admin)?;
    let rotations = metric_sum(&metrics, "bellwether_agent_file_rotations_total", "");
    let truncations = metric_sum(&metrics, "bellwether_agent_file_truncations_total", "");
    assert_eq!(rotations, Some(1.0), "{metrics}");
    assert_eq!(truncations, Some(1.0), "{metrics}");
    let status = agent.terminate()?;
    assert!(status.success(), "{}", agent.stderr_text());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_a_huge_line_do_not_stop_the_valid_lines() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = Collector::start(&dir.path().join("collector"))?;
    let log = dir.path().join("app.log");
    let id = identity("garbage");
    let (mut agent, admin) = start_agent(
        &id,
        &collector.grpc_url(),
        &dir.path().join("agent"),
        &["--file", glob(&log)?],
    )?;
    append_lines(&log, (0..100).map(|i| format!("ERROR valid before {i}")))?;
    {
        let mut file = std::fs::OpenOptions::new().append(true).open(&log)?;
        // 10 MiB of random bytes (xorshift; no newline-free guarantee either way).
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..10 {
            for b in chunk.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Never `E`, so no garbage line can pass for an ERROR line.
                *b = match (state >> 24) as u8 {
                    b'E' => b'e',
                    other => other,
                };
            }
            file.write_all(&chunk)?;
        }
        file.write_all(b"\n")?;
        // One 5 MiB line.
        file.write_all(&vec![b'x'; 5 << 20])?;
        file.write_all(b"\n")?;
    }
    append_lines(&log, (0..100).map(|i| format!("ERROR valid after {i}")))?;

    let (records, errors) = eventually(DEADLINE, || async {
        let got = counts(&collector, "garbage").await.unwrap_or((0, 0));
        Ok((got.1 >= 200).then_some(got))
    })
    .await?;
    assert_eq!(errors, 200, "every valid line arrives, once");
    assert!(records > 1000, "garbage lines are records too: {records}");

    let metrics = agent_metrics(admin)?;
    let sum = |name: &str| metric_sum(&metrics, name, "app.log").unwrap_or(0.0);
    assert!(
        sum("bellwether_agent_file_lines_truncated_total") >= 1.0,
        "{metrics}"
    );
    assert!(
        sum("bellwether_agent_file_invalid_utf8_lines_total") >= 100.0,
        "{metrics}"
    );
    let (status, health) = bellwether_e2e::agent_sources::http_get_text(admin, "/healthz")?;
    assert_eq!(status, 200, "{health}");
    let status = agent.terminate()?;
    assert!(status.success(), "{}", agent.stderr_text());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ships_the_childs_output_and_exits_with_its_code() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = Collector::start(&dir.path().join("collector"))?;
    let id = identity("wrapped");
    let script = "echo 'INFO starting'; echo 'ERROR db down' >&2; echo 'INFO bye'; exit 3";
    let (mut agent, _) = start_agent(
        &id,
        &collector.grpc_url(),
        &dir.path().join("agent"),
        &["run", "--", "sh", "-c", script],
    )?;
    let status = agent.wait_exit(DEADLINE)?;
    assert_eq!(status.code(), Some(3), "{}", agent.stderr_text());
    // The agent exits after the records were delivered.
    assert_eq!(counts(&collector, "wrapped").await?, (3, 1));
    let release = collector
        .get("/api/v1/releases?service=wrapped&environment=prod")
        .await?;
    let first = &release["releases"][0];
    assert_eq!(first["commit"], Value::from(id.commit), "{release:#}");
    assert_eq!(first["deploy_id"], Value::from(id.deploy_id), "{release:#}");

    // SIGTERM to the agent reaches the child, whose exit code the agent takes.
    let id = identity("wrapped-term");
    let script = "trap 'echo \"WARN got TERM\"; exit 5' TERM; echo 'INFO ready'; \
                  while :; do sleep 0.1; done";
    let (mut agent, _) = start_agent(
        &id,
        &collector.grpc_url(),
        &dir.path().join("agent-2"),
        &["run", "--", "sh", "-c", script],
    )?;
    expect_counts(&collector, "wrapped-term", (1, 0)).await?;
    let status = terminate_keeping_code(&mut agent)?;
    assert_eq!(status, Some(5), "{}", agent.stderr_text());
    assert_eq!(counts(&collector, "wrapped-term").await?, (2, 0));
    Ok(())
}

/// Sends SIGTERM and returns the exit code, whatever it is.
fn terminate_keeping_code(agent: &mut Supervised) -> Result<Option<i32>> {
    // `terminate` sends SIGTERM and waits; the code is the child's, not necessarily 0.
    Ok(agent.terminate()?.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_java_trace_in_a_tailed_file_is_one_error_record() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = Collector::start(&dir.path().join("collector"))?;
    let log = dir.path().join("app.log");
    let id = identity("traces");
    let (mut agent, _) = start_agent(
        &id,
        &collector.grpc_url(),
        &dir.path().join("agent"),
        &["--file", glob(&log)?, "--multiline-timeout", "300ms"],
    )?;
    let text = "\
2026-11-26 12:00:01.101  INFO 1 --- [nio-8080-exec-1] com.shop.Checkout : handling order 981273
2026-11-26 12:00:01.117 ERROR 1 --- [nio-8080-exec-1] com.shop.Checkout : checkout failed for order 981273
com.shop.Checkout$PaymentException: charge failed for order 981273
\tat com.shop.Checkout.charge(Checkout.java:22)
\tat com.shop.Checkout.main(Checkout.java:31)
Caused by: java.lang.NullPointerException: Cannot invoke \"java.lang.Integer.intValue()\"
\tat com.shop.Checkout$Cart.total(Checkout.java:10)
\t... 1 more
2026-11-26 12:00:01.240  WARN 1 --- [nio-8080-exec-2] com.shop.Inventory : slow response from inventory: 2412 ms
";
    append_lines(&log, text.lines().map(str::to_owned))?;
    expect_counts(&collector, "traces", (3, 1)).await?;
    let status = agent.terminate()?;
    assert!(status.success(), "{}", agent.stderr_text());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logger_errors_become_issues_by_exception_type() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = Collector::start(&dir.path().join("collector"))?;
    let log = dir.path().join("app.log");
    let id = identity("loggers");
    let (mut agent, _) = start_agent(
        &id,
        &collector.grpc_url(),
        &dir.path().join("agent"),
        &["--file", glob(&log)?],
    )?;
    // pino: two errors with one message and different types. Their stacks both say
    // `Error:` (a subclass that never set `name`), so only pino's `err.type` (the
    // constructor's name) tells them apart. structlog: a traceback.
    let pino = |kind: &str| {
        format!(
            r#"{{"level":50,"time":1700000000000,"pid":7,"hostname":"web-1","err":{{"type":"{kind}","message":"upstream 10.0.0.5 failed","stack":"Error: upstream 10.0.0.5 failed\n    at call (/app/upstream.js:9:3)\n    at async handler (/app/server.js:12:5)"}},"msg":"request failed"}}"#
        )
    };
    let lines = [
        r#"{"level":30,"time":1700000000000,"pid":7,"hostname":"web-1","msg":"request handled"}"#.to_owned(),
        pino("TimeoutError"),
        pino("ConnectionRefusedError"),
        r#"{"event":"payment failed","level":"error","timestamp":"2026-11-26T12:00:01Z","exception":"Traceback (most recent call last):\n  File \"/app/pay.py\", line 10, in charge\n    raise KeyError(\"card\")\nKeyError: 'card'"}"#.to_owned(),
    ];
    append_lines(&log, lines)?;
    expect_counts(&collector, "loggers", (4, 3)).await?;

    let issues = collector
        .get("/api/v1/releases/loggers/3.1.0/issues?environment=prod")
        .await?;
    let list = issues["issues"].as_array().context("issues")?;
    let mut types: Vec<&str> = list
        .iter()
        .filter_map(|issue| issue["exception_type"].as_str())
        .collect();
    types.sort_unstable();
    assert_eq!(
        types,
        ["ConnectionRefusedError", "KeyError", "TimeoutError"],
        "{issues:#}"
    );
    let mut fingerprints: Vec<&str> = list
        .iter()
        .filter_map(|issue| issue["fingerprint"].as_str())
        .collect();
    fingerprints.sort_unstable();
    fingerprints.dedup();
    assert_eq!(fingerprints.len(), 3, "{issues:#}");
    let status = agent.terminate()?;
    assert!(status.success(), "{}", agent.stderr_text());
    Ok(())
}
