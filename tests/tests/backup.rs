//! Disaster recovery end to end: a real `bellwether serve` judges a bad release (verdict
//! timeline, alerts, a silence) while a client streams batches with batch ids; `bellwether
//! backup` takes an archive under that ingest, ingest goes on, the collector is killed
//! with SIGKILL and its data directory deleted; `bellwether restore` rebuilds it and a new
//! collector starts on it.
//!
//! Checked: the restored counts are exactly the batches 0..k for one k no smaller than
//! the number acknowledged before the backup started (a point in time, nothing half
//! counted); re-sending batches 0..k counts nothing (their ids came along), sending the
//! rest counts each once; the timeline, alerts and silence are back. `restore` refuses a
//! non-empty directory without `--force` and a truncated archive, leaving both as they
//! were.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bellwether_e2e::detection::{
    baseline_then_deploy, release_traffic, start_collector_with_config,
};
use bellwether_e2e::security::export_batch;
use bellwether_e2e::{counted_log_records, http_post_json, run_cli, Collector, Identity};
use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_testkit::clock::{bucket_aligned_now_ms, now_ms};
use bellwether_testkit::eventually;
use bellwether_testkit::otlp::{log_record, release_resource, SEVERITY_INFO};
use bellwether_testkit::traffic::{declined, Mix};
use serde_json::{json, Value};

const CONFIG: &str = r#"
[detection]
evaluation_interval = "250ms"
min_duration = "2s"
baseline_window = "10m"
"#;
const STEADY: Identity = Identity {
    service: "steady-svc",
    version: "7.0.0",
    environment: "prod",
    commit: "c0ffee",
    deploy_id: "d-1",
};
const DEADLINE: Duration = Duration::from_secs(60);

/// Batch `i` holds `1 + i % 50` records.
fn size(i: u64) -> u64 {
    1 + i % 50
}

/// Records in batches `0..n`.
fn records_before(n: u64) -> u64 {
    (0..n).map(size).sum()
}

fn batch_id(i: u64) -> String {
    format!("backup-test:boot-1:{i}")
}

async fn send(client: &mut LogsServiceClient<tonic::transport::Channel>, i: u64) -> Result<()> {
    let resource = release_resource(STEADY.service, STEADY.version, STEADY.environment, "s-1");
    let at = now_ms();
    let records = (0..size(i))
        .map(|n| log_record(&format!("batch {i} record {n}"), SEVERITY_INFO, None, at))
        .collect();
    export_batch(client, &resource, records, &batch_id(i)).await
}

/// The bad release's state the restore must bring back: verdict timeline, alert ids,
/// silence ids.
async fn judged_state(collector: &Collector) -> Result<(Vec<Value>, Vec<String>, Vec<String>)> {
    let timeline = collector
        .get("/api/v1/releases/checkout/2/verdicts?environment=prod")
        .await?["timeline"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ids = |body: &Value, list: &str| -> Vec<String> {
        let mut ids: Vec<String> = body[list]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    };
    let alerts = ids(&collector.get("/api/v1/alerts").await?, "alerts");
    let silences = ids(&collector.get("/api/v1/silences").await?, "silences");
    Ok((timeline, alerts, silences))
}

async fn cli(args: Vec<String>) -> Result<(i32, String, String)> {
    let (status, out, err) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&args)
    })
    .await??;
    Ok((status.code().unwrap_or(-1), out, err))
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test]
async fn a_restored_backup_counts_every_acknowledged_batch_once_and_keeps_the_verdicts(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    let archive = dir.path().join("collector.backup");
    let collector = start_collector_with_config(&data_dir, CONFIG)?;

    // A bad release: a verdict timeline and alerts; and a silence.
    baseline_then_deploy(&collector, "checkout", "prod", "2", bucket_aligned_now_ms()).await?;
    let mix = Mix {
        total: 2_000,
        timeouts: 20,
        new_errors: 10,
        new_error: &declined,
    };
    release_traffic(&collector, "checkout", "prod", "2", &mix).await?;
    let silence = json!({"matchers": {"service": "checkout"}, "duration": "2h",
                         "comment": "restore drill"});
    let (status, body) =
        http_post_json(&format!("{}/api/v1/silences", collector.url()), &silence).await?;
    ensure!(status == 201, "silence answered {status}: {body}");
    let judged = eventually(DEADLINE, || async {
        let state = judged_state(&collector).await?;
        Ok((!state.0.is_empty() && !state.1.is_empty()).then_some(state))
    })
    .await
    .context("the bad release got no verdict timeline and alerts")?;

    // Steady ingest, one batch after the other, until the collector is gone.
    let acked = Arc::new(AtomicU64::new(0));
    let sender = {
        let (url, acked) = (collector.grpc_url(), acked.clone());
        tokio::spawn(async move {
            let mut client = LogsServiceClient::connect(url).await?;
            let mut i = 0u64;
            while send(&mut client, i).await.is_ok() {
                i += 1;
                acked.store(i, Ordering::SeqCst);
            }
            anyhow::Ok(i)
        })
    };
    eventually(DEADLINE, || async {
        Ok((acked.load(Ordering::SeqCst) >= 40).then_some(()))
    })
    .await?;

    let before_backup = acked.load(Ordering::SeqCst);
    let (code, out, err) = cli(vec![
        "backup".into(),
        "--url".into(),
        collector.url(),
        "--out".into(),
        text(&archive),
    ])
    .await?;
    let after_backup = acked.load(Ordering::SeqCst);
    ensure!(code == 0, "backup exited {code}: {out}{err}");
    ensure!(out.contains("data/batches"), "{out}");

    // Ingest goes on past the backup, then the collector dies and its disk with it.
    eventually(DEADLINE, || async {
        Ok((acked.load(Ordering::SeqCst) >= after_backup + 20).then_some(()))
    })
    .await?;
    drop(collector); // SIGKILL
    let sent = tokio::time::timeout(DEADLINE, sender).await???;
    std::fs::remove_dir_all(&data_dir)?;

    // Restore refuses a truncated archive and leaves nothing behind.
    let bytes = std::fs::read(&archive)?;
    let truncated = dir.path().join("truncated.backup");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100])?;
    let restore = |file: &Path, force: bool| {
        let mut args = vec!["restore".into(), "--data-dir".into(), text(&data_dir)];
        if force {
            args.push("--force".into());
        }
        args.push(text(file));
        cli(args)
    };
    let (code, _, err) = restore(&truncated, false).await?;
    ensure!(
        code == 1 && err.contains("truncated archive"),
        "{code}: {err}"
    );
    ensure!(
        !data_dir.exists(),
        "a refused restore left {}",
        text(&data_dir)
    );

    let (code, out, err) = restore(&archive, false).await?;
    ensure!(code == 0, "restore exited {code}: {out}{err}");
    let (code, _, err) = restore(&archive, false).await?;
    ensure!(code == 2 && err.contains("--force"), "{code}: {err}");

    let collector = start_collector_with_config(&data_dir, CONFIG)?;
    let restored = counted_log_records(&collector.url(), &STEADY).await?;
    // One point in time: the batches 0..k, k at least all acknowledged before the backup.
    let k = (before_backup..=after_backup + 1)
        .find(|&k| records_before(k) == restored)
        .with_context(|| {
            format!(
                "{restored} records restored is no prefix of batches: {before_backup} were \
                 acknowledged before the backup, {after_backup} after it"
            )
        })?;

    // An agent re-sends what it is unsure of: batches the archive holds count nothing,
    // the ones lost since the backup count once.
    let mut client = LogsServiceClient::connect(collector.grpc_url()).await?;
    for i in 0..k {
        send(&mut client, i).await?;
    }
    let again = counted_log_records(&collector.url(), &STEADY).await?;
    ensure!(
        again == restored,
        "re-sent batches from before the backup counted again: {again} != {restored}"
    );
    for i in k..sent {
        send(&mut client, i).await?;
    }
    let total = counted_log_records(&collector.url(), &STEADY).await?;
    ensure!(
        total == records_before(sent),
        "counted {total}, expected {} for {sent} batches",
        records_before(sent)
    );

    let (timeline, alerts, silences) = judged_state(&collector).await?;
    let (judged_timeline, judged_alerts, judged_silences) = judged;
    ensure!(
        timeline.get(..judged_timeline.len()) == Some(&judged_timeline[..]),
        "timeline before: {judged_timeline:?}\nafter restore: {timeline:?}"
    );
    ensure!(
        judged_alerts.iter().all(|id| alerts.contains(id)),
        "alerts before: {judged_alerts:?}, after restore: {alerts:?}"
    );
    ensure!(
        silences == judged_silences,
        "{silences:?} != {judged_silences:?}"
    );
    eprintln!(
        "backup between batches {before_backup} and {after_backup}, archive holds {k}, \
         {sent} sent in all, {} archive bytes",
        bytes.len()
    );
    Ok(())
}
