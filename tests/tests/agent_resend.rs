//! A batch the collector counted but whose answer the agent never read is sent again
//! after a crash, and counted once. The collector is frozen (SIGSTOP) while the agent has
//! a batch in flight; the agent is frozen in turn, and the collector resumes, applies the
//! batch and answers an agent that cannot read the answer. `kill -9` of the agent and a
//! restart on the same data directory find the batch still queued: it goes out again
//! under the same `bellwether-batch-id`, and the collector must recognise it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bellwether_e2e::agent_ops::{
    agent_metrics, http_get_text, kill_9, logs_request, parse_metrics, post_logs, start_agent,
};
use bellwether_e2e::{counted_log_records, AgentProcess, Collector, Identity};
use bellwether_testkit::eventually;
use bellwether_testkit::process::Supervised;

const IDENTITY: Identity = Identity {
    service: "resend-svc",
    version: "2.4.0",
    environment: "prod",
    commit: "5e5e5e",
    deploy_id: "d-resend",
};

/// Requests delivered before the freeze, and records in each.
const WARM_UP_REQUESTS: usize = 10;
const WARM_UP_RECORDS: usize = 5;

/// Records in the batch answered while the agent is frozen, and the body size of each.
/// Batches are sent uncompressed (`--compression none`), so its request is longer than
/// `RECORDS * BODY_BYTES`.
const RECORDS: usize = 20;
const BODY_BYTES: usize = 1000;

/// Tries at catching the agent with its whole request sent (see [`count_unanswered`]).
const ATTEMPTS: usize = 3;

const DEADLINE: Duration = Duration::from_secs(15);

const DUPLICATES: &str = "bellwether_ingest_requests_total{signal=\"logs\",result=\"duplicate\"}";
const QUEUED: &str = "bellwether_agent_queue_records";
const SENT: &str = "bellwether_agent_records_sent_total{signal=\"logs\"}";

/// Sent as queued, without compression: the size of a request on the wire is known.
const AGENT_FLAGS: [&str; 2] = ["--compression", "none"];

/// Sends `kill -<signal>` to a child (`STOP` freezes it, `CONT` resumes it).
fn signal(process: &Supervised, signal: &str) -> Result<()> {
    let pid = process.id().to_string();
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(&pid)
        .status()?;
    ensure!(status.success(), "kill -{signal} {pid} failed");
    Ok(())
}

/// Bytes that arrived on established connections to the local `port` and that its owner
/// has not read yet (the `rx_queue` column of Linux's `/proc/net/tcp`).
fn unread_bytes(port: u16) -> Result<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").context("reading /proc/net/tcp")?;
    let mut unread = 0;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, local, _, state, queues, ..] = fields[..] else {
            continue;
        };
        let local_port = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        // 01: ESTABLISHED.
        if local_port != Some(port) || state != "01" {
            continue;
        }
        let (_, rx) = queues.split_once(':').context("tx_queue:rx_queue")?;
        unread += u64::from_str_radix(rx, 16)?;
    }
    Ok(unread)
}

fn otlp_http(agent: &AgentProcess) -> Result<SocketAddr> {
    agent
        .listeners
        .get("otlp-http")
        .copied()
        .context("agent has no otlp-http listener")
}

/// Log records the collector counted for the test release (0 before it exists).
async fn collected(collector: &Collector) -> Result<u64> {
    counted_log_records(&collector.url(), &IDENTITY).await
}

/// Waits until the collector counted `expected` records; more is an error at once.
async fn wait_counted(collector: &Collector, expected: u64, deadline: Duration) -> Result<()> {
    eventually(deadline, || async {
        let n = collected(collector).await?;
        ensure!(
            n <= expected,
            "collector counted {n} records, expected {expected}"
        );
        Ok((n == expected).then_some(()))
    })
    .await
    .with_context(|| format!("waiting for {expected} records"))
}

async fn collector_metrics(collector: &Collector) -> Result<HashMap<String, f64>> {
    let (status, text) = http_get_text(&format!("{}/metrics", collector.url())).await?;
    ensure!(
        status == 200,
        "collector /metrics answered {status}: {text}"
    );
    Ok(parse_metrics(&text))
}

fn series(metrics: &HashMap<String, f64>, name: &str) -> Result<f64> {
    metrics
        .get(name)
        .copied()
        .with_context(|| format!("no {name} in {metrics:?}"))
}

/// Waits until the agent's queue is empty (every batch answered) and returns its metrics.
async fn wait_drained(agent: &AgentProcess) -> Result<HashMap<String, f64>> {
    eventually(DEADLINE, || async {
        let metrics = agent_metrics(agent).await?;
        Ok((series(&metrics, QUEUED)? == 0.0).then_some(metrics))
    })
    .await
    .context("the agent's queue never drained")
}

/// `field=N` from the agent's `starting` line.
fn at_start(log: &str, field: &str) -> Option<u64> {
    let prefix = format!("{field}=");
    log.lines()
        .filter(|line| line.contains("starting"))
        .find_map(|line| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(prefix.as_str()))
                .and_then(|n| n.parse().ok())
        })
}

/// Freezes the collector, hands the agent a batch of [`RECORDS`] records, freezes the
/// agent once that many bytes sit unread in the collector's socket, and resumes the
/// collector: it counts the batch (to `expected`) and answers an agent that cannot read
/// the answer. `false` when the collector does not count it soon: the agent was frozen
/// before the end of its request left it. The agent is then resumed and delivers the
/// batch as usual.
async fn count_unanswered(
    collector: &Collector,
    agent: &AgentProcess,
    tag: &str,
    expected: u64,
) -> Result<bool> {
    signal(&collector.process, "STOP")?;
    let request = logs_request(tag, RECORDS, BODY_BYTES);
    let status = post_logs(otlp_http(agent)?, &request).await?;
    ensure!(status == 200, "request {tag} answered {status}");
    let port = collector.otlp_grpc.port();
    let sent = (RECORDS * BODY_BYTES) as u64;
    eventually(DEADLINE, || async {
        Ok((unread_bytes(port)? >= sent).then_some(()))
    })
    .await
    .context("the batch never reached the frozen collector")?;
    signal(&agent.process, "STOP")?;
    signal(&collector.process, "CONT")?;
    let counted = wait_counted(collector, expected, Duration::from_secs(5))
        .await
        .is_ok();
    if !counted {
        signal(&agent.process, "CONT")?;
        wait_counted(collector, expected, DEADLINE).await?;
        wait_drained(agent).await?;
    }
    Ok(counted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_counted_before_a_crash_counts_once_when_sent_again() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = Collector::start(&dir.path().join("collector"))?;
    let data_dir = dir.path().join("agent");
    let agent = start_agent(&IDENTITY, &collector.grpc_url(), &data_dir, &AGENT_FLAGS)?;

    // The agent's connection to the collector is open and its queue empty.
    for i in 0..WARM_UP_REQUESTS {
        let request = logs_request(&format!("warm-up-{i}"), WARM_UP_RECORDS, 200);
        let status = post_logs(otlp_http(&agent)?, &request).await?;
        ensure!(status == 200, "warm-up request {i} answered {status}");
    }
    let mut expected = (WARM_UP_REQUESTS * WARM_UP_RECORDS) as u64;
    wait_counted(&collector, expected, DEADLINE).await?;
    wait_drained(&agent).await?;

    let mut attempt = 0;
    loop {
        attempt += 1;
        expected += RECORDS as u64;
        let tag = format!("unanswered-{attempt}");
        if count_unanswered(&collector, &agent, &tag, expected).await? {
            break;
        }
        ensure!(
            attempt < ATTEMPTS,
            "the collector never counted a batch while the agent was frozen"
        );
    }
    let duplicates = series(&collector_metrics(&collector).await?, DUPLICATES)?;

    // SIGKILL ends a stopped process too.
    kill_9(agent);
    let mut agent = start_agent(&IDENTITY, &collector.grpc_url(), &data_dir, &AGENT_FLAGS)?;
    // Appending the unanswered batch flushed the queue, with the deletions of the batches
    // delivered before it: that batch is all that is left.
    let (batches, records) = eventually(DEADLINE, || async {
        let log = agent.process.stderr_text();
        Ok(at_start(&log, "queued_batches").zip(at_start(&log, "queued_records")))
    })
    .await
    .context("start-up line with queued_batches and queued_records")?;
    assert_eq!(
        (batches, records),
        (1, RECORDS as u64),
        "queue at restart\n{}",
        agent.process.stderr_text()
    );

    let metrics = wait_drained(&agent).await?;
    assert_eq!(
        series(&metrics, SENT)?,
        RECORDS as f64,
        "sent after restart"
    );
    // The agent has its answer, so the collector has decided: a known batch id.
    assert_eq!(
        series(&collector_metrics(&collector).await?, DUPLICATES)? - duplicates,
        1.0,
        "duplicate batches recognised by the collector"
    );
    assert_eq!(collected(&collector).await?, expected);

    let status = agent.process.terminate()?;
    assert!(status.success(), "{}", agent.process.stderr_text());
    assert_eq!(collected(&collector).await?, expected);
    Ok(())
}
