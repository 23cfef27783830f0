//! Shared harness: a collector served by `server::run` on loopback ports with a real sled
//! data directory, plus small HTTP and OTLP helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use bellwether_collector::config::Settings;
use bellwether_collector::server::{self, Listeners, ServerError};
use bellwether_proto::otlp::common::{any_value, AnyValue, KeyValue};
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::resource::Resource;
use bellwether_proto::otlp::trace::{status, ResourceSpans, ScopeSpans, Span, Status};
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub struct TestServer {
    pub grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub http: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl TestServer {
    pub async fn start(data_dir: &Path) -> Result<Self, ServerError> {
        let settings = Settings::ephemeral(data_dir);
        let listeners = Listeners::bind(&settings).await?;
        let addr = |l: &tokio::net::TcpListener| {
            l.local_addr().map_err(|e| ServerError::Serve {
                kind: "test",
                message: e.to_string(),
            })
        };
        let (grpc, otlp_http, http) = (
            addr(&listeners.otlp_grpc)?,
            addr(&listeners.otlp_http)?,
            addr(&listeners.http)?,
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(settings, listeners, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            grpc,
            otlp_http,
            http,
            stop: Some(stop),
            task,
        })
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Stops the server and waits until the store is flushed and closed.
    pub async fn stop(mut self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await??;
        Ok(())
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<HttpResponse, Box<dyn std::error::Error + Send + Sync>> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = client
        .request(builder.body(Full::new(Bytes::from(body)))?)
        .await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(HttpResponse { status, body })
}

pub async fn get(
    addr: SocketAddr,
    path: &str,
) -> Result<HttpResponse, Box<dyn std::error::Error + Send + Sync>> {
    request("GET", addr, path, &[], Vec::new()).await
}

pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> Result<HttpResponse, Box<dyn std::error::Error + Send + Sync>> {
    request(
        "POST",
        addr,
        path,
        &[("content-type", "application/json")],
        serde_json::to_vec(body)?,
    )
    .await
}

pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

pub fn resource(
    service: &str,
    version: &str,
    environment: &str,
    extra: &[(&str, &str)],
) -> Resource {
    let mut attributes = vec![
        kv("service.name", service),
        kv("service.version", version),
        kv("deployment.environment.name", environment),
    ];
    attributes.extend(extra.iter().map(|(k, v)| kv(k, v)));
    Resource {
        attributes,
        ..Resource::default()
    }
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// `total` log records of which `errors` have severity ERROR.
pub fn logs(
    resource: Resource,
    total: usize,
    errors: usize,
    time_ns: u64,
) -> ExportLogsServiceRequest {
    let records = (0..total)
        .map(|i| LogRecord {
            time_unix_nano: time_ns,
            severity_number: if i < errors { 17 } else { 9 },
            ..LogRecord::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

/// `total` spans of which `errors` have status ERROR.
pub fn spans(
    resource: Resource,
    total: usize,
    errors: usize,
    time_ns: u64,
) -> ExportTraceServiceRequest {
    let spans = (0..total)
        .map(|i| Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            start_time_unix_nano: time_ns.saturating_sub(1_000_000),
            end_time_unix_nano: time_ns,
            status: Some(Status {
                code: if i < errors {
                    status::StatusCode::Error as i32
                } else {
                    status::StatusCode::Ok as i32
                },
                ..Status::default()
            }),
            ..Span::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

/// The release entry of `service`/`version` in `GET /api/v1/releases`.
pub async fn release_entry(
    http: SocketAddr,
    service: &str,
    version: &str,
) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
    let response = get(http, &format!("/api/v1/releases?service={service}")).await?;
    assert_eq!(response.status, 200, "{}", response.text());
    let json = response.json();
    let entry = json["releases"]
        .as_array()
        .and_then(|releases| releases.iter().find(|r| r["version"] == version))
        .cloned();
    entry.ok_or_else(|| format!("release {service} {version} not listed: {json}").into())
}
