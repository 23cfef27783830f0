//! The agent's durable queue with real processes: `kill -9` mid-stream, a full queue
//! with the collector away, a damaged queue file, and a collector restart. Every request
//! answered 200 by the agent must reach the collector exactly once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bellwether_e2e::agent_ops::{
    agent_metrics, http_get_text, kill_9, logs_request, metric_sum, post_logs, start_agent,
};
use bellwether_e2e::{counted_log_records, AgentProcess, Collector, Identity};
use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_testkit::eventually;
use tokio::sync::watch;

const IDENTITY: Identity = Identity {
    service: "queue-svc",
    version: "3.1.0",
    environment: "prod",
    commit: "c0ffee",
    deploy_id: "d-1",
};

/// Log records the collector counted for the test release (0 before it exists).
async fn collected(collector: &Collector) -> Result<u64> {
    counted_log_records(&collector.url(), &IDENTITY).await
}

/// Waits until the collector counted exactly `expected` records, and stays there a moment
/// (a late duplicate would show up as a higher count).
async fn assert_collected_exactly(collector: &Collector, expected: u64) -> Result<()> {
    eventually(Duration::from_secs(60), || async {
        let n = collected(collector).await?;
        if n > expected {
            bail!("collector counted {n} records, more than the {expected} sent");
        }
        Ok((n == expected).then_some(()))
    })
    .await
    .with_context(|| format!("waiting for {expected} records"))?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(collected(collector).await?, expected);
    Ok(())
}

fn otlp_http(agent: &AgentProcess) -> Result<std::net::SocketAddr> {
    agent
        .listeners
        .get("otlp-http")
        .copied()
        .context("agent has no otlp-http listener")
}

/// A port that is free now and nobody listens on (until a collector is started there).
fn free_port_addr() -> Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(format!("127.0.0.1:{port}"))
}

/// Polls `/metrics` closely until the queue is empty.
async fn wait_until_delivered(agent: &AgentProcess) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while agent_metrics(agent).await?["bellwether_agent_queue_records"] > 0.0 {
        anyhow::ensure!(std::time::Instant::now() < deadline, "queue never drained");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_requests_loses_and_doubles_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = Collector::start(&dir.path().join("collector"))?;
    let data_dir = dir.path().join("agent");
    let mut agent = start_agent(&IDENTITY, &collector.grpc_url(), &data_dir, &[])?;
    const REQUESTS: usize = 150;
    const RECORDS: usize = 3;
    for i in 0..REQUESTS {
        let request = logs_request(&format!("between-{i}"), RECORDS, 200);
        let status = post_logs(otlp_http(&agent)?, &request).await?;
        assert_eq!(status, 200, "request {i}");
        // Right after an acknowledgement its batch is queued or in flight (the second
        // kill); right after its delivery, its deletion from the queue is not on disk
        // yet (the first): the restarted agent sends it again, and the collector must
        // recognise its batch id. Each record must end up counted once.
        if i == 49 {
            wait_until_delivered(&agent).await?;
        }
        if i == 49 || i == 99 {
            kill_9(agent);
            agent = start_agent(&IDENTITY, &collector.grpc_url(), &data_dir, &[])?;
        }
    }
    let status = agent.process.terminate()?;
    assert!(status.success(), "{}", agent.process.stderr_text());
    assert_collected_exactly(&collector, (REQUESTS * RECORDS) as u64).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_request_loses_nothing_acknowledged() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = Collector::start(&dir.path().join("collector"))?;
    let data_dir = dir.path().join("agent");
    let mut agent = start_agent(&IDENTITY, &collector.grpc_url(), &data_dir, &[])?;
    const REQUESTS: u64 = 200;
    const RECORDS: usize = 2;

    let (addr_tx, mut addr_rx) = watch::channel(otlp_http(&agent)?);
    let acked = Arc::new(AtomicU64::new(0));
    let unanswered = Arc::new(AtomicU64::new(0));
    let sender = tokio::spawn({
        let (acked, unanswered) = (acked.clone(), unanswered.clone());
        async move {
            for i in 0..REQUESTS {
                let request = logs_request(&format!("mid-{i}"), RECORDS, 200);
                loop {
                    let addr = *addr_rx.borrow_and_update();
                    match post_logs(addr, &request).await {
                        Ok(200) => {
                            acked.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        Ok(other) => bail!("request {i} answered {other}"),
                        // No answer: the agent died. The request may or may not be
                        // queued; send it again to the restarted agent.
                        Err(_) => {
                            unanswered.fetch_add(1, Ordering::SeqCst);
                            addr_rx.changed().await?;
                        }
                    }
                }
            }
            Ok::<_, anyhow::Error>(())
        }
    });
    for kill_after in [60, 130] {
        eventually(Duration::from_secs(60), || async {
            Ok((acked.load(Ordering::SeqCst) >= kill_after).then_some(()))
        })
        .await?;
        kill_9(agent);
        agent = start_agent(&IDENTITY, &collector.grpc_url(), &data_dir, &[])?;
        addr_tx.send(otlp_http(&agent)?)?;
    }
    sender.await??;
    let status = agent.process.terminate()?;
    assert!(status.success(), "{}", agent.process.stderr_text());

    // Nothing acknowledged is lost; a request cut off mid-way may have been queued
    // before the kill and then sent again, so it may count twice, nothing else may.
    let records = RECORDS as u64;
    let resent = unanswered.load(Ordering::SeqCst);
    let min = REQUESTS * records;
    let max = (REQUESTS + resent) * records;
    eventually(Duration::from_secs(60), || async {
        Ok((collected(&collector).await? >= min).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n = collected(&collector).await?;
    assert!(
        (min..=max).contains(&n),
        "collected {n}, expected {min}..={max} ({resent} requests re-sent)"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_refuses_otlp_then_delivers_everything() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector_addr = free_port_addr()?;
    let data_dir = dir.path().join("agent");
    let agent = start_agent(
        &IDENTITY,
        &format!("http://{collector_addr}"),
        &data_dir,
        // Stored uncompressed, so each request takes about its size in the queue.
        &["--queue-max-bytes", "64KiB", "--compression", "none"],
    )?;
    // About 8 KiB per request: the queue is full after a handful.
    const RECORDS: usize = 4;
    let mut acked = 0u64;
    let mut refused = false;
    for i in 0..30 {
        let status = post_logs(
            otlp_http(&agent)?,
            &logs_request(&format!("full-{i}"), RECORDS, 2048),
        )
        .await?;
        match status {
            200 => acked += 1,
            429 => {
                refused = true;
                break;
            }
            other => bail!("request {i} answered {other}"),
        }
    }
    assert!(refused, "the queue never filled up");
    assert!(acked >= 4, "only {acked} requests fit");

    // gRPC gets RESOURCE_EXHAUSTED, which OTLP exporters retry later.
    let grpc = agent.listeners["otlp-grpc"];
    let mut client = LogsServiceClient::connect(format!("http://{grpc}")).await?;
    let status = client
        .export(logs_request("full-grpc", RECORDS, 2048))
        .await
        .expect_err("queue is full");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");

    let metrics = agent_metrics(&agent).await?;
    assert_eq!(
        metrics["bellwether_agent_queue_records"],
        (acked * RECORDS as u64) as f64
    );
    assert!(metrics["bellwether_agent_requests_refused_total"] >= 2.0);
    assert!(metrics["bellwether_agent_queue_bytes"] > 32.0 * 1024.0);

    let collector = Collector::start_on(&dir.path().join("collector"), &collector_addr)?;
    assert_collected_exactly(&collector, acked * RECORDS as u64).await?;
    let metrics = eventually(Duration::from_secs(30), || async {
        let metrics = agent_metrics(&agent).await?;
        Ok((metrics["bellwether_agent_queue_records"] == 0.0).then_some(metrics))
    })
    .await?;
    assert_eq!(
        metric_sum(&metrics, "bellwether_agent_records_dropped_total"),
        0.0
    );
    assert_eq!(
        metrics["bellwether_agent_records_sent_total{signal=\"logs\"}"],
        (acked * RECORDS as u64) as f64
    );
    Ok(())
}

/// `starting … queued_records=N` from the agent's start-up line.
fn queued_at_start(log: &str) -> Option<u64> {
    log.lines()
        .filter(|line| line.contains("starting"))
        .find_map(|line| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix("queued_records="))
                .and_then(|n| n.parse().ok())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_queue_file_is_reported_and_the_rest_delivered() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector_addr = free_port_addr()?;
    let data_dir = dir.path().join("agent");
    let url = format!("http://{collector_addr}");
    let mut agent = start_agent(&IDENTITY, &url, &data_dir, &["--flush-timeout", "500ms"])?;
    for i in 0..40 {
        let request = logs_request(&format!("old-{i}"), 5, 300);
        assert_eq!(post_logs(otlp_http(&agent)?, &request).await?, 200);
    }
    // The collector is away: the flush timeout passes and everything stays queued.
    // That is not a loss: exit 0.
    let status = agent.process.terminate()?;
    let log = agent.process.stderr_text();
    assert!(status.success(), "{log}");
    assert!(log.contains("records remain queued"), "{log}");
    drop(agent);

    // Overwrite bytes in the middle of the queue's segment file.
    let segments = data_dir.join("queue-segments");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&segments)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.sort();
    let segment = files.last().context("no queue segment file")?;
    let mut bytes = std::fs::read(segment)?;
    let middle = bytes.len() / 2;
    let end = (middle + 4096).min(bytes.len());
    bytes[middle..end].fill(0x5a);
    std::fs::write(segment, bytes)?;

    let collector = Collector::start_on(&dir.path().join("collector"), &collector_addr)?;
    let mut agent = start_agent(&IDENTITY, &url, &data_dir, &[])?;
    let metrics = agent_metrics(&agent).await?;
    let damage = metrics["bellwether_agent_queue_corrupt_entries_total"]
        + metrics["bellwether_agent_queue_corrupt_resets_total"];
    assert!(damage >= 1.0, "damage not reported: {metrics:?}");
    let survived = queued_at_start(&agent.process.stderr_text())
        .context("start-up line with queued_records")?;
    assert!(survived < 200, "the damage cost nothing? {survived}");

    for i in 0..10 {
        let request = logs_request(&format!("new-{i}"), 5, 300);
        assert_eq!(post_logs(otlp_http(&agent)?, &request).await?, 200);
    }
    assert_collected_exactly(&collector, survived + 50).await?;
    let status = agent.process.terminate()?;
    assert!(status.success(), "{}", agent.process.stderr_text());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_restart_on_the_same_port_keeps_exact_counts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector_dir = dir.path().join("collector");
    let mut collector = Collector::start(&collector_dir)?;
    let collector_addr = collector.otlp_grpc.to_string();
    let mut agent = start_agent(
        &IDENTITY,
        &collector.grpc_url(),
        &dir.path().join("agent"),
        &[],
    )?;
    let send = |agent: &AgentProcess, phase: &'static str| {
        let addr = otlp_http(agent);
        async move {
            let addr = addr?;
            for i in 0..20 {
                let request = logs_request(&format!("{phase}-{i}"), 2, 200);
                let status = post_logs(addr, &request).await?;
                anyhow::ensure!(status == 200, "{phase} request {i} answered {status}");
            }
            Ok::<_, anyhow::Error>(())
        }
    };

    send(&agent, "before").await?;
    assert_collected_exactly(&collector, 40).await?;
    let status = collector.process.terminate()?;
    assert!(status.success());
    drop(collector);

    // Acknowledged while the collector is away: queued.
    send(&agent, "during").await?;
    let metrics = agent_metrics(&agent).await?;
    assert_eq!(metrics["bellwether_agent_queue_records"], 40.0);
    let admin = agent.listeners["admin"];
    let (ready, body) = http_get_text(&format!("http://{admin}/readyz")).await?;
    assert_eq!(ready, 200, "a young queue is not a stall: {body}");

    collector = Collector::start_on(&collector_dir, &collector_addr)?;
    send(&agent, "after").await?;
    assert_collected_exactly(&collector, 120).await?;
    let status = agent.process.terminate()?;
    assert!(status.success(), "{}", agent.process.stderr_text());
    let log = agent.process.stderr_text();
    assert!(log.contains("export failed, retrying"), "{log}");
    Ok(())
}
