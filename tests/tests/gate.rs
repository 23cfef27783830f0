//! Verdicts end to end: raw OTLP traffic into a real `bellwether serve` (small detection
//! durations from a config file), then `bellwether gate` against it.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bellwether_e2e::detection::{self, release_traffic, start_collector_with_config};
use bellwether_e2e::{clean_command, run_cli, Collector};
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

/// `bellwether gate` for v2 with these arguments after the release's.
fn gate_with(args: &[&str]) -> Result<(i32, String, String)> {
    let mut all = vec![
        "gate",
        "--service",
        SERVICE,
        "--version",
        "2",
        "--environment",
        ENV,
    ];
    all.extend_from_slice(args);
    let (status, stdout, stderr) = run_cli(&all)?;
    Ok((status.code().unwrap_or(-1), stdout, stderr))
}

fn gate(collector: &Collector, extra: &[&str]) -> Result<(i32, String, String)> {
    let url = collector.url();
    let mut args = vec!["--url", &url];
    args.extend_from_slice(extra);
    gate_with(&args)
}

/// A loopback URL that nothing listens on (its port bound, then released).
fn dead_url() -> Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    drop(listener);
    Ok(format!("http://127.0.0.1:{port}"))
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

    // In a GitHub Actions step the gate also appends a Markdown summary.
    let summary = dir.path().join("step-summary.md");
    std::fs::write(&summary, "earlier step\n")?;
    let url = collector.url();
    let output = clean_command("bellwether")?
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args([
            "gate",
            "--service",
            SERVICE,
            "--version",
            "2",
            "--environment",
            ENV,
        ])
        .args(["--timeout", "15s", "--url", &url])
        .output()?;
    assert_eq!(output.status.code(), Some(1));
    let markdown = std::fs::read_to_string(&summary)?;
    assert!(
        markdown.starts_with(
            "earlier step\n### Bellwether gate: FAIL: checkout 2 in prod is unhealthy"
        ),
        "{markdown}"
    );
    assert!(markdown.contains("| new_issue |"), "{markdown}");
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

#[tokio::test]
async fn a_dead_url_before_the_live_one_gives_the_same_exit_code() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = start_collector_with_config(&dir.path().join("data"), CONFIG)?;
    baseline_then_deploy(&collector, bucket_aligned_now_ms()).await?;
    new_release_traffic(&collector, 2_000, 20, 10).await?;
    let (live, dead) = (collector.url(), dead_url()?);

    let (alone, stdout, stderr) = gate(&collector, &["--timeout", "15s"])?;
    assert_eq!(alone, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");

    let listed = format!("{dead},{live}");
    for args in [
        vec!["--url", &dead, "--url", &live, "--timeout", "15s"],
        vec!["--url", &listed, "--timeout", "15s"],
    ] {
        let (code, stdout, stderr) = gate_with(&args)?;
        assert_eq!(
            code, alone,
            "{args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert!(
            stdout.contains("FAIL: checkout 2 in prod is unhealthy"),
            "{stdout}"
        );
    }
    // The same list from the environment.
    let output = clean_command("bellwether")?
        .args(["gate", "--service", SERVICE, "--version", "2"])
        .args(["--environment", ENV, "--timeout", "15s"])
        .env("BELLWETHER_URL", &listed)
        .stdin(Stdio::null())
        .output()?;
    assert_eq!(
        output.status.code(),
        Some(alone),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Only dead URLs: a connection error that names each.
    let other = dead_url()?;
    let (code, _, stderr) = gate_with(&["--url", &dead, "--url", &other, "--timeout", "2s"])?;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("{dead}: ")) && stderr.contains(&format!("{other}: ")),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn the_gate_moves_on_when_the_node_it_long_polls_dies() -> Result<()> {
    // Two collectors stand for two nodes: the first still judges v2 pending (too little
    // traffic), the second has seen enough to call it healthy.
    let dir = tempfile::tempdir()?;
    let first = start_collector_with_config(&dir.path().join("first"), CONFIG)?;
    let second = start_collector_with_config(&dir.path().join("second"), CONFIG)?;
    let deploy_ms = bucket_aligned_now_ms();
    baseline_then_deploy(&first, deploy_ms).await?;
    new_release_traffic(&first, 10, 0, 0).await?;
    baseline_then_deploy(&second, deploy_ms).await?;
    new_release_traffic(&second, 10_000, 2, 0).await?;

    let mut child = clean_command("bellwether")?
        .args(["gate", "--service", SERVICE, "--version", "2"])
        .args([
            "--environment",
            ENV,
            "--timeout",
            "30s",
            "--min-duration",
            "1s",
        ])
        .args(["--url", &first.url(), "--url", &second.url()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = BufReader::new(child.stdout.take().context("gate stdout")?);
    // The first node's answer is shown; the gate then long-polls it for a change.
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line)? == 0 {
            let _ = child.wait();
            bail!("the gate ended before showing the first node's verdict:\n{seen}");
        }
        seen.push_str(&line);
        if line.starts_with("pending: ") {
            break;
        }
    }
    drop(first); // kill -9 under the long poll

    stdout.read_to_string(&mut seen)?;
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr)?;
    }
    let status = child.wait()?;
    assert_eq!(status.code(), Some(0), "stdout:\n{seen}\nstderr:\n{stderr}");
    assert!(
        seen.contains("PASS: checkout 2 in prod is healthy"),
        "{seen}"
    );
    assert!(!seen.contains("unreachable"), "{seen}");
    Ok(())
}
