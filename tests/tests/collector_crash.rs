//! `kill -9` of the collector while a client streams batches, then a restart on the same
//! data directory: every acknowledged batch is counted, and re-sending the unacknowledged
//! one (which may have been applied just before the kill) and an acknowledged one with
//! their batch ids counts each exactly once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bellwether_e2e::security::export_batch;
use bellwether_e2e::Collector;
use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_testkit::clock::now_ms;
use bellwether_testkit::eventually;
use bellwether_testkit::otlp::{log_record, release_resource, SEVERITY_INFO};

const SERVICE: &str = "crash-svc";
const VERSION: &str = "4.0.0";
const DEADLINE: Duration = Duration::from_secs(30);

/// Batch `i` holds `1 + i % 100` records.
fn size(i: u64) -> usize {
    1 + (i % 100) as usize
}

fn records(i: u64) -> Vec<bellwether_proto::otlp::logs::LogRecord> {
    let at = now_ms();
    (0..size(i))
        .map(|n| log_record(&format!("batch {i} record {n}"), SEVERITY_INFO, None, at))
        .collect()
}

fn batch_id(i: u64) -> String {
    format!("crash-test:boot-1:{i}")
}

async fn counted(collector: &Collector) -> Result<u64> {
    let body = collector
        .get(&format!(
            "/api/v1/releases/{SERVICE}/{VERSION}/stats?environment=prod"
        ))
        .await?;
    body["release"]["totals"]["log_records"]
        .as_u64()
        .context("totals.log_records")
}

#[tokio::test]
async fn kill_9_under_load_keeps_every_acknowledged_batch() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("collector");
    let resource = release_resource(SERVICE, VERSION, "prod", "crash-1");
    let collector = Collector::start(&data_dir)?;

    // Sends batches one after the other until one fails; returns the failed one's index.
    let acked = Arc::new(AtomicU64::new(0));
    let sender = {
        let (url, resource, acked) = (collector.grpc_url(), resource.clone(), acked.clone());
        tokio::spawn(async move {
            let mut client = LogsServiceClient::connect(url).await?;
            let mut i = 0u64;
            while export_batch(&mut client, &resource, records(i), &batch_id(i))
                .await
                .is_ok()
            {
                i += 1;
                acked.store(i, Ordering::SeqCst);
            }
            anyhow::Ok(i)
        })
    };
    eventually(DEADLINE, || async {
        Ok((acked.load(Ordering::SeqCst) >= 150).then_some(()))
    })
    .await?;
    drop(collector); // SIGKILL
    let unacked = tokio::time::timeout(DEADLINE, sender).await???;
    ensure!(unacked >= 150, "stopped after {unacked} batches");

    let collector = Collector::start(&data_dir)?;
    let mut client = LogsServiceClient::connect(collector.grpc_url()).await?;
    // The batch in flight at the kill, and the last acknowledged one, again.
    for i in [unacked, unacked - 1] {
        export_batch(&mut client, &resource, records(i), &batch_id(i)).await?;
    }
    let expected: u64 = (0..=unacked).map(|i| size(i) as u64).sum();
    let total = eventually(DEADLINE, || async {
        let n = counted(&collector).await?;
        Ok((n >= expected).then_some(n))
    })
    .await
    .with_context(|| format!("fewer than {expected} records counted"))?;
    ensure!(
        total == expected,
        "counted {total}, expected {expected} ({} batches acknowledged before the kill)",
        unacked
    );
    Ok(())
}
