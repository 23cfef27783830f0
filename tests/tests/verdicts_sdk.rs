//! Verdicts on traffic as an OpenTelemetry SDK sends it: every request a SERVER span and
//! a log record in one trace, a failing one an error span with an `exception` event and
//! an exception log record ([`bellwether_e2e::sdk_traffic`]).
//!
//! A full cut-over, laid down in seconds: v1 serves the 5 minutes before `deploy` at
//! 100 requests/s, v2 is recorded as deployed at `deploy` (a bucket-aligned "now" minus
//! 5 minutes) and serves from then until now. Then `bellwether gate` decides, or the
//! health API is read.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bellwether_e2e::detection::{record_deployment, start_collector_with_config};
use bellwether_e2e::sdk_traffic::{send, Latency, Release, Sent, Traffic, PAYMENT_DECLINED};
use bellwether_e2e::{run_cli, Collector};
use bellwether_testkit::clock::bucket_aligned_now_ms;
use bellwether_testkit::eventually;

const CONFIG: &str = r#"
[detection]
evaluation_interval = "250ms"
min_duration = "20s"
baseline_window = "10m"
"#;

const SERVICE: &str = "checkout";
const ENV: &str = "prod";
const MINUTE_MS: i64 = 60_000;
const PER_SECOND: u64 = 100;
/// 1 % of requests fail.
const ONE_PERCENT: Option<u64> = Some(100);
/// 2 % of requests fail.
const TWO_PERCENT: Option<u64> = Some(50);
/// Median 20 ms, p95 45 ms.
const LATENCY: Latency = Latency {
    median_ms: 20.0,
    p95_ms: 45.0,
    seed: 1,
};
/// How long a gate may wait for a verdict.
const GATE_TIMEOUT: &str = "60s";

fn release(version: &'static str) -> Release<'static> {
    Release {
        service: SERVICE,
        version,
        environment: ENV,
        instance: if version == "1" {
            "checkout-1-a"
        } else {
            "checkout-2-a"
        },
    }
}

fn traffic(from_unix_ms: i64, fail_every: Option<u64>, latency: Latency) -> Traffic {
    Traffic {
        from_unix_ms,
        to_unix_ms: from_unix_ms + 5 * MINUTE_MS,
        per_second: PER_SECOND,
        fail_every,
        failure: PAYMENT_DECLINED,
        latency,
    }
}

/// One release's shape: its failing share and its durations.
#[derive(Clone, Copy, Debug)]
struct Shape {
    fail_every: Option<u64>,
    latency: Latency,
}

/// A collector that saw v1 for the 5 minutes before the deploy and v2 for the 5 minutes
/// since, and what v2 sent.
struct CutOver {
    collector: Collector,
    _dir: tempfile::TempDir,
    new: Sent,
}

async fn cut_over(baseline: Shape, new: Shape) -> Result<CutOver> {
    let dir = tempfile::tempdir()?;
    let collector = start_collector_with_config(&dir.path().join("data"), CONFIG)?;
    let deploy = bucket_aligned_now_ms() - 5 * MINUTE_MS;
    let endpoint = collector.grpc_url();
    record_deployment(&collector, SERVICE, ENV, "1", deploy - 30 * MINUTE_MS).await?;
    let v1 = traffic(
        deploy - 5 * MINUTE_MS,
        baseline.fail_every,
        baseline.latency,
    );
    send(&endpoint, &release("1"), &v1).await?;
    record_deployment(&collector, SERVICE, ENV, "2", deploy).await?;
    let v2 = traffic(deploy, new.fail_every, new.latency);
    let new = send(&endpoint, &release("2"), &v2).await?;
    Ok(CutOver {
        collector,
        _dir: dir,
        new,
    })
}

/// `bellwether gate` for v2 once the evaluator has judged all of `sent`: (exit code,
/// stdout, stderr).
async fn gate(collector: &Collector, sent: &Sent) -> Result<(i32, String, String)> {
    // While spans and logs still arrive the newest buckets are half counted, and a
    // verdict on them can be anything: let the gate see a judgement of the whole traffic.
    evaluated(collector, sent).await?;
    let url = collector.url();
    let (status, stdout, stderr) = tokio::task::spawn_blocking(move || {
        run_cli(&[
            "gate",
            "--service",
            SERVICE,
            "--version",
            "2",
            "--environment",
            ENV,
            "--url",
            &url,
            "--timeout",
            GATE_TIMEOUT,
        ])
    })
    .await??;
    Ok((status.code().unwrap_or(-1), stdout, stderr))
}

/// Waits until v2's verdict was reached on all of `sent`: its exposure, and one error
/// per failing request.
async fn evaluated(collector: &Collector, sent: &Sent) -> Result<serde_json::Value> {
    let last = std::sync::Mutex::new(serde_json::Value::Null);
    let judged = eventually(Duration::from_secs(20), || {
        let last = &last;
        async move {
            let health = health(collector).await?;
            let new = &health["analysis"]["new"];
            let whole = new["exposure"] == sent.requests && new["errors"] == sent.failures;
            let judged = whole.then(|| health.clone());
            *last.lock().unwrap_or_else(|e| e.into_inner()) = health;
            Ok(judged)
        }
    })
    .await;
    judged.with_context(|| {
        let last = last.lock().unwrap_or_else(|e| e.into_inner());
        format!("never judged on all of {sent:?}; last: {last:#}")
    })
}

async fn health(collector: &Collector) -> Result<serde_json::Value> {
    collector
        .get(&format!(
            "/api/v1/releases/{SERVICE}/2/health?environment={ENV}"
        ))
        .await
}

/// The verdicts v2 has had, oldest first, each with its summary.
async fn timeline(collector: &Collector) -> Result<Vec<(String, String)>> {
    let timeline = collector
        .get(&format!(
            "/api/v1/releases/{SERVICE}/2/verdicts?environment={ENV}"
        ))
        .await?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    Ok(timeline["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|e| (text(&e["verdict"]), text(&e["summary"])))
                .collect()
        })
        .unwrap_or_default())
}

fn evidence_kinds(health: &serde_json::Value) -> Vec<String> {
    health["evidence"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|i| i["kind"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_request_counts_once_in_the_error_rate() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = start_collector_with_config(&dir.path().join("data"), CONFIG)?;
    let deploy = bucket_aligned_now_ms() - 5 * MINUTE_MS;
    record_deployment(&collector, SERVICE, ENV, "2", deploy).await?;
    let sent = send(
        &collector.grpc_url(),
        &release("2"),
        &traffic(deploy, ONE_PERCENT, LATENCY),
    )
    .await?;
    ensure!(sent.failures == 300, "{sent:?}");

    // Every span and record was delivered, and so stored: the totals are final once the
    // exposure is all there.
    let totals = eventually(Duration::from_secs(10), || async {
        let stats = collector
            .get(&format!(
                "/api/v1/releases/{SERVICE}/2/stats?environment={ENV}"
            ))
            .await?;
        let totals = stats["release"]["totals"].clone();
        Ok(
            (totals["server_spans"] == sent.requests && totals["log_records"] == sent.requests)
                .then_some(totals),
        )
    })
    .await
    .context("the release's totals never reached what was sent")?;
    // The raw counts see every record: one error span and one error log per failure.
    assert_eq!(totals["error_spans"], sent.failures, "{totals:#}");
    assert_eq!(totals["error_logs"], sent.failures, "{totals:#}");
    let errors = totals["errors"].as_u64().context("totals.errors")?;
    let exposure = totals["server_spans"].as_u64().context("server_spans")?;
    assert_eq!(
        errors,
        sent.failures,
        "{} failing requests of {} counted as {errors} errors ({:.2} % instead of {:.2} %)",
        sent.failures,
        sent.requests,
        errors as f64 * 100.0 / exposure as f64,
        sent.failures as f64 * 100.0 / sent.requests as f64,
    );
    assert!(
        errors <= exposure,
        "{errors} errors over {exposure} requests"
    );

    // The evaluator counts the same errors over the same exposure.
    evaluated(&collector, &sent).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doubled_error_rate_after_a_full_cut_over_fails_the_gate() -> Result<()> {
    let baseline = Shape {
        fail_every: ONE_PERCENT,
        latency: LATENCY,
    };
    let new = Shape {
        fail_every: TWO_PERCENT,
        latency: LATENCY.reseeded(2),
    };
    let run = cut_over(baseline, new).await?;
    ensure!(run.new.failures == 600, "{:?}", run.new);

    let (code, stdout, stderr) = gate(&run.collector, &run.new).await?;
    let verdicts = timeline(&run.collector).await?;
    let health = health(&run.collector).await?;
    assert_eq!(
        code, 1,
        "a doubled error rate (1 % → 2 %) passed the gate\nstdout:\n{stdout}\nstderr:\n\
         {stderr}\nverdicts: {verdicts:#?}\nhealth: {health:#}"
    );
    assert!(
        !verdicts.iter().any(|(v, _)| v == "healthy"),
        "called healthy on the way: {verdicts:?}\n{health:#}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_release_passes_the_gate() -> Result<()> {
    let shape = Shape {
        fail_every: ONE_PERCENT,
        latency: LATENCY,
    };
    let new = Shape {
        latency: LATENCY.reseeded(2),
        ..shape
    };
    let run = cut_over(shape, new).await?;

    let (code, stdout, stderr) = gate(&run.collector, &run.new).await?;
    let health = health(&run.collector).await?;
    assert_eq!(
        code, 0,
        "stdout:\n{stdout}\nstderr:\n{stderr}\nhealth: {health:#}"
    );
    assert!(
        stdout.contains("PASS: checkout 2 in prod is healthy"),
        "{stdout}"
    );
    assert_eq!(health["verdict"], "healthy", "{health:#}");
    assert_eq!(health["analysis"]["method"], "cutover", "{health:#}");
    assert_eq!(health["analysis"]["new"]["errors"], 300, "{health:#}");
    assert_eq!(health["analysis"]["baseline"]["errors"], 300, "{health:#}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_latency_distributions_give_no_latency_verdict() -> Result<()> {
    // The same 1 % failing in both: only latency could tell them apart, and it must not.
    let baseline = Shape {
        fail_every: ONE_PERCENT,
        latency: LATENCY,
    };
    let new = Shape {
        latency: LATENCY.reseeded(2),
        ..baseline
    };
    let run = cut_over(baseline, new).await?;

    let (code, stdout, stderr) = gate(&run.collector, &run.new).await?;
    let health = health(&run.collector).await?;
    let kinds = evidence_kinds(&health);
    assert!(
        !kinds.iter().any(|k| k == "latency_regression"),
        "one distribution, yet a latency regression: {health:#}"
    );
    assert_eq!(
        code, 0,
        "stdout:\n{stdout}\nstderr:\n{stderr}\nhealth: {health:#}"
    );
    assert_eq!(health["verdict"], "healthy", "{health:#}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doubled_p95_latency_is_a_latency_regression() -> Result<()> {
    let baseline = Shape {
        fail_every: ONE_PERCENT,
        latency: LATENCY,
    };
    // Every duration twice as long (p95 45 ms → 90 ms), the same 1 % failing.
    let new = Shape {
        latency: LATENCY.reseeded(2).scaled(2.0),
        ..baseline
    };
    let run = cut_over(baseline, new).await?;

    let (code, stdout, stderr) = gate(&run.collector, &run.new).await?;
    let health = health(&run.collector).await?;
    let kinds = evidence_kinds(&health);
    assert!(
        kinds.iter().any(|k| k == "latency_regression"),
        "p95 doubled, no latency regression (gate exit {code})\nstdout:\n{stdout}\n\
         stderr:\n{stderr}\nhealth: {health:#}"
    );
    assert!(
        health["verdict"] == "degraded" || health["verdict"] == "unhealthy",
        "{health:#}"
    );
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    Ok(())
}
