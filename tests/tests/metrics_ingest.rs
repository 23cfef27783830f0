//! OTLP metrics into a real `bellwether serve`: a service that sends only request-duration
//! histograms (delta over gRPC for its baseline, cumulative OTLP/JSON over HTTP for the
//! new release) is counted exactly, measured by its metrics, and judged on them; other
//! metrics are accepted; a malformed metrics request is refused with 400; `bellwether
//! gate` fails the release with ten times the errors and passes one with the baseline's
//! rate. And through a
//! real `bellwether-agent`: an SDK's metrics exports to the agent's OTLP/gRPC and
//! OTLP/HTTP ports reach the collector tagged with the agent's release identity.

use anyhow::{ensure, Result};
use bellwether_e2e::detection::{record_deployment, start_collector_with_config};
use bellwether_e2e::{clean_command, http_post_json, run_cli, Collector};
use bellwether_proto::otlp::common::any_value::Value;
use bellwether_proto::otlp::common::{AnyValue, KeyValue};
use bellwether_proto::otlp::metrics::metric::Data;
use bellwether_proto::otlp::metrics::{
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use bellwether_proto::otlp::metrics_service::metrics_service_client::MetricsServiceClient;
use bellwether_proto::otlp::metrics_service::ExportMetricsServiceRequest;
use bellwether_proto::otlp::resource::Resource;
use bellwether_testkit::clock::bucket_aligned_now_ms;
use bellwether_testkit::eventually;
use bellwether_testkit::process::Supervised;
use std::time::Duration;

const CONFIG: &str = r#"
[detection]
evaluation_interval = "250ms"
min_duration = "2s"
baseline_window = "10m"
"#;
const SERVICE: &str = "inventory";
const ENV: &str = "prod";
const DELTA: i32 = 1;
const CUMULATIVE: i32 = 2;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn resource(version: &str, environment: &str) -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", Value::StringValue(SERVICE.into())),
            kv("service.version", Value::StringValue(version.into())),
            kv(
                "deployment.environment.name",
                Value::StringValue(environment.into()),
            ),
            kv(
                "service.instance.id",
                Value::StringValue(format!("{SERVICE}-{version}")),
            ),
        ],
        ..Default::default()
    }
}

/// `count` requests of `status` in one point of `http.server.request.duration` (bounds
/// 5 ms, 25 ms, 100 ms; everything in the second bucket).
fn point(status: i64, start_ms: i64, at_ms: i64, count: u64) -> HistogramDataPoint {
    let ns = |ms: i64| u64::try_from(ms).unwrap_or(0) * 1_000_000;
    HistogramDataPoint {
        attributes: vec![
            kv("http.request.method", Value::StringValue("GET".into())),
            kv("http.route", Value::StringValue("/items/{id}".into())),
            kv("http.response.status_code", Value::IntValue(status)),
        ],
        start_time_unix_nano: ns(start_ms),
        time_unix_nano: ns(at_ms),
        count,
        sum: Some(count as f64 * 0.012),
        bucket_counts: vec![0, count, 0, 0],
        explicit_bounds: vec![0.005, 0.025, 0.1],
        ..Default::default()
    }
}

fn request(
    version: &str,
    temporality: i32,
    points: Vec<HistogramDataPoint>,
) -> ExportMetricsServiceRequest {
    request_in(ENV, version, temporality, points)
}

fn request_in(
    environment: &str,
    version: &str,
    temporality: i32,
    points: Vec<HistogramDataPoint>,
) -> ExportMetricsServiceRequest {
    let duration = Metric {
        name: "http.server.request.duration".into(),
        unit: "s".into(),
        data: Some(Data::Histogram(Histogram {
            data_points: points,
            aggregation_temporality: temporality,
        })),
        ..Default::default()
    };
    let other = Metric {
        name: "process.runtime.memory".into(),
        unit: "By".into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint::default()],
        })),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource(version, environment)),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![duration, other],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// `bellwether gate` for release 2 in `environment`, at most a minute.
fn gate(collector: &Collector, environment: &str) -> Result<(i32, String, String)> {
    let url = collector.url();
    let (status, stdout, stderr) = run_cli(&[
        "gate",
        "--url",
        &url,
        "--service",
        SERVICE,
        "--version",
        "2",
        "--environment",
        environment,
        "--timeout",
        "60s",
    ])?;
    Ok((status.code().unwrap_or(-1), stdout, stderr))
}

#[tokio::test]
async fn a_good_metrics_only_release_passes_the_gate() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = start_collector_with_config(&dir.path().join("data"), CONFIG)?;
    // Deployed 15 minutes ago, so that its traffic so far is in the past.
    let deploy_ms = bucket_aligned_now_ms() - 15 * 60_000;
    let env = "staging";
    record_deployment(&collector, SERVICE, env, "1", deploy_ms - 30 * 60_000).await?;
    let mut grpc = MetricsServiceClient::connect(collector.grpc_url()).await?;
    // Both releases: 100 requests a second, one in a hundred failing; 20 minutes of
    // release 1 before the deploy, then 15 of release 2.
    let points = |version: &str, from_ms: i64, n: i64| {
        let points = (0..n)
            .flat_map(|i| {
                let at = from_ms + i * 10_000;
                [
                    point(200, at - 10_000, at, 990),
                    point(500, at - 10_000, at, 10),
                ]
            })
            .collect();
        request_in(env, version, DELTA, points)
    };
    grpc.export(points("1", deploy_ms - 20 * 60_000, 120))
        .await?;
    record_deployment(&collector, SERVICE, env, "2", deploy_ms).await?;
    grpc.export(points("2", deploy_ms + 10_000, 89)).await?;
    let (code, stdout, stderr) = gate(&collector, env)?;
    ensure!(code == 0, "gate exited {code}:\n{stdout}\n{stderr}");
    Ok(())
}

async fn totals(collector: &Collector, version: &str) -> Result<serde_json::Value> {
    let stats = collector
        .get(&format!(
            "/api/v1/releases/{SERVICE}/{version}/stats?environment={ENV}"
        ))
        .await?;
    Ok(stats["release"]["totals"].clone())
}

#[tokio::test]
async fn a_service_that_sends_only_metrics_is_counted_and_judged() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = start_collector_with_config(&dir.path().join("data"), CONFIG)?;
    let deploy_ms = bucket_aligned_now_ms();

    // Release 1: 20 minutes of delta points, one per 10 s: 99 good and 1 failed request.
    record_deployment(&collector, SERVICE, ENV, "1", deploy_ms - 30 * 60_000).await?;
    let mut grpc = MetricsServiceClient::connect(collector.grpc_url()).await?;
    for chunk in (0..120i64).collect::<Vec<_>>().chunks(30) {
        let points = chunk
            .iter()
            .flat_map(|i| {
                let at = deploy_ms - 20 * 60_000 + i * 10_000;
                [
                    point(200, at - 10_000, at, 99),
                    point(500, at - 10_000, at, 1),
                ]
            })
            .collect();
        grpc.export(request("1", DELTA, points)).await?;
    }
    record_deployment(&collector, SERVICE, ENV, "2", deploy_ms).await?;

    // Release 2, cumulative over OTLP/JSON: 12 points, each 180 more good and 20 more
    // failed requests (10 %, ten times the baseline's rate). Its series started 1 s
    // before the deploy, so its first point counts whole.
    let start = deploy_ms - 1_000;
    let url = format!("http://{}/v1/metrics", collector.otlp_http);
    for i in 1..=12i64 {
        let at = deploy_ms + i * 2_000;
        let body = serde_json::to_value(request(
            "2",
            CUMULATIVE,
            vec![
                point(200, start, at, 180 * i as u64),
                point(503, start, at, 20 * i as u64),
            ],
        ))?;
        let (status, answer) = http_post_json(&url, &body).await?;
        ensure!(
            status == 200,
            "POST /v1/metrics answered {status}: {answer}"
        );
        // The same point again (a retry) counts nothing more.
        if i == 6 {
            let (status, _) = http_post_json(&url, &body).await?;
            ensure!(status == 200);
        }
    }

    let one = totals(&collector, "1").await?;
    ensure!(
        one["metric_requests"] == 12_000 && one["metric_errors"] == 120,
        "release 1 totals: {one}"
    );
    let two = totals(&collector, "2").await?;
    ensure!(
        two["metric_requests"] == 2_400 && two["metric_errors"] == 240,
        "release 2 totals: {two}"
    );
    ensure!(two["log_records"] == 0 && two["spans"] == 0, "{two}");

    let health_path = format!("/api/v1/releases/{SERVICE}/2/health?environment={ENV}");
    let judged = eventually(Duration::from_secs(30), || async {
        let health = collector.get(&health_path).await?;
        Ok((health["verdict"] == "unhealthy").then_some(health))
    })
    .await;
    let health = match judged {
        Ok(health) => health,
        Err(e) => {
            let last = collector.get(&health_path).await?;
            return Err(e.context(format!(
                "a metrics-only release with 10x the errors never turned unhealthy: {last:#}"
            )));
        }
    };
    ensure!(
        health["analysis"]["exposure_kind"] == "metric_requests",
        "{}",
        health["analysis"]
    );
    let (code, stdout, stderr) = gate(&collector, ENV)?;
    ensure!(code == 1, "gate exited {code}:\n{stdout}\n{stderr}");

    // Not OTLP metrics at all: refused, and nothing counted.
    let (status, answer) =
        http_post_json(&url, &serde_json::json!({"resourceMetrics": "nope"})).await?;
    ensure!(
        status == 400,
        "a malformed request answered {status}: {answer}"
    );
    Ok(())
}

#[tokio::test]
async fn the_agent_forwards_metrics_tagged_with_its_release() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = Collector::start(&dir.path().join("collector"))?;
    let mut cmd = clean_command("bellwether-agent")?;
    cmd.args(["--service", SERVICE, "--version", "7", "--environment", ENV])
        .args(["--collector", &collector.grpc_url()])
        .arg("--data-dir")
        .arg(dir.path().join("agent"))
        .args([
            "--otlp-grpc-addr",
            "127.0.0.1:0",
            "--otlp-http-addr",
            "127.0.0.1:0",
        ])
        .args(["--admin-addr", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    let mut agent = Supervised::spawn(cmd)?;
    let found = agent.wait_for_listeners(&["otlp-grpc", "otlp-http"])?;
    let now = bucket_aligned_now_ms();
    // The SDK's resource names no release: the agent's identity does.
    let untagged = |mut request: ExportMetricsServiceRequest| {
        for r in &mut request.resource_metrics {
            r.resource = Some(Resource::default());
        }
        request
    };
    let mut grpc = MetricsServiceClient::connect(format!("http://{}", found["otlp-grpc"])).await?;
    grpc.export(untagged(request(
        "x",
        DELTA,
        vec![
            point(200, now - 10_000, now, 30),
            point(500, now - 10_000, now, 2),
        ],
    )))
    .await?;
    let body = serde_json::to_value(untagged(request(
        "x",
        DELTA,
        vec![point(200, now, now + 10_000, 8)],
    )))?;
    let (status, answer) =
        http_post_json(&format!("http://{}/v1/metrics", found["otlp-http"]), &body).await?;
    ensure!(
        status == 200,
        "the agent's /v1/metrics answered {status}: {answer}"
    );

    let counted = eventually(Duration::from_secs(20), || async {
        let totals = totals(&collector, "7").await.ok();
        Ok(totals.filter(|t| t["metric_requests"] == 40))
    })
    .await;
    ensure!(
        counted.is_ok(),
        "the collector did not count the agent's metrics: {:?}; agent log: {}",
        totals(&collector, "7").await.ok(),
        agent.stderr_text()
    );
    let totals = totals(&collector, "7").await?;
    ensure!(totals["metric_errors"] == 2, "{totals}");
    Ok(())
}
