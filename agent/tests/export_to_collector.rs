//! The agent end to end: real OTLP receivers, standard input, and a real gRPC peer
//! standing in for the collector.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bellwether_agent::identity::Identity;
use bellwether_agent::{run, Config, Input, Listeners, RunReport};
use bellwether_proto::otlp::common::{any_value::Value, AnyValue, KeyValue};
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bellwether_proto::otlp::logs_service::logs_service_server::{LogsService, LogsServiceServer};
use bellwether_proto::otlp::logs_service::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use bellwether_proto::otlp::resource::Resource;
use bellwether_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};
use bellwether_proto::otlp::trace_service::trace_service_client::TraceServiceClient;
use bellwether_proto::otlp::trace_service::trace_service_server::{
    TraceService, TraceServiceServer,
};
use bellwether_proto::otlp::trace_service::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use bellwether_proto::BATCH_ID_HEADER;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

/// What the collector double saw.
#[derive(Debug, Default)]
struct Received {
    /// Batch id of every call, failed ones included.
    calls: Vec<String>,
    /// Whether each call arrived gzip-compressed.
    gzip: Vec<bool>,
    logs: Vec<(String, ResourceLogs)>,
    spans: Vec<(String, ResourceSpans)>,
}

/// A minimal OTLP/gRPC peer: records requests and their batch ids, and answers
/// UNAVAILABLE to the first `fail_first` calls.
#[derive(Clone, Default)]
struct Collector {
    received: Arc<Mutex<Received>>,
    fail_first: Arc<AtomicUsize>,
}

impl Collector {
    fn record<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let id = request
            .metadata()
            .get(BATCH_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let gzip = request
            .metadata()
            .get("grpc-encoding")
            .is_some_and(|v| v == "gzip");
        let mut received = self
            .received
            .lock()
            .map_err(|_| Status::internal("poisoned"))?;
        received.calls.push(id.clone());
        received.gzip.push(gzip);
        let failing = self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(Status::unavailable("collector warming up"));
        }
        Ok(id)
    }

    fn snapshot<R>(&self, f: impl FnOnce(&Received) -> R) -> R {
        f(&self.received.lock().expect("collector state"))
    }
}

#[tonic::async_trait]
impl LogsService for Collector {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let id = self.record(&request)?;
        let mut received = self
            .received
            .lock()
            .map_err(|_| Status::internal("poisoned"))?;
        for rl in request.into_inner().resource_logs {
            received.logs.push((id.clone(), rl));
        }
        Ok(Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let id = self.record(&request)?;
        let mut received = self
            .received
            .lock()
            .map_err(|_| Status::internal("poisoned"))?;
        for rs in request.into_inner().resource_spans {
            received.spans.push((id.clone(), rs));
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn start_collector(fail_first: usize) -> (Collector, SocketAddr) {
    let collector = Collector::default();
    collector.fail_first.store(fail_first, Ordering::SeqCst);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tonic::transport::Server::builder()
        .add_service(
            LogsServiceServer::new(collector.clone()).accept_compressed(CompressionEncoding::Gzip),
        )
        .add_service(
            TraceServiceServer::new(collector.clone()).accept_compressed(CompressionEncoding::Gzip),
        )
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(server);
    (collector, addr)
}

fn identity() -> Identity {
    Identity {
        service: "checkout".into(),
        version: "1.4.2".into(),
        environment: "prod".into(),
        instance_id: "pod-7".into(),
        commit: Some("9f1c2e7".into()),
        deploy_id: None,
        team: Some("payments".into()),
    }
}

fn config(collector: SocketAddr, data_dir: &std::path::Path) -> Config {
    let mut config = Config::new(identity());
    config.collector = format!("http://{collector}");
    config.data_dir = data_dir.to_owned();
    config.flush_timeout = Duration::from_secs(20);
    config
}

fn attr<'a>(resource: Option<&'a Resource>, key: &str) -> Option<&'a str> {
    resource?
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

fn assert_identity(resource: Option<&Resource>) {
    assert_eq!(attr(resource, "service.name"), Some("checkout"));
    assert_eq!(attr(resource, "service.version"), Some("1.4.2"));
    assert_eq!(attr(resource, "deployment.environment.name"), Some("prod"));
    assert_eq!(attr(resource, "service.instance.id"), Some("pod-7"));
    assert_eq!(attr(resource, "vcs.ref.head.revision"), Some("9f1c2e7"));
    assert_eq!(attr(resource, "bellwether.team"), Some("payments"));
}

fn log_count(logs: &[(String, ResourceLogs)]) -> usize {
    logs.iter()
        .flat_map(|(_, rl)| &rl.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

async fn bind_local() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

async fn http_get(addr: SocketAddr, path: &str) -> serde_json::Value {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client
        .get(format!("http://{addr}{path}").parse().expect("uri"))
        .await
        .expect("admin reachable");
    assert_eq!(response.status(), 200);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    serde_json::from_slice(&body).expect("json")
}

#[tokio::test]
async fn otlp_and_stdin_reach_the_collector_tagged() {
    let (collector, collector_addr) = start_collector(0).await;
    let data_dir = tempfile::tempdir().expect("tempdir");
    let (grpc, http, admin) = (bind_local().await, bind_local().await, bind_local().await);
    let (grpc_addr, http_addr, admin_addr) = (
        grpc.local_addr().expect("addr"),
        http.local_addr().expect("addr"),
        admin.local_addr().expect("addr"),
    );
    let listeners = Listeners {
        otlp_grpc: Some(grpc),
        otlp_http: Some(http),
        admin: Some(admin),
    };
    let (mut stdin_writer, stdin_reader) = tokio::io::duplex(64 * 1024);
    let agent = tokio::spawn(run(
        config(collector_addr, data_dir.path()),
        listeners,
        Some(Box::new(stdin_reader) as Input),
        std::future::pending(),
    ));

    // Standard input: three records (the blank line is skipped).
    stdin_writer
        .write_all(
            b"ERROR payment failed\n\n{\"level\":\"info\",\"msg\":\"json line\"}\nplain line\n",
        )
        .await
        .expect("write stdin");

    // OTLP/HTTP JSON: two records from an app that names itself differently.
    let body = r#"{"resourceLogs":[{"resource":{"attributes":[
        {"key":"service.name","value":{"stringValue":"legacy-app"}}]},
        "scopeLogs":[{"logRecords":[{"body":{"stringValue":"http one"}},{"body":{"stringValue":"http two"}}]}]}]}"#;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::post(format!("http://{http_addr}/v1/logs"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let response = client
        .request(request)
        .await
        .expect("http receiver reachable");
    assert_eq!(response.status(), 200);

    // OTLP/gRPC: one log record and two spans.
    let mut logs_client = LogsServiceClient::connect(format!("http://{grpc_addr}"))
        .await
        .expect("grpc receiver reachable");
    logs_client
        .export(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        body: Some(AnyValue {
                            value: Some(Value::StringValue("grpc one".into())),
                        }),
                        ..LogRecord::default()
                    }],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        })
        .await
        .expect("logs accepted");
    let mut trace_client = TraceServiceClient::connect(format!("http://{grpc_addr}"))
        .await
        .expect("grpc receiver reachable");
    trace_client
        .export(ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "deployment.environment".into(),
                        value: Some(AnyValue {
                            value: Some(Value::StringValue("staging".into())),
                        }),
                        ..KeyValue::default()
                    }],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default(); 2],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        })
        .await
        .expect("spans accepted");

    assert_eq!(http_get(admin_addr, "/healthz").await["status"], "ok");
    let stats = http_get(admin_addr, "/stats").await;
    assert_eq!(stats["received"]["otlp_http"]["log_records"], 2);
    assert_eq!(stats["received"]["otlp_grpc"]["log_records"], 1);
    assert_eq!(stats["received"]["otlp_grpc"]["spans"], 2);

    // End of input: the agent flushes everything and stops.
    drop(stdin_writer);
    let report: RunReport = tokio::time::timeout(Duration::from_secs(30), agent)
        .await
        .expect("agent stops after end of input")
        .expect("agent task")
        .expect("agent runs");
    assert_eq!(report.lost, 0);
    assert_eq!(report.stats.received.stdin.log_records, 3);
    assert_eq!(report.stats.exported.log_records, 6);
    assert_eq!(report.stats.exported.spans, 2);

    collector.snapshot(|received| {
        assert_eq!(log_count(&received.logs), 6, "3 stdin + 2 http + 1 grpc");
        let spans: usize = received
            .spans
            .iter()
            .flat_map(|(_, rs)| &rs.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        assert_eq!(spans, 2);

        for (_, rl) in &received.logs {
            assert_identity(rl.resource.as_ref());
        }
        for (_, rs) in &received.spans {
            assert_identity(rs.resource.as_ref());
            let resource = rs.resource.as_ref();
            assert_eq!(attr(resource, "deployment.environment"), None);
            assert_eq!(
                attr(resource, "bellwether.app.deployment.environment"),
                Some("staging")
            );
        }
        let legacy: Vec<_> = received
            .logs
            .iter()
            .filter(|(_, rl)| {
                attr(rl.resource.as_ref(), "bellwether.app.service.name") == Some("legacy-app")
            })
            .collect();
        assert_eq!(
            log_count(&legacy.into_iter().cloned().collect::<Vec<_>>()),
            2
        );

        let bodies: Vec<String> = received
            .logs
            .iter()
            .flat_map(|(_, rl)| &rl.scope_logs)
            .flat_map(|s| &s.log_records)
            .filter_map(|r| match r.body.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        for expected in [
            "ERROR payment failed",
            "json line",
            "plain line",
            "http one",
            "grpc one",
        ] {
            assert!(
                bodies.iter().any(|b| b == expected),
                "{expected} missing from {bodies:?}"
            );
        }

        // Every call carried a well-formed batch id, each batch sent once, gzip-compressed.
        assert!(!received.calls.is_empty());
        let mut ids = received.calls.clone();
        for id in &ids {
            let parts: Vec<&str> = id.split(':').collect();
            assert_eq!(parts.len(), 3, "{id}");
            assert_eq!(parts[0], "pod-7");
            assert!(!parts[1].is_empty());
            assert!(parts[2].parse::<u64>().is_ok(), "{id}");
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), received.calls.len(), "no batch sent twice");
        assert!(
            received.gzip.iter().all(|g| *g),
            "exports are gzip-compressed"
        );
    });
}

#[tokio::test]
async fn retries_until_the_collector_accepts_keeping_the_batch_id() {
    let (collector, collector_addr) = start_collector(2).await;
    let data_dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, reader) = tokio::io::duplex(1024);
    writer
        .write_all(b"WARN first\nINFO second\n")
        .await
        .expect("write stdin");
    drop(writer);

    let report = tokio::time::timeout(
        Duration::from_secs(30),
        run(
            config(collector_addr, data_dir.path()),
            Listeners::default(),
            Some(Box::new(reader) as Input),
            std::future::pending(),
        ),
    )
    .await
    .expect("agent stops after end of input")
    .expect("agent runs");

    assert_eq!(report.lost, 0);
    assert_eq!(report.stats.retries, 2);
    assert_eq!(report.stats.exported.log_records, 2);
    collector.snapshot(|received| {
        // The lines may be queued as one batch or two, sent at once; the collector
        // refuses the first two calls, each refused batch is sent again with its id.
        let called: std::collections::BTreeSet<&String> = received.calls.iter().collect();
        assert_eq!(
            received.calls.len(),
            called.len() + 2,
            "two failures, then one success per batch: {:?}",
            received.calls
        );
        assert!(called.iter().all(|id| id.starts_with("pod-7:")));
        assert_eq!(log_count(&received.logs), 2, "delivered exactly once");
        let ids: std::collections::BTreeSet<&String> =
            received.logs.iter().map(|(id, _)| id).collect();
        assert_eq!(ids, called, "every batch sent was delivered, under its id");
        assert_eq!(ids.len(), received.logs.len(), "one delivery per batch id");
    });
}

#[tokio::test]
async fn unreachable_collector_keeps_data_queued_for_the_next_run() {
    // A port nobody listens on.
    let vacant = bind_local().await.local_addr().expect("addr");
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut first = config(vacant, data_dir.path());
    first.flush_timeout = Duration::from_millis(700);
    let (mut writer, reader) = tokio::io::duplex(1024);
    writer
        .write_all(b"ERROR nobody hears this yet\n")
        .await
        .expect("write stdin");
    drop(writer);
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        run(
            first,
            Listeners::default(),
            Some(Box::new(reader) as Input),
            std::future::pending(),
        ),
    )
    .await
    .expect("agent stops at the flush timeout")
    .expect("start-up does not need the collector");
    assert_eq!((report.lost, report.queued), (0, 1));
    assert_eq!(report.stats.dropped.shutdown, 0);
    assert!(report.stats.retries >= 1);

    // The next run on the same data directory delivers it first.
    let (collector, collector_addr) = start_collector(0).await;
    let empty: &[u8] = b"";
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        run(
            config(collector_addr, data_dir.path()),
            Listeners::default(),
            Some(Box::new(empty) as Input),
            std::future::pending(),
        ),
    )
    .await
    .expect("agent stops after delivering")
    .expect("agent runs");
    assert_eq!((report.lost, report.queued), (0, 0));
    assert_eq!(report.stats.exported.log_records, 1);
    collector.snapshot(|received| assert_eq!(log_count(&received.logs), 1));
}
