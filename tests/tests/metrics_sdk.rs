//! The real OpenTelemetry SDK exporting request metrics through a real agent: its meter
//! provider (periodic reader, OTLP/gRPC exporter) records `http.server.request.duration`
//! for successful and failed requests, with cumulative and with delta temporality; the
//! instance is restarted midway (a new meter provider: the cumulative series start
//! again from zero). The collector counts exactly the requests and failures recorded,
//! the restart neither lost nor doubled.

use anyhow::{ensure, Context, Result};
use bellwether_e2e::{clean_command, Collector};
use bellwether_testkit::eventually;
use bellwether_testkit::process::Supervised;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::Resource;
use std::time::Duration;

const SERVICE: &str = "inventory";
const ENV: &str = "prod";

/// One run of the instance: a meter provider exporting to `endpoint`, which records
/// `rounds` of (successful, failed) requests, exporting after each round, then shuts
/// down.
async fn instance(endpoint: &str, temporality: Temporality, rounds: &[(u64, u64)]) -> Result<()> {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_temporality(temporality)
        .build()
        .context("building the metric exporter")?;
    // Exports only when flushed: the test decides when.
    let reader = PeriodicReader::builder(exporter)
        .with_interval(Duration::from_secs(3_600))
        .build();
    let resource = Resource::builder()
        .with_service_name(SERVICE)
        .with_attributes([KeyValue::new("service.instance.id", "inventory-a")])
        .build();
    let provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader)
        .build();
    let duration = provider
        .meter("inventory")
        .f64_histogram("http.server.request.duration")
        .with_unit("s")
        .build();
    for &(ok, failed) in rounds {
        for (status, n) in [(200i64, ok), (500, failed)] {
            let attributes = [
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/stock/{sku}"),
                KeyValue::new("http.response.status_code", status),
            ];
            for i in 0..n {
                duration.record(0.010 + (i % 7) as f64 * 0.003, &attributes);
            }
        }
        let flusher = provider.clone();
        tokio::task::spawn_blocking(move || flusher.force_flush())
            .await?
            .context("exporting")?;
    }
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await?
        .context("shutting the meter provider down")?;
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

/// Through an agent of release `version`: two rounds, a restart, one more round.
async fn counts_exactly(temporality: Temporality, version: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = Collector::start(&dir.path().join("collector"))?;
    let mut cmd = clean_command("bellwether-agent")?;
    cmd.args([
        "--service",
        SERVICE,
        "--version",
        version,
        "--environment",
        ENV,
    ])
    .args(["--collector", &collector.grpc_url()])
    .arg("--data-dir")
    .arg(dir.path().join("agent"))
    .args(["--otlp-grpc-addr", "127.0.0.1:0", "--otlp-http-addr", "off"])
    .args(["--admin-addr", "off"])
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null());
    let mut agent = Supervised::spawn(cmd)?;
    let found = agent.wait_for_listeners(&["otlp-grpc"])?;
    let endpoint = format!("http://{}", found["otlp-grpc"]);

    instance(&endpoint, temporality, &[(300, 20), (100, 5)]).await?;
    // The restarted instance: a new provider, its series start over.
    instance(&endpoint, temporality, &[(50, 3)]).await?;
    let (requests, errors) = (300 + 20 + 100 + 5 + 50 + 3, 20 + 5 + 3);

    let counted = eventually(Duration::from_secs(20), || async {
        let totals = totals(&collector, version).await.ok();
        Ok(totals.filter(|t| t["metric_requests"] == requests))
    })
    .await;
    let seen = totals(&collector, version).await?;
    ensure!(
        counted.is_ok(),
        "{temporality:?}: expected {requests} requests, the collector has {seen}; agent log: {}",
        agent.stderr_text()
    );
    ensure!(seen["metric_errors"] == errors, "{temporality:?}: {seen}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cumulative_request_metrics_count_exactly_across_a_restart() -> Result<()> {
    counts_exactly(Temporality::Cumulative, "5.0").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_request_metrics_count_exactly_across_a_restart() -> Result<()> {
    counts_exactly(Temporality::Delta, "5.1").await
}
