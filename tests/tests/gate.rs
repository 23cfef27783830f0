//! Verdicts end to end: raw OTLP traffic into a real `bellwether serve` (small detection
//! durations from a config file), then `bellwether gate` against it.

use std::time::Duration;

use anyhow::Result;
use bellwether_e2e::detection::{self, release_traffic, start_collector_with_config};
use bellwether_e2e::{run_cli, Collector};
use bellwether_testkit::clock::bucket_aligned_now_ms;
use bellwether_testkit::eventually;
use bellwether_testkit::traffic::{self, Mix};

const CONFIG: &str = r#"
[detection]
evaluation_interval = "250ms"
min_duration = "2s"
baseline_window = "10m"
"#;

const SERVICE: &str = "checkout";
const ENV: &str = "prod";

/// v1 deployed 30 min ago with its baseline (20 000 log records over the 5 minutes before
/// `deploy_ms`, 0.1 % of them `TimeoutError`s); v2 recorded as deployed at `deploy_ms`.
async fn baseline_then_deploy(collector: &Collector, deploy_ms: i64) -> Result<()> {
    detection::baseline_then_deploy(collector, SERVICE, ENV, "2", deploy_ms).await
}

/// v2 traffic from two instances, timestamped now: `total` records per instance, the
/// first `timeouts` of them baseline-like errors and the next `declined` a new exception.
async fn new_release_traffic(
    collector: &Collector,
    total: usize,
    timeouts: usize,
    declined: usize,
) -> Result<()> {
    let mix = Mix {
        total,
        timeouts,
        new_errors: declined,
        new_error: &traffic::declined,
    };
    release_traffic(collector, SERVICE, ENV, "2", &mix).await
}

fn gate(collector: &Collector, extra: &[&str]) -> Result<(i32, String, String)> {
    let url = collector.url();
    let mut args = vec![
        "gate",
        "--service",
        SERVICE,
        "--version",
        "2",
        "--environment",
        ENV,
        "--url",
        &url,
    ];
    args.extend_from_slice(extra);
    let (status, stdout, stderr) = run_cli(&args)?;
    Ok((status.code().unwrap_or(-1), stdout, stderr))
}

async fn verdict(collector: &Collector) -> Result<serde_json::Value> {
    collector
        .get(&format!(
            "/api/v1/releases/{SERVICE}/2/health?environment={ENV}"
        ))
        .await
}

#[tokio::test]
async fn a_good_release_becomes_healthy_and_passes_the_gate() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = start_collector_with_config(&dir.path().join("data"), CONFIG)?;
    baseline_then_deploy(&collector, bucket_aligned_now_ms()).await?;
    new_release_traffic(&collector, 10_000, 2, 0).await?;

    let (code, stdout, stderr) = gate(&collector, &["--min-duration", "1s", "--timeout", "15s"])?;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("PASS: checkout 2 in prod is healthy"),
        "{stdout}"
    );

    let health = verdict(&collector).await?;
    assert_eq!(health["verdict"], "healthy", "{health:#}");
    assert_eq!(health["analysis"]["method"], "cutover");
    assert_eq!(health["analysis"]["baseline_version"], "1");
    assert_eq!(health["analysis"]["baseline"]["exposure"], 20_000);
    let timeline = collector
        .get(&format!(
            "/api/v1/releases/{SERVICE}/2/verdicts?environment={ENV}"
        ))
        .await?;
    let verdicts: Vec<&str> = timeline["timeline"]
        .as_array()
        .map(|t| t.iter().filter_map(|e| e["verdict"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(verdicts.last(), Some(&"healthy"), "{timeline:#}");
    Ok(())
}

#[tokio::test]
async fn an_error_spike_with_a_new_exception_fails_the_gate() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = start_collector_with_config(&dir.path().join("data"), CONFIG)?;
    baseline_then_deploy(&collector, bucket_aligned_now_ms()).await?;
    // 1 % TimeoutError (10× the baseline) and 0.5 % of a never-seen exception.
    new_release_traffic(&collector, 2_000, 20, 10).await?;

    let (code, stdout, stderr) = gate(&collector, &["--timeout", "15s"])?;
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("FAIL: checkout 2 in prod is unhealthy"),
        "{stdout}"
    );
    assert!(stdout.contains("PaymentDeclinedError"), "{stdout}");
    assert!(stdout.contains("regression"), "{stdout}");

    let health = eventually(Duration::from_secs(10), || async {
        let health = verdict(&collector).await?;
        let flagged = health["analysis"]["flagged_issues"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        Ok(flagged.then_some(health))
    })
    .await?;
    assert_eq!(health["verdict"], "unhealthy");
    let issue = health["evidence"]
        .as_array()
        .and_then(|e| e.iter().find(|i| i["kind"] == "new_issue"))
        .cloned()
        .unwrap_or_default();
    assert!(
        issue["title"]
            .as_str()
            .is_some_and(|t| t.contains("PaymentDeclinedError")),
        "{health:#}"
    );
    assert_eq!(issue["count"], 20);
    assert_eq!(issue["instances"], 2);
    Ok(())
}

#[tokio::test]
async fn too_little_traffic_is_still_pending_at_the_timeout() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = start_collector_with_config(&dir.path().join("data"), CONFIG)?;
    baseline_then_deploy(&collector, bucket_aligned_now_ms()).await?;
    new_release_traffic(&collector, 10, 0, 0).await?;

    let started = std::time::Instant::now();
    let (code, stdout, stderr) = gate(&collector, &["--timeout", "3s"])?;
    assert_eq!(code, 3, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("TIMEOUT: checkout 2 in prod still pending"),
        "{stdout}"
    );
    assert!(stdout.contains("more exposure needed"), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // A gate on a collector that is not there is a connection error.
    let (code, _, stderr) = run_cli(&[
        "gate",
        "--service",
        SERVICE,
        "--version",
        "2",
        "--environment",
        ENV,
        "--url",
        "http://127.0.0.1:9",
        "--timeout",
        "2s",
    ])
    .map(|(s, o, e)| (s.code().unwrap_or(-1), o, e))?;
    assert_eq!(code, 2, "{stderr}");
    Ok(())
}
