//! Overload: a flood of large OTLP exports against a collector allowed one ingest at a
//! time. Requests that find no slot are refused with RESOURCE_EXHAUSTED and a retry hint,
//! the HTTP API keeps answering during the flood, and the stored totals are exactly what
//! the accepted requests carried.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bellwether_collector::config::Settings;
use bellwether_collector::limits::Limits;
use bellwether_collector::server::{self, Listeners};
use bellwether_proto::otlp::common::{any_value, AnyValue};
use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use common::*;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

const RECORDS_PER_REQUEST: u64 = 20_000;
const CONCURRENT_REQUESTS: usize = 24;
/// Generous: a responsive API answers in milliseconds.
const API_DEADLINE: Duration = Duration::from_secs(5);

fn big_request() -> ExportLogsServiceRequest {
    let mut request = logs(
        resource("flood", "v1", "prod", &[]),
        RECORDS_PER_REQUEST as usize,
        10,
        now_ns(),
    );
    for record in &mut request.resource_logs[0].scope_logs[0].log_records {
        record.body = Some(AnyValue {
            value: Some(any_value::Value::StringValue("payload ".repeat(8))),
        });
    }
    request
}

/// Fires one flood; returns (accepted records, refused requests).
async fn flood(
    grpc: SocketAddr,
    request: &ExportLogsServiceRequest,
) -> Result<(u64, u64), Box<dyn std::error::Error + Send + Sync>> {
    // One connection per request: on a single HTTP/2 connection the flow-control window
    // lets large requests arrive one after another, and they may never overlap.
    let mut clients = Vec::with_capacity(CONCURRENT_REQUESTS);
    for _ in 0..CONCURRENT_REQUESTS {
        clients.push(
            LogsServiceClient::connect(format!("http://{grpc}"))
                .await?
                .max_encoding_message_size(64 * 1024 * 1024),
        );
    }
    let mut exports = JoinSet::new();
    for mut client in clients {
        let request = request.clone();
        exports.spawn(async move { client.export(request).await });
    }
    let (mut accepted, mut refused) = (0, 0);
    while let Some(result) = exports.join_next().await {
        match result? {
            Ok(_) => accepted += RECORDS_PER_REQUEST,
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                let hint = status
                    .metadata()
                    .get("retry-after")
                    .map(|v| v.to_str().ok());
                assert_eq!(hint, Some(Some("1")));
                refused += 1;
            }
        }
    }
    Ok((accepted, refused))
}

/// `GET path` answers 200 within [`API_DEADLINE`].
async fn answers(http: SocketAddr, path: &str) -> TestResult {
    let response = tokio::time::timeout(API_DEADLINE, get(http, path))
        .await
        .map_err(|_| format!("{path} did not answer within {API_DEADLINE:?}"))??;
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    Ok(())
}

async fn inflight_refusals(
    http: SocketAddr,
) -> Result<f64, Box<dyn std::error::Error + Send + Sync>> {
    let text = get(http, "/metrics").await?.text();
    let prefix = "bellwether_limit_exceeded_total{limit=\"inflight\"} ";
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .ok_or("no inflight limit counter in /metrics")?;
    Ok(value.trim().parse()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flood_is_throttled_while_api_answers_and_nothing_accepted_is_lost() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut settings = Settings::ephemeral(dir.path());
    settings.limits = Limits {
        max_inflight_ingest: 1,
        ingest_admission_wait: Duration::from_millis(1),
        ..Limits::default()
    };
    let listeners = Listeners::bind(&settings).await?;
    let (grpc, http) = (
        listeners.otlp_grpc.local_addr()?,
        listeners.http.local_addr()?,
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::run(settings, listeners, async {
        let _ = stopped.await;
    }));

    // A first request, alone, is admitted and creates the release read below.
    let request = big_request();
    let mut accepted = flood_one(grpc, &request).await?;
    let counter_before = inflight_refusals(http).await?;

    let stats = "/api/v1/releases/flood/v1/stats?environment=prod";
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut refused = 0;
    while refused == 0 {
        assert!(Instant::now() < deadline, "no request was ever refused");
        let probes = async {
            for _ in 0..5 {
                answers(http, "/healthz").await?;
                answers(http, stats).await?;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        };
        let (flooded, probed) = tokio::join!(flood(grpc, &request), probes);
        probed?;
        let (round_accepted, round_refused) = flooded?;
        accepted += round_accepted;
        refused += round_refused;
    }
    assert!(inflight_refusals(http).await? >= counter_before + refused as f64);

    // Every accepted record was counted, none of the refused ones.
    let entry = release_entry(http, "flood", "v1").await?;
    assert_eq!(entry["totals"]["log_records"].as_u64(), Some(accepted));
    assert!(accepted >= RECORDS_PER_REQUEST);

    let _ = stop.send(());
    task.await??;
    Ok(())
}

/// One export on its own: admitted.
async fn flood_one(
    grpc: SocketAddr,
    request: &ExportLogsServiceRequest,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let mut client = LogsServiceClient::connect(format!("http://{grpc}"))
        .await?
        .max_encoding_message_size(64 * 1024 * 1024);
    client.export(request.clone()).await?;
    Ok(RECORDS_PER_REQUEST)
}
