//! A full disk, on a size-limited `tmpfs` the test mounts: under the agent while the
//! collector is away, and under the collector while agents send. Either way nothing
//! acknowledged is lost, nothing is counted twice, and both recover by themselves when the
//! space is back.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bellwether_e2e::agent_ops::{agent_metrics, logs_request, metric_sum, post_logs, start_agent};
use bellwether_e2e::tmpfs::Tmpfs;
use bellwether_e2e::{counted_log_records, http_get_json, AgentProcess, Collector, Identity};
use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_testkit::eventually;

const IDENTITY: Identity = Identity {
    service: "disk-svc",
    version: "1.4.0",
    environment: "prod",
    commit: "d15c0",
    deploy_id: "d-disk",
};

/// Records per OTLP request, and the size of each record's body.
const RECORDS: usize = 16;
const BODY: usize = 4096;

fn otlp_http(agent: &AgentProcess) -> Result<std::net::SocketAddr> {
    agent
        .listeners
        .get("otlp-http")
        .copied()
        .context("agent has no otlp-http listener")
}

fn free_port_addr() -> Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(format!("127.0.0.1:{port}"))
}

fn append_lines(path: &Path, lines: std::ops::Range<usize>) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for i in lines {
        writeln!(
            file,
            "INFO line {i} written while the agent's disk was full"
        )?;
    }
    file.sync_all()?;
    Ok(())
}

/// Waits until the collector counted exactly `expected` records, never more.
async fn collected_exactly(collector: &Collector, expected: u64) -> Result<()> {
    eventually(Duration::from_secs(90), || async {
        let n = counted_log_records(&collector.url(), &IDENTITY).await?;
        if n > expected {
            bail!("collector counted {n} records, more than the {expected} acknowledged");
        }
        Ok((n == expected).then_some(()))
    })
    .await
    .with_context(|| format!("waiting for {expected} records"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_disk_full_holds_sources_back_and_resumes_when_space_returns() -> Result<()> {
    let Some(fs) = Tmpfs::mount("24m")? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let collector_addr = free_port_addr()?;
    let log = dir.path().join("app.log");
    std::fs::write(&log, "")?;
    let agent = start_agent(
        &IDENTITY,
        &format!("http://{collector_addr}"),
        &fs.path().join("agent"),
        &[
            "--disk-reserve",
            "6MiB",
            "--compression",
            "none",
            "--file",
            log.to_str().context("path")?,
        ],
    )?;
    // Space the test can give back later.
    fs.fill_leaving(fs.free_bytes()? - 4 * 1024 * 1024)?;

    // OTLP requests are taken until the disk is down to its reserve, then refused.
    let mut acked = 0u64;
    let mut refused = None;
    for i in 0..400 {
        let request = logs_request(&format!("fill-{i}"), RECORDS, BODY);
        match post_logs(otlp_http(&agent)?, &request).await? {
            200 => acked += 1,
            status => {
                refused = Some(status);
                break;
            }
        }
    }
    assert_eq!(refused, Some(503), "after {acked} requests taken");
    assert!(acked >= 10, "only {acked} requests fit");
    let grpc = agent.listeners["otlp-grpc"];
    let mut client = LogsServiceClient::connect(format!("http://{grpc}")).await?;
    let status = client
        .export(logs_request("refused-grpc", RECORDS, BODY))
        .await
        .expect_err("the disk is full");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("disk is full"), "{status:?}");

    // Lines written meanwhile wait in their file: nothing of them is taken.
    append_lines(&log, 0..500)?;
    let metrics = agent_metrics(&agent).await?;
    assert_eq!(metrics["bellwether_agent_disk_full"], 1.0);
    assert_eq!(metrics["bellwether_agent_disk_full_episodes_total"], 1.0);
    assert_eq!(
        metrics["bellwether_agent_queue_records"],
        (acked * RECORDS as u64) as f64
    );
    let stderr = agent.process.stderr_text();
    assert!(stderr.contains("disk is full"), "{stderr}");

    // The space is back: the file's lines are taken with the collector still away.
    fs.empty_ballast()?;
    let expected = acked * RECORDS as u64 + 500;
    eventually(Duration::from_secs(30), || async {
        let metrics = agent_metrics(&agent).await?;
        let queued = metrics["bellwether_agent_queue_records"] as u64;
        Ok((queued == expected && metrics["bellwether_agent_disk_full"] == 0.0).then_some(()))
    })
    .await
    .context("the file's lines after the space came back")?;
    let stderr = agent.process.stderr_text();
    assert!(stderr.contains("disk space is back"), "{stderr}");

    let collector = Collector::start_on(&dir.path().join("collector"), &collector_addr)?;
    collected_exactly(&collector, expected).await?;
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
        expected as f64
    );
    assert_eq!(
        counted_log_records(&collector.url(), &IDENTITY).await?,
        expected
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_disk_full_refuses_ingest_retryably_and_resumes() -> Result<()> {
    let Some(fs) = Tmpfs::mount("48m")? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("collector.toml");
    std::fs::write(&config, "[limits]\nmin_free_disk_bytes = 12582912\n")?;
    let data_dir = fs.path().join("collector");
    let args = ["--config", config.to_str().context("path")?];
    let collector = Collector::start_with(&data_dir, "127.0.0.1:0", &args)?;
    let agent = start_agent(
        &IDENTITY,
        &collector.grpc_url(),
        &dir.path().join("agent"),
        &[],
    )?;
    let send = |from: usize, to: usize| {
        let addr = otlp_http(&agent);
        async move {
            let addr = addr?;
            for i in from..to {
                let status =
                    post_logs(addr, &logs_request(&format!("c-{i}"), RECORDS, 256)).await?;
                anyhow::ensure!(status == 200, "request {i} answered {status}");
            }
            Ok::<_, anyhow::Error>(())
        }
    };
    send(0, 20).await?;
    collected_exactly(&collector, 20 * RECORDS as u64).await?;

    // Down to 4 MiB free, below the 12 MiB the collector keeps: ingest is refused.
    fs.fill_leaving(4 * 1024 * 1024)?;
    send(20, 40).await?;
    let refused = |text: String| {
        text.lines()
            .find(|l| l.starts_with("bellwether_limit_exceeded_total{limit=\"free_disk\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let metrics_url = format!("{}/metrics", collector.url());
    eventually(Duration::from_secs(30), || async {
        let (_, text) = bellwether_e2e::agent_ops::http_get_text(&metrics_url).await?;
        Ok((refused(text) >= 2.0).then_some(()))
    })
    .await
    .context("the collector refusing ingest")?;
    // Nothing of it was stored, the agent keeps it, and reads go on.
    assert_eq!(
        counted_log_records(&collector.url(), &IDENTITY).await?,
        20 * RECORDS as u64
    );
    let metrics = agent_metrics(&agent).await?;
    assert_eq!(
        metrics["bellwether_agent_queue_records"],
        (20 * RECORDS) as f64
    );
    let (status, _) = http_get_json(&format!("{}/api/v1/releases", collector.url())).await?;
    assert_eq!(status, 200);
    let (status, _) = http_get_json(&format!("{}/readyz", collector.url())).await?;
    assert_eq!(status, 200);
    let stderr = collector.process.stderr_text();
    assert!(stderr.contains("refusing ingest"), "{stderr}");

    // The space is back: the agent's retries get in, each record once.
    fs.empty_ballast()?;
    collected_exactly(&collector, 40 * RECORDS as u64).await?;
    let metrics = eventually(Duration::from_secs(30), || async {
        let metrics = agent_metrics(&agent).await?;
        Ok((metrics["bellwether_agent_queue_records"] == 0.0).then_some(metrics))
    })
    .await?;
    assert_eq!(
        metric_sum(&metrics, "bellwether_agent_records_dropped_total"),
        0.0
    );

    // The store was left whole: a restart on it reads the same counts.
    let mut collector = collector;
    let status = collector.process.terminate()?;
    assert!(status.success(), "{}", collector.process.stderr_text());
    let collector = Collector::start_with(&data_dir, "127.0.0.1:0", &args)?;
    assert_eq!(
        counted_log_records(&collector.url(), &IDENTITY).await?,
        40 * RECORDS as u64
    );
    drop(agent);
    Ok(())
}
