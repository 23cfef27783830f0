//! Hostile and buggy input against the real server: an oversize request, too many
//! records, too many attributes, a flood of services and of fingerprints. Each is refused
//! or capped, its counter on `/metrics` moves, and the collector keeps serving.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use bellwether_collector::config::Settings;
use bellwether_collector::limits::Limits;
use bellwether_collector::server::{self, Listeners, ServerError};
use bellwether_proto::otlp::common::{any_value, AnyValue};
use bellwether_proto::otlp::logs::LogRecord;
use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use common::*;
use prost::Message;
use tokio::sync::oneshot;

struct Limited {
    grpc: SocketAddr,
    otlp_http: SocketAddr,
    http: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl Limited {
    async fn start(
        dir: &Path,
        limits: Limits,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let mut settings = Settings::ephemeral(dir);
        settings.limits = limits;
        let listeners = Listeners::bind(&settings).await?;
        let (grpc, otlp_http, http) = (
            listeners.otlp_grpc.local_addr()?,
            listeners.otlp_http.local_addr()?,
            listeners.http.local_addr()?,
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(settings, listeners, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            grpc,
            otlp_http,
            http,
            stop,
            task,
        })
    }

    async fn post_logs(
        &self,
        body: Vec<u8>,
        gzip: bool,
    ) -> Result<HttpResponse, Box<dyn std::error::Error + Send + Sync>> {
        let mut headers = vec![("content-type", "application/x-protobuf")];
        if gzip {
            headers.push(("content-encoding", "gzip"));
        }
        request("POST", self.otlp_http, "/v1/logs", &headers, body).await
    }

    /// `bellwether_limit_exceeded_total{limit="<limit>"}`.
    async fn counter(&self, limit: &str) -> Result<f64, Box<dyn std::error::Error + Send + Sync>> {
        let text = get(self.http, "/metrics").await?.text();
        let prefix = format!("bellwether_limit_exceeded_total{{limit=\"{limit}\"}} ");
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .ok_or_else(|| format!("no {prefix} in /metrics"))?;
        Ok(value.trim().parse()?)
    }

    /// Healthy and still ingesting.
    async fn assert_healthy(&self) -> TestResult {
        assert_eq!(get(self.http, "/healthz").await?.status, 200);
        let ok = logs(resource("steady", "v1", "prod", &[]), 3, 0, now_ns());
        let r = self.post_logs(ok.encode_to_vec(), false).await?;
        assert_eq!(r.status, 200, "{}", r.text());
        Ok(())
    }

    async fn stop(self) -> TestResult {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

fn text_value(text: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(text.into())),
    })
}

#[tokio::test]
async fn oversize_and_overfull_requests_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let limits = Limits {
        max_request_bytes: 64 * 1024,
        max_records_per_request: 100,
        ..Limits::default()
    };
    let s = Limited::start(dir.path(), limits).await?;
    let before = s.counter("request_bytes").await?;

    // 80 records with 1 KiB bodies: over 64 KiB, under the record limit.
    let mut big = logs(resource("pay", "v1", "prod", &[]), 80, 0, now_ns());
    for record in &mut big.resource_logs[0].scope_logs[0].log_records {
        record.body = text_value(&"x".repeat(1024));
    }
    let r = s.post_logs(big.encode_to_vec(), false).await?;
    assert_eq!(r.status, 413, "{}", r.text());
    // Small when compressed, too large once inflated.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&big.encode_to_vec())?;
    let r = s.post_logs(gz.finish()?, true).await?;
    assert_eq!(r.status, 413, "{}", r.text());
    let mut client = LogsServiceClient::connect(format!("http://{}", s.grpc)).await?;
    let code = client.export(big.clone()).await.err().map(|e| e.code());
    assert_eq!(code, Some(tonic::Code::OutOfRange));
    assert!(s.counter("request_bytes").await? >= before + 3.0);

    let before = s.counter("records_per_request").await?;
    let many = logs(resource("pay", "v1", "prod", &[]), 101, 0, now_ns());
    let r = s.post_logs(many.encode_to_vec(), false).await?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("max_records_per_request"), "{}", r.text());
    let code = client.export(many).await.err().map(|e| e.code());
    assert_eq!(code, Some(tonic::Code::InvalidArgument));
    assert!(s.counter("records_per_request").await? >= before + 2.0);

    // Nothing of the refused requests was counted.
    assert!(
        get(s.http, "/api/v1/releases?service=pay").await?.json()["releases"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    s.assert_healthy().await?;
    s.stop().await
}

#[tokio::test]
async fn attributes_are_capped() -> TestResult {
    let dir = tempfile::tempdir()?;
    let s = Limited::start(dir.path(), Limits::default()).await?;
    let (count_before, value_before) = (
        s.counter("attributes_per_record").await?,
        s.counter("attribute_value_bytes").await?,
    );
    let mut request = logs(resource("pay", "v1", "prod", &[]), 1, 1, now_ns());
    let record: &mut LogRecord = &mut request.resource_logs[0].scope_logs[0].log_records[0];
    record.attributes = (0..500).map(|i| kv(&format!("attr.{i}"), "v")).collect();
    record
        .attributes
        .insert(0, kv("exception.message", &"m".repeat(100_000)));
    let r = s.post_logs(request.encode_to_vec(), false).await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(s.counter("attributes_per_record").await? >= count_before + 373.0);
    assert!(s.counter("attribute_value_bytes").await? > value_before);
    // The record itself was counted.
    let release = release_entry(s.http, "pay", "v1").await?;
    assert_eq!(release["totals"]["error_logs"], 1);
    s.assert_healthy().await?;
    s.stop().await
}

#[tokio::test]
async fn a_flood_of_services_is_bounded() -> TestResult {
    let dir = tempfile::tempdir()?;
    let limits = Limits {
        max_services: 5,
        max_versions_per_service: 3,
        ..Limits::default()
    };
    let s = Limited::start(dir.path(), limits).await?;
    let before = (
        s.counter("services").await?,
        s.counter("versions_per_service").await?,
    );
    // "steady" (of assert_healthy) plus four more fill the limit.
    s.assert_healthy().await?;
    for i in 0..4 {
        let r = logs(
            resource(&format!("svc-{i}"), "v1", "prod", &[]),
            1,
            0,
            now_ns(),
        );
        assert_eq!(s.post_logs(r.encode_to_vec(), false).await?.status, 200);
    }
    for i in 4..20 {
        let r = logs(
            resource(&format!("svc-{i}"), "v1", "prod", &[]),
            1,
            0,
            now_ns(),
        );
        let response = s.post_logs(r.encode_to_vec(), false).await?;
        assert_eq!(response.status, 400, "{}", response.text());
        assert!(
            response.text().contains("max_services"),
            "{}",
            response.text()
        );
    }
    for v in 2..=3 {
        let r = logs(
            resource("svc-0", &format!("v{v}"), "prod", &[]),
            1,
            0,
            now_ns(),
        );
        assert_eq!(s.post_logs(r.encode_to_vec(), false).await?.status, 200);
    }
    let r = logs(resource("svc-0", "v4", "prod", &[]), 1, 0, now_ns());
    assert_eq!(s.post_logs(r.encode_to_vec(), false).await?.status, 400);
    assert!(s.counter("services").await? >= before.0 + 16.0);
    assert!(s.counter("versions_per_service").await? > before.1);
    let listed = get(s.http, "/api/v1/releases").await?.json();
    assert_eq!(listed["releases"].as_array().map(Vec::len), Some(7));
    s.assert_healthy().await?;
    s.stop().await
}

/// A word without digits or hex letters, so parameterizing leaves it alone.
fn word(mut i: usize) -> String {
    let mut out = String::new();
    for _ in 0..3 {
        out.push((b'g' + (i % 20) as u8) as char);
        i /= 20;
    }
    out
}

#[tokio::test]
async fn a_flood_of_fingerprints_goes_to_other() -> TestResult {
    let dir = tempfile::tempdir()?;
    let s = Limited::start(dir.path(), Limits::default()).await?;
    let before = s.counter("fingerprints_per_release").await?;
    let now = now_ns();
    for chunk in 0..3 {
        let mut request = logs(resource("pay", "v1", "prod", &[]), 400, 400, now);
        let records = &mut request.resource_logs[0].scope_logs[0].log_records;
        for (i, record) in records.iter_mut().enumerate() {
            let n = chunk * 400 + i;
            record.body = text_value(&format!("{} broke {}", word(n), word(n + 4000)));
        }
        let r = s.post_logs(request.encode_to_vec(), false).await?;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let issues = get(s.http, "/api/v1/releases/pay/v1/issues?environment=prod").await?;
    let json = issues.json();
    let list = json["issues"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 1_001, "{}", issues.text().len());
    let other = list.iter().find(|i| i["fingerprint"] == "other");
    assert!(other.is_some_and(|o| o["count"] == 200), "{other:?}");
    assert!(s.counter("fingerprints_per_release").await? >= before + 200.0);
    s.assert_healthy().await?;
    s.stop().await
}
